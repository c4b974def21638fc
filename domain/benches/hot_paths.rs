//! The per-fix and per-event hot paths: parsing and validating a fix (one
//! payload, and a batch of 100), folding it into the live state, encoding its
//! event, and making the customer's view of an event.

#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tracker_domain::event::{EventBody, PosEvent, encode};
use tracker_domain::fix::{FixLimits, parse_batch, parse_fix};
use tracker_domain::view::customer_frame;
use tracker_domain::{LiveState, Status};

const NOW: i64 = 1_763_700_000_000;

fn fix_parsing(c: &mut Criterion) {
    let limits = FixLimits::default();
    let one =
        br#"{"lat":23.1291,"lon":113.2644,"ts":1763699999000,"speed":4.2,"heading":90,"acc":8}"#;
    let mut g = c.benchmark_group("fix");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_and_validate", |b| {
        b.iter(|| parse_fix(black_box(one), NOW, &limits).unwrap())
    });
    let batch = format!(
        "[{}]",
        (0..100)
            .map(|i| format!(
                r#"{{"lat":23.1{i:03},"lon":113.2644,"ts":{},"speed":4.2}}"#,
                NOW - 100_000 + i * 1000
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    g.throughput(Throughput::Elements(100));
    g.bench_function("parse_batch_of_100", |b| {
        b.iter(|| parse_batch(black_box(batch.as_bytes()), NOW, &limits).unwrap())
    });
    g.finish();
}

fn pos(ts: i64) -> EventBody {
    EventBody::Pos(PosEvent {
        lat: 23.1291,
        lon: 113.2644,
        ts,
        speed: Some(4.2),
        heading: Some(90.0),
        backfill: false,
        before_pickup: false,
    })
}

fn events(c: &mut Criterion) {
    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(1));
    let mut state = LiveState::default();
    state.apply(
        1,
        &mut EventBody::Status {
            from: None,
            status: Status::PickedUp,
            version: 6,
            ts: 1,
            reason: None,
            by: None,
        },
    );
    let mut seq = 1;
    g.bench_function("fold_into_live_state", |b| {
        b.iter(|| {
            seq += 1;
            let mut body = pos(NOW + seq as i64);
            state.apply(seq, &mut body);
            black_box(body)
        })
    });
    let body = pos(NOW);
    g.bench_function("encode_pos", |b| {
        b.iter(|| encode(black_box("250069710392000512"), black_box(58), &body))
    });
    let text = encode("250069710392000512", 58, &body);
    g.bench_function("customer_view_of_pos", |b| {
        b.iter(|| customer_frame(black_box(&text)))
    });
    g.finish();
}

criterion_group!(benches, fix_parsing, events);
criterion_main!(benches);
