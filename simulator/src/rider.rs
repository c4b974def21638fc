//! One simulated rider: carries order after order through its whole life
//! (created → paid → preparing → ready → assigned → picked_up → delivered)
//! through the orders API, driving along streets to the store and on to the
//! customer and publishing a fix every interval; a share of riders drop offline
//! on the way and upload their backlog as a batch when they come back.

use crate::Ctx;
use crate::route::{LatLon, Route};
use crate::stats::Live;
use crate::stats::now_ms;
use crate::watcher::{Transport, WatchTarget};
use rand::Rng;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Rides until the run stops or the order budget is spent.
pub async fn ride(ctx: Arc<Ctx>, index: usize) {
    let rider = rider_id(&ctx.run_id, index);
    let name = format!("Rider{index} Sim");
    let (mut at, flaky) = {
        let mut rng = rand::rng();
        let at = ctx.cfg.center.random_corner(ctx.cfg.radius_m, &mut rng);
        (at, rng.random::<f64>() < ctx.cfg.offline_share)
    };
    for n in 0.. {
        if ctx.riders_stop.is_cancelled() {
            return;
        }
        let started = ctx.live.orders_started.fetch_add(1, Ordering::Relaxed);
        if ctx.cfg.max_orders.is_some_and(|max| started >= max) {
            return;
        }
        match carry(&ctx, index, &rider, &name, n, &mut at, flaky).await {
            Ok(true) => Live::add(&ctx.live.orders_delivered, 1),
            Ok(false) => return,
            Err(e) => {
                Live::add(&ctx.live.api_errors, 1);
                tracing::warn!(error = %e, rider, "order failed; the rider takes another");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = ctx.riders_stop.cancelled() => return,
                }
            }
        }
    }
}

/// One order from creation to delivery; Ok(false) when the run stopped on the way.
async fn carry(
    ctx: &Ctx,
    index: usize,
    rider: &str,
    name: &str,
    n: u64,
    at: &mut LatLon,
    flaky: bool,
) -> anyhow::Result<bool> {
    let cfg = &ctx.cfg;
    // Dispatch gives a rider an order near them: a store within 1 km, a
    // customer within 2.5 km of it, both inside the city radius.
    let (pickup, dropoff) = {
        let mut rng = rand::rng();
        let near = |p: LatLon, r: f64, rng: &mut rand::rngs::ThreadRng| loop {
            let q = p.random_corner(r.min(cfg.radius_m), rng);
            let (n, e) = cfg.center.delta(q);
            if n.hypot(e) <= cfg.radius_m {
                return q;
            }
        };
        let pickup = near(*at, 1000.0, &mut rng);
        (pickup, near(pickup, 2500.0, &mut rng))
    };
    let customer = match &cfg.customer {
        Some(c) => c.clone(),
        None => format!("sim-c-{}-{index}-{n}", ctx.run_id),
    };
    let key = format!("SIM-{}-{index}-{n}", ctx.run_id);
    // The streets to the customer are planned up front, and the order carries them.
    let to_customer = Route::streets(pickup, dropoff, &mut rand::rng());
    let mut planned = to_customer.points_until(f64::INFINITY);
    if planned.len() < 2 {
        planned.push(dropoff); // the store's own door: a route of two equal points
    }
    let mut o = ctx
        .api
        .create(&key, &customer, &planned, now_ms() + 45 * 60_000)
        .await?;
    ctx.orders.lock().expect("orders list").push(o.id.clone());
    spawn_watchers(ctx, &o.id, &customer);
    for to in ["paid", "preparing", "ready"] {
        ctx.api.status(&mut o, to).await?;
    }
    ctx.api.assign(&mut o, rider, name).await?;
    let to_store = Route::streets(*at, pickup, &mut rand::rng());
    if !drive(ctx, index, rider, &to_store, None).await {
        return Ok(false);
    }
    *at = pickup;
    ctx.api.status(&mut o, "picked_up").await?;
    // A flaky rider loses the network for the middle third of the way to the customer.
    let offline = flaky.then(|| {
        let l = to_customer.length();
        (l / 3.0, 2.0 * l / 3.0)
    });
    if !drive(ctx, index, rider, &to_customer, offline).await {
        return Ok(false);
    }
    *at = dropoff;
    ctx.api.status(&mut o, "delivered").await?;
    Ok(true)
}

