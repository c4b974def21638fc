//! Riders' payloads: one fix or a batch, whatever the bytes, and the
//! customer's view of whatever an event text holds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tracker_domain::FixLimits;
use tracker_domain::fix::{parse_batch, parse_fix};

fuzz_target!(|data: &[u8]| {
    let limits = FixLimits::default();
    let now = 1_763_700_000_000;
    if let Ok(f) = parse_fix(data, now, &limits) {
        assert!(f.lat.is_finite() && (-90.0..=90.0).contains(&f.lat));
        assert!(f.lon.is_finite() && (-180.0..=180.0).contains(&f.lon));
    }
    if let Ok((good, bad)) = parse_batch(data, now, &limits) {
        assert!(good.len() + bad.len() <= limits.max_batch);
    }
    let _ = tracker_domain::view::customer_frame(data);
});
