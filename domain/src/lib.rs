//! Domain types shared by the hub and ingest: no I/O lives here.
//!
//! # Layout
//! - [`ids`]: snowflake-style order ids generated up front, safe when the clock steps back.
//! - [`status`]: the order state machine of `docs/design.md` (forward, cancel, return).
//! - [`order`]: an order with its optimistic versions, and the changes the API may make to it.
//! - [`fix`]: a rider's GPS fix as it arrives over MQTT or HTTP, and its validation.
//! - [`rider`]: what a rider id may be, at every door.
//! - [`event`]: the events of an order's log and their wire encoding (`docs/protocol.md`).
//! - [`live`]: the fold of an order's events into its current state, served as a snapshot.
//! - [`view`]: what a customer may see of their order's events (views by role).
//! - [`route`]: what a planned route may be.
//! - [`episodes`]: alert episodes and arrivals as changes of the order row, each once.
//! - [`goods`]: recipient, sender, items and packages of an order, and their bounds.
//! - [`package`]: a package's own state machine, kept consistent with its order's.
//! - [`refund`]: an order's one refund: pending until its earlier changes are logged, then applied.
//! - [`history`]: the durable status history, taken from a change's events.
//! - [`clock`]: wall-clock access behind a trait so tests can move time.

pub mod clock;
pub mod episodes;
pub mod event;
pub mod fix;
pub mod goods;
pub mod history;
pub mod ids;
pub mod live;
pub mod order;
pub mod package;
pub mod refund;
pub mod rider;
pub mod route;
pub mod status;
pub mod view;

pub use clock::{Clock, SystemClock};
pub use episodes::Episode;
pub use event::{EventBody, PosEvent, Stop};
pub use fix::{Fix, FixLimits, RejectReason};
pub use live::LiveState;
pub use order::{Expected, NewOrder, Order, Point};
pub use status::Status;
