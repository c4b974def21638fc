//! The riders' MQTT listener: every byte sequence a client may send after connecting.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tracker_ingest::listener::read_client_bytes(data);
});