/// Drives `route`, a fix every interval; between the two distances of `offline`
/// fixes are kept and uploaded as one batch afterwards. False when stopped.
async fn drive(
    ctx: &Ctx,
    index: usize,
    rider: &str,
    route: &Route,
    offline: Option<(f64, f64)>,
) -> bool {
    let cfg = &ctx.cfg;
    let step = cfg.speed_mps * cfg.interval.as_secs_f64();
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backlog = Vec::new();
    let mut d = 0.0f64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.riders_stop.cancelled() => return false,
        }
        let (p, heading) = route.walk(d);
        let fix = json!({
            "lat": p.lat, "lon": p.lon, "ts": now_ms(),
            "speed": cfg.speed_mps, "heading": heading.round(), "acc": 8,
        });
        let off = offline.is_some_and(|(from, to)| d >= from && d < to);
        if off {
            backlog.push(fix);
        } else {
            if !backlog.is_empty() {
                let count = backlog.len() as u64;
                let batch = serde_json::to_vec(&std::mem::take(&mut backlog)).expect("json");
                publish(ctx, index, rider, true, batch, count).await;
            }
            publish(ctx, index, rider, false, fix.to_string().into_bytes(), 1).await;
        }
        if d >= route.length() {
            return true;
        }
        d = (d + step).min(route.length());
    }
}

async fn publish(ctx: &Ctx, index: usize, rider: &str, batch: bool, payload: Vec<u8>, fixes: u64) {
    if ctx.phones.publish(index, rider, batch, payload).await {
        Live::add(&ctx.live.fixes, fixes);
    } else {
        Live::add(&ctx.live.publish_errors, fixes);
    }
}

/// K watchers of the new order: the customer's pages, a share over SSE and long-poll.
fn spawn_watchers(ctx: &Ctx, order: &str, customer: &str) {
    let cfg = &ctx.cfg;
    if cfg.watchers_per_order == 0 {
        return;
    }
    let token = if cfg.watch_as_operator {
        crate::api::mint(&cfg.jwt_secret, "sim-operator", "admin")
    } else {
        crate::api::mint(&cfg.jwt_secret, customer, "customer")
    };
    let mut rng = rand::rng();
    let bases: std::sync::Arc<[String]> = if cfg.watch_urls.is_empty() {
        vec![cfg.url.clone()].into()
    } else {
        cfg.watch_urls.clone().into()
    };
    // With order affinity, every watcher of the order starts on one hub (FNV-1a of its id).
    let order_hub = order.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }) % bases.len().max(1) as u64;
    for _ in 0..cfg.watchers_per_order {
        let r: f64 = rng.random();
        let transport = if r < cfg.sse_share {
            Transport::Sse
        } else if r < cfg.sse_share + cfg.poll_share {
            Transport::LongPoll
        } else {
            Transport::Ws
        };
        let target = WatchTarget {
            bases: bases.clone(),
            first: if cfg.watchers_by_order {
                order_hub as usize
            } else {
                rng.random_range(0..bases.len())
            },
            token: token.clone(),
            order: order.to_owned(),
            drop_every: cfg.drop_every,
        };
        let (live, stop, done) = (
            ctx.live.clone(),
            ctx.watchers_stop.clone(),
            ctx.tallies.clone(),
        );
        tokio::spawn(async move {
            let tally = crate::watcher::watch(target.clone(), transport, live, stop).await;
            let _ = done.send((target.order, transport, tally));
        });
    }
}

/// The id of rider `index` of run `run_id`.
pub fn rider_id(run_id: &str, index: usize) -> String {
    format!("sim-r-{run_id}-{index}")
}
