//! The watcher side: who watches which order, and the transports that carry
//! the watcher protocol to them. The split follows centrifuge's Hub / Client:
//!
//! - [`fanout`] (the hub side): per-order subscriber lists fed by one tail of
//!   the event log; each event is encoded once and handed to every watcher's
//!   bounded queue.
//! - [`watcher`] (the client side): one client's subscriptions, resume,
//!   ordering and gap catch-up, whatever carries them.
//! - [`frames`]: the JSON frames of the watcher protocol.
//! - [`access`]: the events that take access away (a rider losing the
//!   order, share links revoked), decided alike on every node.
//! - The transports: [`ws`] (the upgrade, limits, close codes) with
//!   [`session`] (one task per socket), [`sse`], [`long_poll`].

pub mod access;
pub mod fanout;
pub mod frames;
pub mod long_poll;
pub mod session;
pub mod sse;
pub mod watcher;
pub mod ws;

#[cfg(test)]
mod tests;

pub use fanout::Fanout;
pub use watcher::{SubError, Watcher};
pub use ws::WsConfig;

use crate::auth::{Auth, Claims, Role};
use crate::http::error::ApiError;
use crate::http::extract::Caller;
use crate::orders::known::OrderReads;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracker_backend::EventLog;
use tracker_gate::{Gate, Permit, UserPermit};

/// What every transport of the watcher side needs: the subscriber lists, the
/// store (who may watch) and the log (snapshots, resume), the limits, and the
/// process's stop signal and task tracker.
#[derive(Clone)]
pub struct Watchers {
    pub(crate) fanout: Arc<Fanout>,
    pub(crate) auth: Arc<Auth>,
    pub(crate) gate: Gate,
    pub(crate) reads: OrderReads,
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) cfg: Arc<WsConfig>,
    pub(crate) stop: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

impl Watchers {
    /// The watcher side over `fanout`, which the caller feeds from the log's tail.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fanout: Arc<Fanout>,
        auth: Arc<Auth>,
        gate: Gate,
        reads: OrderReads,
        log: Arc<dyn EventLog>,
        cfg: WsConfig,
        stop: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Watchers {
            fanout,
            auth,
            gate,
            reads,
            log,
            cfg: Arc::new(cfg),
            stop,
            tasks,
        }
    }
}

/// A watcher connection's places in the process's cap and its user's; the
/// transport holds it for as long as the connection lasts.
pub struct Admission {
    _conn: Permit,
    _user: UserPermit,
}

impl Watchers {
    /// Lets a new watcher connection in, in the order `docs/protocol.md`
    /// gives: the client's address (block list 403, connect rate 429 with
    /// `Retry-After`, process cap 503) before its token is even looked at,
    /// then the token (401), then the user's cap (503; admins are not capped).
    pub(crate) fn admit(
        &self,
        ip: std::net::IpAddr,
        caller: Result<Caller, ApiError>,
    ) -> Result<(Claims, Admission), ApiError> {
        let conn = self.gate.admit(ip)?;
        let Caller(claims) = caller?;
        let user = self
            .gate
            .admit_user(&claims.sub, claims.role != Role::Admin)?;
        Ok((
            claims,
            Admission {
                _conn: conn,
                _user: user,
            },
        ))
    }
}

/// The three transports' routes, over any state that holds the watcher side
/// and token verification (`FromRef`). They live outside the API's request
/// timeout: they are long by design, and bound their own waits.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Watchers: FromRef<S>,
    Arc<Auth>: FromRef<S>,
    Gate: FromRef<S>,
{
    Router::new()
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/orders/{id}/sse", get(sse::sse))
        .route("/v1/orders/{id}/events", get(long_poll::poll))
}
