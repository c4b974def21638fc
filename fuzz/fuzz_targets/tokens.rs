//! The JWT path: whatever a client puts in `Authorization` or `?token=`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use tracker_hub::{Auth, Role};

static AUTH: LazyLock<Auth> = LazyLock::new(|| Auth::hs256(b"fuzz-secret-0123456789"));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = AUTH.verify(text) {
        // Only a token we signed gets through, so the fuzzer can't forge one:
        // what it may find is a crash, or a token we minted and it replayed.
        assert!(!c.sub.trim().is_empty());
        assert!(c.role != Role::Viewer || c.order.is_some());
    }
});
