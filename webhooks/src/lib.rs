//! The webhook sender (`docs/protocol.md`, "Webhooks"): every order event but
//! fixes, POSTed to one URL as its JSON frame, per order in `seq` order, at
//! least once, signed, retried with capped exponential backoff and jitter
//! for up to a day.
//!
//! The events wait in the backend's webhook queue (`backend/src/webhooks/`),
//! which the log fills as it appends; this crate only sends. Each process
//! sends the orders of the partitions it holds, several orders at once and
//! each order one event at a time, so a slow or dead endpoint holds back
//! only its own orders' later events, never the hub or other orders.

mod sender;
mod sign;

pub use sender::{WebhookSender, WebhookSettings};
pub use sign::{SIGNATURE_HEADER, sign, verify};
