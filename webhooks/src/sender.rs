//! The sending loop: takes due orders, sends each one's queue head first,
//! reschedules an order whose endpoint call failed.

use secrecy::{ExposeSecret, SecretString};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;
use tracker_backend::log::OrderKey;
use tracker_backend::retry::nth_delay;
use tracker_backend::webhooks::{Due, KEEP, Queued, WebhookQueue};
use tracker_domain::clock::now_ms;

/// Where and how the events are sent.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The endpoint every event is POSTed to.
    pub url: String,
    /// The HMAC key of `X-Tracker-Signature`.
    pub secret: SecretString,
    /// How long one call may take before it counts as failed.
    pub timeout: Duration,
    /// Orders sent at once by this process (each one event at a time).
    pub concurrency: usize,
    /// The wait after an order's first failure; it doubles with each one after.
    pub first_retry: Duration,
    /// The longest wait between two attempts.
    pub max_retry: Duration,
    /// Events older than this are given up (counted) instead of sent.
    pub keep: Duration,
}

impl WebhookSettings {
    /// Sends to `url` signed with `secret`, with the defaults of the rest.
    pub fn new(url: impl Into<String>, secret: SecretString) -> Self {
        WebhookSettings {
            url: url.into(),
            secret,
            timeout: Duration::from_secs(10),
            concurrency: 64,
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(600),
            keep: KEEP,
        }
    }
}

/// Longest wait for new work between two looks at the schedule.
const POLL: Duration = Duration::from_millis(100);
/// Events read from an order's queue at a time.
const HEAD: usize = 16;
/// Most of a response body read (then the connection is dropped).
const MAX_RESPONSE: usize = 64 * 1024;

/// Why one call failed, for the `reason` label.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// The endpoint answered something else than 2xx.
    Status,
    /// It took longer than the timeout.
    Timeout,
    /// No answer (refused, reset, DNS).
    Connect,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Status => "status",
            Failure::Timeout => "timeout",
            Failure::Connect => "connect",
        }
    }
}

/// How one turn at an order ended.
enum Turn {
    /// Its queue is empty.
    Empty,
    /// A call failed; it is due again later.
    Retrying,
    /// The backend failed, or the partition moved: left as it was.
    Left,
}

struct Ctx {
    queue: Arc<dyn WebhookQueue>,
    client: reqwest::Client,
    settings: WebhookSettings,
}

/// Sends the orders of the partitions this process holds.
pub struct WebhookSender {
    ctx: Arc<Ctx>,
}

impl WebhookSender {
    /// A sender over `queue`; fails only when no HTTP client can be built.
    pub fn new(
        queue: Arc<dyn WebhookQueue>,
        settings: WebhookSettings,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tracker-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WebhookSender {
            ctx: Arc::new(Ctx {
                queue,
                client,
                settings,
            }),
        })
    }

    /// Runs until `stop`; calls under way are dropped (their events are sent
    /// again, at least once), and the partitions are given back.
    pub async fn run(self, stop: CancellationToken) {
        let ctx = self.ctx;
        let limit = ctx.settings.concurrency.max(1);
        let mut busy: HashMap<Id, OrderKey> = HashMap::new();
        let mut retrying: HashSet<OrderKey> = HashSet::new();
        let mut tasks: JoinSet<Turn> = JoinSet::new();
        let mut kept: Option<Instant> = None;
        while !stop.is_cancelled() {
            if kept.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                kept = Some(Instant::now());
                if let Err(e) = ctx.queue.maintain().await {
                    tracing::warn!(error = %e, "webhook partitions could not be kept");
                    metrics::counter!("tracker_webhooks_errors_total").increment(1);
                }
                retrying.retain(|o| ctx.queue.owns(o));
                metrics::gauge!("tracker_webhooks_retrying").set(retrying.len() as f64);
                metrics::gauge!("tracker_webhooks_in_flight").set(busy.len() as f64);
            }
            if busy.len() < limit {
                // Orders being sent are still due: ask for enough to skip them.
                match ctx.queue.due(limit + busy.len()).await {
                    Ok(due) => {
                        for d in due {
                            if busy.len() >= limit {
                                break;
                            }
                            if busy.values().any(|o| *o == d.order) {
                                continue;
                            }
                            let order = d.order.clone();
                            let h = tasks.spawn(turn(ctx.clone(), d));
                            busy.insert(h.id(), order);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the webhook schedule");
                        metrics::counter!("tracker_webhooks_errors_total").increment(1);
                    }
                }
            }
            let done = tokio::select! {
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => Some(done),
                () = ctx.queue.wait(POLL) => None,
                () = stop.cancelled() => break,
            };
            let mut finished: Vec<_> = done.into_iter().collect();
            while let Some(more) = tasks.try_join_next_with_id() {
                finished.push(more);
            }
            for f in finished {
                let (id, turn) = match f {
                    Ok((id, t)) => (id, Some(t)),
                    Err(e) => {
                        tracing::error!(error = %e, "a webhook delivery task failed");
                        (e.id(), None)
                    }
                };
                let Some(order) = busy.remove(&id) else {
                    continue;
                };
                match turn {
                    Some(Turn::Retrying) => {
                        retrying.insert(order);
                    }
                    Some(Turn::Empty) => {
                        retrying.remove(&order);
                    }
                    Some(Turn::Left) | None => {}
                }
            }
        }
        tasks.shutdown().await;
        ctx.queue.release().await;
    }
}

