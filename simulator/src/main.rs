//! `tracker-sim`: simulated riders, orders and watchers against a running
//! tracker, with a progress bar while it runs, a summary table at the end and
//! one JSON line for scripts (the last line of stdout).

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracker_sim::nchan::NchanConfig;
use tracker_sim::phones::Broker;
use tracker_sim::route::LatLon;
use tracker_sim::stats::Live;
use tracker_sim::{SimConfig, run};

/// Simulated riders carrying orders, and watchers measuring every delivery.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    /// Another hub to load the same way instead of the tracker.
    #[command(subcommand)]
    peer: Option<Peer>,
    /// The hub.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The MQTT broker riders publish to.
    #[arg(long, default_value = "mqtt://127.0.0.1:1884")]
    mqtt: String,
    /// The hub's HS256 secret (tokens are minted with it).
    #[arg(long, env = "TRACKER_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Riders riding at once.
    #[arg(long, default_value_t = 20)]
    riders: usize,
    /// Milliseconds between a rider's fixes (15000 is realistic; 50 for load).
    #[arg(long, default_value_t = 15_000)]
    interval_ms: u64,
    /// Riders' speed, m/s.
    #[arg(long, default_value_t = 6.0)]
    speed: f64,
    /// Watchers per order.
    #[arg(long, default_value_t = 2)]
    watchers: usize,
    /// Share of watchers over SSE.
    #[arg(long, default_value_t = 0.1)]
    sse_share: f64,
    /// Share of watchers over long-poll.
    #[arg(long, default_value_t = 0.05)]
    poll_share: f64,
    /// Share of riders who go offline on the way and upload a batch later.
    #[arg(long, default_value_t = 0.1)]
    offline_share: f64,
    /// Hubs the watchers connect to, comma-separated (default: `--url`): spread
    /// over them, each watcher moves on to the next after a drop.
    #[arg(long, value_delimiter = ',')]
    watch_url: Vec<String>,
    /// All of an order's watchers start on the same hub of `--watch-url`,
    /// chosen by the order id (order affinity), instead of each on its own.
    #[arg(long)]
    watchers_by_order: bool,
    /// WebSocket watchers drop their connection about every N seconds (0 = never).
    #[arg(long, default_value_t = 0)]
    drop_every_secs: u64,
    /// Run for this many seconds.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Measure delays only for fixes taken this many seconds after the start.
    #[arg(long, default_value_t = 0)]
    warmup_secs: u64,
    /// After the riders stop, watchers keep receiving what is in flight this
    /// long; what arrives later counts as lost (the report lists such a
    /// watcher as stopped short of its order's final seq, with no gap).
    #[arg(long, default_value_t = 2)]
    drain_secs: u64,
    /// Start at most this many orders.
    #[arg(long)]
    max_orders: Option<u64>,
    /// MQTT connections the riders share (a trusted network:
    /// `TRACKER_MQTT_AUTH=none`, or a broker without ACLs).
    #[arg(long, default_value_t = 8)]
    mqtt_connections: usize,
    /// One MQTT connection per rider instead, logged in with the rider's token
    /// (what `TRACKER_MQTT_AUTH=jwt`, the default, asks for).
    #[arg(long)]
    rider_logins: bool,
    /// Phones speak MQTT 3.1.1 instead of 5.
    #[arg(long)]
    mqtt_v311: bool,
    /// Watchers watch as the order's `customer` (who sees the rider from pick-up
    /// on) or as an `operator` (who sees every fix: use it to measure fan-out).
    #[arg(long, default_value = "customer", value_parser = ["customer", "operator"])]
    watch_as: String,
    /// Stores and customers lie within this many metres of the centre.
    #[arg(long, default_value_t = 3000.0)]
    radius_m: f64,
    /// City centre, `lat,lon`.
    #[arg(long, default_value = "23.1291,113.2644")]
    center: String,
    /// No progress bar.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Peer {
    /// nginx + Nchan: publish by HTTP POST to /pub/{channel}, watch over WebSocket at /sub/{channel}.
    Nchan {
        /// nginx with the two Nchan locations.
        #[arg(long, default_value = "http://127.0.0.1:18380")]
        url: String,
        /// Channels (stand-ins for orders).
        #[arg(long, default_value_t = 2000)]
        channels: usize,
        /// WebSocket subscribers per channel.
        #[arg(long, default_value_t = 5)]
        watchers: usize,
        /// Messages per second over all channels.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Publish for this many seconds.
        #[arg(long, default_value_t = 60)]
        duration_secs: u64,
        /// Concurrent HTTP publishers.
        #[arg(long, default_value_t = 16)]
        publishers: usize,
    },
    /// No hub: the trip watcher's own code replayed on ground-truth trips in
    /// simulated time; prints ETA error and alert precision / recall.
    Accuracy {
        /// Trips to replay.
        #[arg(long, default_value_t = 600)]
        trips: usize,
        /// Seed of the city and the trips.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share of trips with an injected anomaly.
        #[arg(long, default_value_t = 0.5)]
        anomaly_share: f64,
        /// Keep the model at its defaults (what learning is worth).
        #[arg(long)]
        no_learning: bool,
    },
}

