//! Watchers' WebSocket frames: the op parser and the access change of an event text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tracker_hub::watchers::{access, frames};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = frames::parse(text, 4096);
    }
    let _ = access::access_change(data);
});