/// One turn at an order: its queued events in order until it is empty or a call fails.
async fn turn(ctx: Arc<Ctx>, due: Due) -> Turn {
    match send_queue(&ctx, &due).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, order = %due.order, "webhook queue unavailable");
            metrics::counter!("tracker_webhooks_errors_total").increment(1);
            Turn::Left
        }
    }
}

async fn send_queue(ctx: &Ctx, due: &Due) -> Result<Turn, tracker_backend::LogError> {
    let q = &ctx.queue;
    let mut tries = due.tries;
    loop {
        let items = q.head(&due.order, HEAD).await?;
        if items.is_empty() {
            q.settle(due).await?;
            return Ok(Turn::Empty);
        }
        for item in items {
            if !q.owns(&due.order) {
                // The partition moved: its new holder goes on from the queue.
                return Ok(Turn::Left);
            }
            let age_ms = (now_ms() - item.at_ms).max(0);
            if age_ms as u128 > ctx.settings.keep.as_millis() {
                metrics::counter!("tracker_webhooks_dropped_total").increment(1);
                tracing::warn!(order = %due.order, "a webhook event older than the retry period was given up");
                q.delivered(&due.order, &item).await?;
                continue;
            }
            match post(ctx, &due.order, &item, tries + 1).await {
                Ok(()) => {
                    q.delivered(&due.order, &item).await?;
                    if tries > 0 {
                        q.recovered(due).await?;
                    }
                    tries = 0;
                    metrics::counter!("tracker_webhooks_sent_total").increment(1);
                    let lag = (now_ms() - item.at_ms).max(0) as f64 / 1000.0;
                    metrics::histogram!("tracker_webhooks_lag_seconds").record(lag);
                }
                Err(why) => {
                    metrics::counter!("tracker_webhooks_failed_total", "reason" => why.label())
                        .increment(1);
                    let n = tries + 1;
                    let full = nth_delay(ctx.settings.first_retry, ctx.settings.max_retry, n);
                    // Jitter: between half and all of it, so orders that failed
                    // together do not come back together.
                    let delay = full.mul_f64(0.5 + rand::random::<f64>() / 2.0);
                    q.retry(due, delay, n).await?;
                    return Ok(Turn::Retrying);
                }
            }
        }
    }
}

/// One call: the frame as the body, signed.
async fn post(ctx: &Ctx, order: &str, item: &Queued, attempt: u32) -> Result<(), Failure> {
    let body = item.json.clone().into_bytes();
    let signature = crate::sign(ctx.settings.secret.expose_secret().as_bytes(), &body);
    let sent = ctx
        .client
        .post(&ctx.settings.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(crate::SIGNATURE_HEADER, signature)
        .header("X-Tracker-Order", order)
        .header("X-Tracker-Attempt", attempt.to_string())
        .body(body)
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err(Failure::Timeout),
        Err(_) => return Err(Failure::Connect),
    };
    let ok = resp.status().is_success();
    // Read a little of the answer so the connection can be reused.
    let mut read = 0;
    while read < MAX_RESPONSE {
        match resp.chunk().await {
            Ok(Some(c)) => read += c.len(),
            Ok(None) => break,
            Err(_) => break,
        }
    }
    if ok { Ok(()) } else { Err(Failure::Status) }
}