fn config(a: &Args) -> anyhow::Result<SimConfig> {
    let secret = a
        .jwt_secret
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--jwt-secret (or TRACKER_JWT_SECRET) is required"))?;
    let (lat, lon) = a
        .center
        .split_once(',')
        .ok_or_else(|| anyhow::anyhow!("--center: expected lat,lon"))?;
    let center = LatLon {
        lat: lat.trim().parse()?,
        lon: lon.trim().parse()?,
    };
    anyhow::ensure!(
        (-85.0..=85.0).contains(&center.lat) && (-180.0..=180.0).contains(&center.lon),
        "--center out of range"
    );
    anyhow::ensure!(a.interval_ms >= 10, "--interval-ms must be at least 10");
    anyhow::ensure!(a.riders >= 1, "--riders must be at least 1");
    anyhow::ensure!(
        a.speed > 0.0 && a.speed <= 100.0,
        "--speed must be within (0, 100] m/s (a fix reports it, and the hub rejects faster)"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&(a.sse_share + a.poll_share)),
        "--sse-share + --poll-share must be within 0..=1"
    );
    let mut cfg = SimConfig::new(&a.url, Broker::parse(&a.mqtt)?, secret);
    cfg.riders = a.riders;
    cfg.interval = Duration::from_millis(a.interval_ms);
    cfg.speed_mps = a.speed;
    cfg.center = center;
    cfg.radius_m = a.radius_m.clamp(150.0, 50_000.0);
    cfg.watch_as_operator = a.watch_as == "operator";
    cfg.watchers_per_order = a.watchers;
    cfg.sse_share = a.sse_share;
    cfg.poll_share = a.poll_share;
    cfg.offline_share = a.offline_share;
    cfg.watch_urls = a
        .watch_url
        .iter()
        .map(|u| u.trim_end_matches('/').to_owned())
        .collect();
    cfg.watchers_by_order = a.watchers_by_order;
    cfg.drop_every = (a.drop_every_secs > 0).then(|| Duration::from_secs(a.drop_every_secs));
    cfg.duration = Some(Duration::from_secs(a.duration_secs));
    cfg.max_orders = a.max_orders;
    cfg.warmup = Duration::from_secs(a.warmup_secs);
    cfg.drain = Duration::from_secs(a.drain_secs);
    cfg.mqtt_connections = a.mqtt_connections.max(1);
    cfg.rider_logins = a.rider_logins;
    if a.mqtt_v311 {
        cfg.mqtt_version = tracker_sim::phones::Version::V311;
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Peer::Accuracy {
        trips,
        seed,
        anomaly_share,
        no_learning,
    }) = args.peer
    {
        let cfg = tracker_sim::accuracy::AccuracyConfig {
            trips,
            seed,
            anomaly_share,
            learn: !no_learning,
            ..Default::default()
        };
        let report = tracker_sim::accuracy::run(&cfg);
        println!("tracker-sim accuracy");
        print!("{}", report.table());
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let secs = match &args.peer {
        Some(Peer::Nchan { duration_secs, .. }) => *duration_secs,
        Some(Peer::Accuracy { .. }) | None => args.duration_secs,
    };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(secs)
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let stop = CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.cancel();
    });
    let tick_bar = bar.clone();
    let mut last = (0u64, 0u64, 0.0f64);
    let on_tick = move |live: &Live, elapsed: Duration| {
        let (fixes, delivered) = (Live::get(&live.fixes), Live::get(&live.delivered));
        let t = elapsed.as_secs_f64();
        let dt = (t - last.2).max(1e-3);
        tick_bar.set_position(elapsed.as_secs());
        tick_bar.set_message(format!(
            "{:.0} fixes/s  {:.0} deliveries/s  {} watching  {} orders done  lost {}  dup {}",
            (fixes - last.0) as f64 / dt,
            (delivered - last.1) as f64 / dt,
            Live::get(&live.watching),
            Live::get(&live.orders_delivered),
            Live::get(&live.lost),
            Live::get(&live.duplicated),
        ));
        last = (fixes, delivered, t);
    };
    let report = match args.peer {
        Some(Peer::Nchan {
            url,
            channels,
            watchers,
            rate,
            duration_secs,
            publishers,
        }) => {
            let cfg = NchanConfig {
                url: url.trim_end_matches('/').to_owned(),
                channels: channels.max(1),
                watchers_per_channel: watchers,
                rate: rate.max(1),
                duration: Duration::from_secs(duration_secs),
                publishers: publishers.max(1),
            };
            tracker_sim::nchan::run(cfg, stop, on_tick).await?
        }
        Some(Peer::Accuracy { .. }) => unreachable!("answered above"),
        None => run(config(&args)?, stop, on_tick).await?,
    };
    bar.finish_and_clear();
    println!("tracker-sim summary");
    print!("{}", report.table());
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
