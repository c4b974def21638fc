//! Simulated riders, orders and watchers against a running tracker: the demo
//! behind `tracker run --demo` and the load tool `tracker-sim`.
//!
//! # Layout
//! - [`route`]: street-like routes around a city centre, walked at a steady speed.
//! - [`api`]: the orders API as an upstream system uses it, and token minting.
//! - [`phones`]: the riders' MQTT connections (TCP_NODELAY set).
//! - [`rider`]: one rider carrying orders through their whole life, some going offline.
//! - [`watcher`]: watchers of an order over WebSocket, SSE or long-poll, counting by seq.
//! - [`stats`]: live counters and per-watcher tallies with an HDR delay histogram.
//! - [`report`]: the summary table and the JSON line.
//! - [`truth`]: trips through a city with speeds by area and hour, injected anomalies, and their truth.
//! - [`accuracy`]: the trip watcher's own code replayed on such trips: ETA error, alert precision and recall.
//! - [`nchan`]: the same fan-out load against nginx + Nchan, for side-by-side runs.

pub mod accuracy;
pub mod api;
pub mod nchan;
pub mod phones;
pub mod report;
pub mod rider;
pub mod route;
pub mod stats;
pub mod truth;
pub mod watcher;

use crate::api::Api;
use crate::phones::{Broker, Logins, Phones};
use crate::report::Report;
use crate::route::LatLon;
use crate::stats::{Live, Tally};
use crate::watcher::Transport;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What to simulate and against what.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The hub, `http://host:port`.
    pub url: String,
    /// The MQTT broker riders publish to.
    pub broker: Broker,
    /// The hub's HS256 secret, to mint the admin and customer tokens.
    pub jwt_secret: String,
    /// How many riders ride at once.
    pub riders: usize,
    /// A fix every this often, per rider.
    pub interval: Duration,
    /// Riders' speed, m/s.
    pub speed_mps: f64,
    /// City centre.
    pub center: LatLon,
    /// Stores and customers lie within this radius of the centre, metres.
    pub radius_m: f64,
    /// Watchers per order.
    pub watchers_per_order: usize,
    /// Share of watchers over SSE.
    pub sse_share: f64,
    /// Share of watchers over long-poll.
    pub poll_share: f64,
    /// Share of riders who go offline on the way and upload a batch later.
    pub offline_share: f64,
    /// WebSocket watchers drop their connection about this often (resume exercise).
    pub drop_every: Option<Duration>,
    /// Hubs the watchers connect to, spread over them, each moving on to the
    /// next after a drop (empty: `url` alone).
    pub watch_urls: Vec<String>,
    /// All of an order's watchers start on one of `watch_urls`, chosen by the
    /// order id (a load balancer with order affinity), instead of each its own.
    pub watchers_by_order: bool,
    /// Watchers watch as operators (every fix) instead of as the order's customer.
    pub watch_as_operator: bool,
    /// Every order belongs to this customer (the demo's `demo-customer`); else one each.
    pub customer: Option<String>,
    /// Stop after this long (`None`: until cancelled).
    pub duration: Option<Duration>,
    /// Start at most this many orders in all.
    pub max_orders: Option<u64>,
    /// MQTT connections shared by the riders.
    pub mqtt_connections: usize,
    /// One MQTT connection per rider, logged in with the rider's token (as
    /// `TRACKER_MQTT_AUTH=jwt` wants); `mqtt_connections` is then unused.
    pub rider_logins: bool,
    /// The MQTT version of the phones (5 unless asked otherwise).
    pub mqtt_version: phones::Version,
    /// After riders stop, how long watchers may still receive what is in flight.
    pub drain: Duration,
    /// Delays are measured only for fixes taken this long after the start
    /// (orders being created and watchers connecting are start-up, not load).
    pub warmup: Duration,
}

