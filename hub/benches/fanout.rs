//! Fan-out of one event to N watchers of an order: the frame is made once and
//! handed to every watcher's queue (`Fanout::deliver`), then each queue is
//! drained as the connection tasks would. With customers among the watchers
//! their view of the event is made once per event too.

#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracker_backend::Entry;
use tracker_domain::event::{EventBody, PosEvent, encode};
use tracker_domain::view::View;
use tracker_hub::watchers::fanout::{ConnSignal, Delivery, Fanout, Subscriber};

fn entry(seq: u64, before_pickup: bool) -> Entry {
    let body = EventBody::Pos(PosEvent {
        lat: 23.1291,
        lon: 113.2644,
        ts: 1_763_700_000_000,
        speed: Some(4.2),
        heading: Some(90.0),
        backfill: false,
        before_pickup,
    });
    Entry {
        order: "250069710392000512".into(),
        seq,
        ts: 1_763_700_000_000,
        json: encode("250069710392000512", seq, &body).into(),
    }
}

fn watchers(f: &Fanout, n: usize, customers: bool) -> Vec<mpsc::Receiver<Arc<Delivery>>> {
    (0..n)
        .map(|i| {
            let (tx, rx) = mpsc::channel(256);
            f.add(
                "250069710392000512".into(),
                Subscriber {
                    conn: i as u64,
                    tx,
                    signal: Arc::new(ConnSignal::default()),
                    view: if customers && i % 2 == 0 {
                        View::Customer
                    } else {
                        View::Full
                    },
                },
            )
            .now_or_never()
            .expect("a fan-out without a log adds at once")
            .unwrap();
            rx
        })
        .collect()
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    for n in [1usize, 10, 100, 1000] {
        for (label, customers) in [("operators", false), ("half_customers", true)] {
            let f = Fanout::default();
            let mut rxs = watchers(&f, n, customers);
            let e = [Arc::new(entry(7, customers))];
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
                b.iter(|| {
                    f.deliver(&e);
                    for rx in &mut rxs {
                        let _ = rx.try_recv();
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
