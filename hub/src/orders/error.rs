//! Why an order use case refused or failed. The HTTP layer (`hub/src/http/error.rs`)
//! turns each into a status and an error code; jobs log it.

use tracker_backend::dispatch::DispatchError;
use tracker_backend::stock::StockError;
use tracker_backend::{BoxError, StoreError};
use tracker_domain::order::ChangeError;

/// A refusal or failure of an order command or query.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The request itself is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// No such order.
    #[error("no such order")]
    NotFound,
    /// Authenticated, but not allowed this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The order moved since it was read: another writer won.
    #[error("the order changed while this request ran; read it again")]
    VersionConflict,
    /// The state machine refused the change (stale version, illegal transition).
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// A conflict with a code of its own (`already_taken`, `not_open`, `refund_required`).
    #[error("{message}")]
    Conflict {
        /// The machine-readable code.
        code: &'static str,
        /// A sentence for people.
        message: String,
    },
    /// A stock-controlled SKU of the order is short; nothing was reserved.
    #[error("`{sku}` is out of stock")]
    OutOfStock {
        /// The SKU found short.
        sku: String,
    },
    /// A backend (store, dispatch index) could not be reached; try again.
    #[error("a backend is unavailable")]
    Unavailable(#[source] BoxError),
    /// Something broke on our side (a corrupt row).
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl OrderError {
    /// The 409 of a grab that lost: another rider has the order.
    pub fn already_taken() -> Self {
        OrderError::Conflict {
            code: "already_taken",
            message: "another rider has this order".into(),
        }
    }
}

impl From<StoreError> for OrderError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => OrderError::NotFound,
            StoreError::Conflict => OrderError::VersionConflict,
            e @ StoreError::Unavailable(_) => OrderError::Unavailable(e.into()),
            e @ StoreError::Corrupt(_) => OrderError::Internal(e.into()),
        }
    }
}

impl From<StockError> for OrderError {
    fn from(e: StockError) -> Self {
        match e {
            StockError::OutOfStock { sku } => OrderError::OutOfStock { sku },
            StockError::Invalid(m) => OrderError::BadRequest(m),
            e @ StockError::Unavailable(_) => OrderError::Unavailable(e.into()),
        }
    }
}

impl From<DispatchError> for OrderError {
    fn from(e: DispatchError) -> Self {
        OrderError::Unavailable(e.into())
    }
}
