//! `tracker`: loads the configuration, starts tracing and metrics, runs a mode until Ctrl-C / SIGTERM.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use tracker_backend::Store;
use tracker_cli::settings::{LogFormat, Settings, example_file, settings_help};
use tracker_cli::system::{self, Mode, Running};
use tracker_cli::token::{self, TokenRequest};
use tracker_hub::Role;

/// `tracker --version`: the crate's version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TRACKER_COMMIT"),
    ")"
);

/// mimalloc instead of glibc's malloc: allocation and free were ~23 % of the
/// process's CPU under ingest load (perf), most of it glibc's bin management.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A real-time delivery-tracking hub. Configuration: TRACKER_* variables (see `tracker default-config`).
#[derive(Parser)]
#[command(version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process on the embedded defaults (broker, in-process log, SQLite).
    #[command(after_long_help = settings_help())]
    Run {
        /// Also start simulated riders carrying orders of demo-customer (default 5).
        #[arg(long, value_name = "RIDERS", num_args = 0..=1, default_missing_value = "5")]
        demo: Option<usize>,
    },
    /// The hub only: orders API and WebSocket, against shared backends.
    #[command(after_long_help = settings_help())]
    Hub,
    /// Ingest only: rider fixes from an external MQTT broker into the shared log.
    #[command(after_long_help = settings_help())]
    Ingest,
    /// Prints the example configuration file.
    DefaultConfig,
    /// Prints a token signed with the configured secret (TRACKER_JWT_SECRET).
    Token {
        /// admin, customer, rider or viewer.
        #[arg(long)]
        role: String,
        /// The user id the token speaks for (a customer id, a rider id, an operator's name).
        #[arg(long)]
        sub: String,
        /// Seconds until it expires.
        #[arg(long, value_name = "SECS", default_value_t = 3600)]
        ttl: u64,
        /// A display name (a rider's is what customers see).
        #[arg(long)]
        name: Option<String>,
        /// The order a viewer may watch (required for `viewer`).
        #[arg(long, value_name = "ID")]
        order: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mode = match &cli.command {
        Command::DefaultConfig => {
            print!("{}", example_file());
            return Ok(());
        }
        Command::Token {
            role,
            sub,
            ttl,
            name,
            order,
        } => {
            let settings = Settings::from_env()?;
            let req = TokenRequest {
                role: role.clone(),
                sub: sub.clone(),
                ttl_secs: *ttl,
                name: name.clone(),
                order: order.clone(),
            };
            println!("{}", token::mint(&settings, &req)?);
            return Ok(());
        }
        Command::Run { .. } => Mode::Run,
        Command::Hub => Mode::Hub,
        Command::Ingest => Mode::Ingest,
    };
    let settings = Settings::from_env()?;
    init_logs(settings.log_format);
    tracing::debug!(?settings, "configuration");
    let metrics = tracker_cli::telemetry::install().context("installing the metrics recorder")?;
    let running = system::start(&settings, mode, Some(metrics)).await?;
    let mut demo_riders = 0;
    if let Command::Run { demo: Some(riders) } = cli.command
        && riders > 0
    {
        tracker_cli::demo::start(&settings, &running, riders)?;
        demo_riders = riders;
    }
    if mode == Mode::Run {
        // The page links name a real order of demo-customer: the demo's
        // first (it makes them within a second or two), or one in the store.
        let wait = if demo_riders > 0 {
            std::time::Duration::from_secs(5)
        } else {
            std::time::Duration::ZERO
        };
        let order = demo_order(running.store.as_ref(), wait).await;
        print_banner(&running, order.as_deref());
    }
    if demo_riders > 0 {
        println!(
            "demo: {demo_riders} simulated riders carry orders of demo-customer around the city; watch them in the operator view\n"
        );
    }
    let stop = running.stop.clone();
    let readiness = running.readiness.clone();
    let drain = std::time::Duration::from_secs(settings.drain_secs);
    tokio::spawn(async move {
        shutdown_signal().await;
        // `/readyz` turns 503 first, so load balancers stop sending traffic
        // here before connections close; a second signal stops at once.
        readiness.drain();
        if !drain.is_zero() {
            tracing::info!(secs = drain.as_secs(), "draining before the stop");
            tokio::select! {
                () = tokio::time::sleep(drain) => {}
                () = shutdown_signal() => {}
            }
        }
        tracing::info!("shutting down");
        stop.cancel();
    });
    running.wait().await
}

/// Logs to standard output as text (colours only on a terminal) or as one
/// JSON object per line (`TRACKER_LOG_FORMAT=json`) for log collectors.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => logs.json().with_ansi(false).init(),
        LogFormat::Text => logs.with_ansi(std::io::stdout().is_terminal()).init(),
    }
}

/// An order of demo-customer under way, looked for until `wait` has passed.
async fn demo_order(store: &dyn Store, wait: std::time::Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Ok(orders) = store.active_orders(100).await
            && let Some(o) = orders.iter().find(|o| o.customer_id == "demo-customer")
        {
            return Some(o.id.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn print_banner(r: &Running, order: Option<&str>) {
    let http = r.http_addr.map(|a| a.to_string()).unwrap_or_default();
    let (web, ws) = if r.tls {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    println!("\ntracker is running");
    println!("  HTTP / WebSocket  {web}://{http}   ({ws}://{http}/v1/ws, /healthz, /metrics)");
    if let Some(m) = r.mqtt_addr {
        println!(
            "  MQTT (riders)     mqtt://{m}   (3.1.1 or 5; username = rider id, password = a rider token; publish to riders/{{rider_id}}/pos)"
        );
    }
    if let Some(m) = r.mqtts_addr {
        println!("  MQTT over TLS     mqtts://{m}");
    }
    if let Some(secret) = &r.generated_secret {
        println!(
            "  JWT secret        {secret}   (random for this run; set TRACKER_JWT_SECRET to keep one)"
        );
    }
    // Ready-made tokens only for a secret made up for this run (a demo):
    // with a configured secret, tokens are minted by whoever holds it.
    if r.generated_secret.is_none() {
        println!("\ntokens: TRACKER_JWT_SECRET is set, so none are printed; mint them with it");
    } else if let Some(auth) = &r.auth {
        println!("\nready tokens, valid 24 h:");
        for (sub, role) in [
            ("ops", Role::Admin),
            ("demo-customer", Role::Customer),
            ("demo-rider", Role::Rider),
        ] {
            println!(
                "  {:<8} (sub={sub:<13}) {}",
                format!("{role:?}").to_lowercase(),
                auth.mint(sub, role, 24 * 3600)
            );
        }
        // The token rides in the URL fragment: browsers never send it to servers or logs.
        let admin = auth.mint("ops", Role::Admin, 24 * 3600);
        let customer = auth.mint("demo-customer", Role::Customer, 24 * 3600);
        println!("\npages (open in a browser):");
        println!("  start page      {web}://{http}/");
        println!("  operator view   {web}://{http}/ops#token={admin}");
        // Without an order of demo-customer yet, ORDER_ID stands for one.
        let (id, note) = match order {
            Some(id) => (id, "an order of demo-customer"),
            None => (
                "ORDER_ID",
                "ORDER_ID: an order of demo-customer, once there is one",
            ),
        };
        println!("  customer map    {web}://{http}/track/{id}#token={customer}   ({note})");
        println!("  trip replay     {web}://{http}/replay/{id}#token={admin}");
    }
    println!();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
