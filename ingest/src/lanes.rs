//! Parallel routing lanes keyed by rider, each routing a burst at a time.
//!
//! Publishes of one rider always take the same lane, so each rider's fixes
//! reach the log in the order the broker delivered them, while the lanes
//! overlap their round trips to the log. A lane routes everything that queued
//! while it was busy as one burst ([`Router::handle_until_done`]): one
//! pipelined append for the burst's orders and one push of track points, so
//! the cost per fix falls as the load rises.

use crate::topic;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracker_backend::track::Stored;
use tracker_domain::RejectReason;
use tracker_routing::{Kind, Router};

/// Lanes per consumer.
pub const LANES: usize = 16;
/// Publishes a lane routes together at most.
pub const BURST: usize = 64;
/// Publishes waiting per lane before the consumer waits (back-pressure).
const QUEUE: usize = 256;

/// One publish for a lane; `done` fires once it has been routed.
struct Job {
    rider: String,
    kind: Kind,
    payload: Bytes,
    done: Option<oneshot::Sender<Stored>>,
}

/// The lanes of one consumer and their worker tasks.
pub struct Lanes {
    senders: Vec<mpsc::Sender<Job>>,
    workers: JoinSet<()>,
    router: Arc<Router>,
}

impl Lanes {
    /// Starts [`LANES`] workers routing through `router` until `stop`.
    pub fn start(router: Arc<Router>, stop: CancellationToken) -> Self {
        let mut senders = Vec::with_capacity(LANES);
        let mut workers = JoinSet::new();
        for _ in 0..LANES {
            let (tx, rx) = mpsc::channel(QUEUE);
            workers.spawn(lane(rx, router.clone(), stop.clone()));
            senders.push(tx);
        }
        Lanes {
            senders,
            workers,
            router,
        }
    }

    /// Queues a publish to `topic` on its rider's lane, waiting while the lane
    /// is full; `done` fires once it is routed. A topic that names no rider is
    /// counted as rejected and `done` fires at once. False once the lane has
    /// stopped.
    pub async fn send(
        &self,
        topic: &str,
        payload: Bytes,
        done: Option<oneshot::Sender<Stored>>,
    ) -> bool {
        let Some((rider, kind)) = topic::parse(topic) else {
            self.router.stats().reject(RejectReason::BadTopic);
            if let Some(done) = done {
                let _ = done.send(Stored::now());
            }
            return true;
        };
        self.send_for(rider, kind, payload, done).await
    }

    /// [`Lanes::send`] for a publish whose topic the caller already parsed.
    pub async fn send_for(
        &self,
        rider: &str,
        kind: Kind,
        payload: Bytes,
        done: Option<oneshot::Sender<Stored>>,
    ) -> bool {
        let lane = lane_of(rider);
        let job = Job {
            rider: rider.to_owned(),
            kind,
            payload,
            done,
        };
        self.senders[lane].send(job).await.is_ok()
    }

    /// Lets the lanes finish what they hold, then waits for their workers.
    pub async fn close(self) {
        let Lanes {
            senders,
            mut workers,
            ..
        } = self;
        drop(senders);
        while workers.join_next().await.is_some() {}
    }
}

async fn lane(mut rx: mpsc::Receiver<Job>, router: Arc<Router>, stop: CancellationToken) {
    let mut burst = Vec::with_capacity(BURST);
    loop {
        burst.clear();
        if rx.recv_many(&mut burst, BURST).await == 0 {
            return;
        }
        let payloads: Vec<(&str, Kind, &[u8])> = burst
            .iter()
            .map(|j| (j.rider.as_str(), j.kind, &j.payload[..]))
            .collect();
        let Some(stored) = router.handle_until_done(&payloads, &stop).await else {
            return; // stopping: `done` never fires, so nothing is acked
        };
        metrics::histogram!("tracker_ingest_burst_publishes").record(burst.len() as f64);
        for job in burst.drain(..) {
            if let Some(done) = job.done {
                let _ = done.send(stored.clone());
            }
        }
    }
}

/// Waits on the `done` of a [`Lanes::send`]: true once the publish is routed
/// and its track points are durable (what its ack waits for), false if that
/// never happens (stopping).
pub async fn routed_and_stored(done: oneshot::Receiver<Stored>) -> bool {
    match done.await {
        Ok(stored) => stored.wait().await,
        Err(_) => false,
    }
}

/// The lane of a publish of `rider`.
fn lane_of(rider: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    rider.hash(&mut h);
    (h.finish() % LANES as u64) as usize
}