impl SimConfig {
    /// Defaults for `url`, `broker` and `secret`: 20 riders, a fix every 15 s,
    /// 2 watchers per order, Guangzhou's centre.
    pub fn new(url: &str, broker: Broker, jwt_secret: &str) -> Self {
        SimConfig {
            url: url.trim_end_matches('/').to_owned(),
            broker,
            jwt_secret: jwt_secret.to_owned(),
            riders: 20,
            interval: Duration::from_secs(15),
            speed_mps: 6.0,
            center: LatLon {
                lat: 23.1291,
                lon: 113.2644,
            },
            radius_m: 3000.0,
            watchers_per_order: 2,
            sse_share: 0.1,
            poll_share: 0.05,
            offline_share: 0.1,
            drop_every: None,
            watch_urls: Vec::new(),
            watchers_by_order: false,
            watch_as_operator: false,
            customer: None,
            duration: Some(Duration::from_secs(60)),
            max_orders: None,
            mqtt_connections: 8,
            rider_logins: false,
            mqtt_version: phones::Version::V5,
            drain: Duration::from_secs(2),
            warmup: Duration::ZERO,
        }
    }
}

/// What every task of a run shares.
pub struct Ctx {
    /// The configuration.
    pub cfg: SimConfig,
    /// Orders API as admin.
    pub api: Api,
    /// MQTT connections.
    pub phones: Phones,
    /// Live counters.
    pub live: Arc<Live>,
    /// Ends the riders.
    pub riders_stop: CancellationToken,
    /// Ends the watchers (after the drain).
    pub watchers_stop: CancellationToken,
    /// Finished watchers hand their tally here.
    pub tallies: mpsc::UnboundedSender<(String, Transport, Tally)>,
    /// Every order created, for the final seq check.
    pub orders: Mutex<Vec<String>>,
    /// Tags this run's ids.
    pub run_id: String,
}

/// Runs a simulation until its duration, its order budget, or `stop`; then
/// lets watchers drain and reports. `on_tick` is called twice a second with the
/// live counters (the progress bar).
pub async fn run(
    cfg: SimConfig,
    stop: CancellationToken,
    mut on_tick: impl FnMut(&Live, Duration) + Send + 'static,
) -> anyhow::Result<Report> {
    let admin = api::mint(&cfg.jwt_secret, "sim-operator", "admin");
    let conn_stop = CancellationToken::new();
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let logins = if cfg.rider_logins {
        Logins::PerRider {
            riders: (0..cfg.riders)
                .map(|i| rider::rider_id(&run_id, i))
                .collect(),
            secret: cfg.jwt_secret.clone(),
        }
    } else {
        Logins::Shared(cfg.mqtt_connections)
    };
    let phones = Phones::connect(&cfg.broker, logins, cfg.mqtt_version, conn_stop.clone()).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        api: Api::new(&cfg.url, admin.clone()),
        phones,
        live: Arc::new(Live::default()),
        riders_stop: CancellationToken::new(),
        watchers_stop: CancellationToken::new(),
        tallies: tx,
        orders: Mutex::new(Vec::new()),
        run_id,
        cfg,
    });
    let started = Instant::now();
    ctx.live.measure_from_ms.store(
        stats::now_ms() + ctx.cfg.warmup.as_millis() as i64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut riders = tokio::task::JoinSet::new();
    for i in 0..ctx.cfg.riders {
        riders.spawn(rider::ride(ctx.clone(), i));
    }
    let collector = tokio::spawn(async move {
        let mut tallies = Vec::new();
        while let Some(t) = rx.recv().await {
            tallies.push(t);
        }
        tallies
    });
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let deadline = ctx.cfg.duration.map(|d| tokio::time::Instant::now() + d);
    loop {
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ticker.tick() => on_tick(&ctx.live, started.elapsed()),
            _ = expired => break,
            _ = stop.cancelled() => break,
            r = riders.join_next() => if r.is_none() { break },
        }
    }
    let ridden = started.elapsed();
    ctx.riders_stop.cancel();
    while riders.join_next().await.is_some() {}
    tokio::time::sleep(ctx.cfg.drain).await;
    ctx.watchers_stop.cancel();
    conn_stop.cancel();
    // Every watcher task holds a sender clone; the collector ends when the last one is done.
    let ctx = Arc::try_unwrap(ctx).map_err(|_| anyhow::anyhow!("a rider task outlived the run"))?;
    let Ctx {
        cfg,
        api: _,
        phones: _,
        live,
        tallies,
        orders,
        ..
    } = ctx;
    drop(tallies);
    let tallies = collector.await?;
    let orders = orders.into_inner().expect("orders list");
    let finals = report::final_seqs(&cfg.url, &admin, &orders).await;
    Ok(Report::build(
        &cfg,
        &live,
        ridden,
        &tallies,
        &finals,
        orders.len(),
    ))
}
