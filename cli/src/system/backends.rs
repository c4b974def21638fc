//! The seams from their URLs, and fix routing over them: what every mode runs on.

use super::services::Services;
use crate::settings::Settings;
use anyhow::Context;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracker_backend::background::Background;
use tracker_backend::dispatch::Dispatch;
use tracker_backend::feed::Feed;
use tracker_backend::select::{
    open_dispatch, open_feed, open_log_with_webhooks, open_stock, open_store_with_stock, open_track,
};
use tracker_backend::stock::Stock;
use tracker_backend::timers::DelayQueue;
use tracker_backend::track::TrackQueue;
use tracker_backend::webhooks::WebhookQueue;
use tracker_backend::{EventLog, Store};
use tracker_domain::{Clock, FixLimits, SystemClock};
use tracker_routing::{Router, Stats};

/// The backends of this process.
pub struct Backends {
    /// Orders, the outbox, track points.
    pub store: Arc<dyn Store>,
    /// The per-order event log.
    pub log: Arc<dyn EventLog>,
    /// Routed fixes on their way to the store.
    pub track: Arc<dyn TrackQueue>,
    /// The pool of open orders, rider positions, the grab.
    pub dispatch: Arc<dyn Dispatch>,
    /// The delay queue of order timeouts.
    pub timers: Arc<dyn DelayQueue>,
    /// Which orders moved, for the trip watcher.
    pub feed: Arc<dyn Feed>,
    /// Stock levels and the orders' reservations.
    pub stock: Arc<dyn Stock>,
    /// The queue of events for the webhook, when one is configured.
    pub webhooks: Option<Arc<dyn WebhookQueue>>,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
}

/// Opens every seam `s` names; the track queue's writer (or Redis worker)
/// runs as the service "track writer", and the backends' own loops on `bg`.
pub async fn open(
    s: &Settings,
    services: &mut Services,
    bg: &Background,
    stop: &CancellationToken,
) -> anyhow::Result<Backends> {
    let redis = s.redis.url.as_ref().map(|u| u.as_str());
    let database_url = s.data.database_url();
    if database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&s.data.dir)
            .with_context(|| format!("creating TRACKER_DATA_DIR `{}`", s.data.dir.display()))?;
    }
    let (store, in_store) = open_store_with_stock(&database_url).await?;
    // A partition given back stays closed for one call's timeout, and a
    // little more for the write that records its outcome.
    let hold = s
        .webhook
        .sender()
        .map(|w| w.timeout + std::time::Duration::from_secs(5));
    let (log, webhooks) =
        open_log_with_webhooks(redis, &s.redis.prefix, s.log.clone(), hold, bg).await?;
    let through_redis = s.redis.track_queue == crate::settings::TrackQueueMode::Redis;
    let (track, writer) = open_track(
        redis,
        &s.redis.prefix,
        through_redis,
        store.clone(),
        stop.clone(),
    )
    .await?;
    services.spawn("track writer", async move {
        writer.await.context("the track writer panicked")
    });
    let (dispatch, timers) = open_dispatch(redis, &s.redis.prefix).await?;
    let feed = open_feed(redis, &s.redis.prefix, &*log).await?;
    let stock = open_stock(redis, &s.redis.prefix, in_store).await?;
    Ok(Backends {
        webhooks,
        stock,
        feed,
        store,
        log,
        track,
        dispatch,
        timers,
        clock: Arc::new(SystemClock),
    })
}

/// Runs the webhook sender as the service "webhook sender", when a webhook
/// is configured.
pub fn webhook_sender(
    s: &Settings,
    b: &Backends,
    services: &mut Services,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let (Some(queue), Some(settings)) = (b.webhooks.clone(), s.webhook.sender()) else {
        return Ok(());
    };
    tracing::info!(
        url = %tracker_backend::select::redact(&settings.url),
        "order events are sent to the webhook"
    );
    let sender = tracker_webhooks::WebhookSender::new(queue, settings)
        .context("building the webhook's HTTP client")?;
    let stop = stop.clone();
    services.spawn("webhook sender", async move {
        sender.run(stop).await;
        Ok(())
    });
    Ok(())
}

/// One router per process validates and routes fixes, from MQTT and from
/// HTTP alike; its cache of riders' orders follows the log's tail as the
/// service "holders cache".
/// Payloads above `fix_rate` per rider are refused (`rate_limited`).
pub fn fix_router(
    b: &Backends,
    fix_rate: Option<tracker_gate::Rate>,
    services: &mut Services,
    stop: &CancellationToken,
) -> Arc<Router> {
    let router = Arc::new(
        Router::new(
            b.store.clone(),
            b.log.clone(),
            b.track.clone(),
            b.clock.clone(),
            FixLimits::default(),
            Arc::new(Stats::default()),
        )
        .with_rider_index(b.dispatch.clone())
        .with_fix_rate(fix_rate),
    );
    let (cache, stop) = (router.clone(), stop.clone());
    services.spawn("holders cache", async move {
        // Riders whose fix allowance is full again are forgotten now and then.
        let prune = async {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                cache.prune_fix_rate();
            }
        };
        tokio::select! {
            () = cache.cache_holders(stop) => {}
            () = prune => {}
        }
        Ok(())
    });
    router
}
