//! What the hub's unit tests share: a SQLite store in a temporary folder,
//! the order use cases over it on a hand-moved clock, and claims for any caller.

use crate::auth::{Claims, Role};
use std::sync::Arc;
use tracker_backend::store::sqlite::SqliteStore;

/// A fresh, migrated SQLite store; it lives as long as the folder.
pub(crate) async fn sqlite_store() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    (Arc::new(SqliteStore::open(&url).await.unwrap()), dir)
}

/// The tests' starting time, Unix ms.
pub(crate) const T0: i64 = 1_700_000_000_000;

/// The order use cases on `store` and `stock`, in-process dispatch and delay
/// queue, time from `clock`; payment timeout 60 s, pick-up timeout 30 s.
pub(crate) fn orders_on(
    store: Arc<dyn tracker_backend::Store>,
    stock: Arc<dyn tracker_backend::stock::Stock>,
    clock: &tracker_domain::clock::ManualClock,
) -> crate::orders::Orders {
    use crate::orders::{DispatchConfig, Orders, OrdersDeps};
    use std::time::Duration;
    Orders::new(
        OrdersDeps {
            store,
            ids: Arc::new(tracker_domain::ids::IdGenerator::new(
                1,
                Arc::new(clock.clone()),
            )),
            clock: Arc::new(clock.clone()),
            dispatch: Arc::new(tracker_backend::dispatch::memory::MemoryDispatch::new(
                Duration::from_secs(60),
            )),
            timers: Arc::new(tracker_backend::timers::memory::MemoryDelayQueue::default()),
            stock,
        },
        tracker_backend::relay::RelayWaker::default(),
        DispatchConfig {
            payment_timeout: Duration::from_secs(60),
            pickup_timeout: Duration::from_secs(30),
            ..Default::default()
        },
    )
}

/// Unexpiring claims of `sub` as `role`, with a display name.
pub(crate) fn claims(sub: &str, role: Role) -> Claims {
    Claims {
        name: Some(format!("{sub} Rider")),
        ..Claims::new(sub, role, u64::MAX)
    }
}

/// A request for the status `status`, expecting order version `version`.
pub(crate) fn to(status: &str, version: i64) -> crate::orders::commands::StatusChange {
    crate::orders::commands::StatusChange {
        to: status.into(),
        version: Some(version),
        status_version: None,
        reason: None,
        by: None,
    }
}
