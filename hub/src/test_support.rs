//! What the hub's unit tests share: a SQLite store in a temporary folder and
//! claims for any caller.

use crate::auth::{Claims, Role};
use std::sync::Arc;
use tracker_backend::store::sqlite::SqliteStore;

/// A fresh, migrated SQLite store; it lives as long as the folder.
pub(crate) async fn sqlite_store() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    (Arc::new(SqliteStore::open(&url).await.unwrap()), dir)
}

/// Unexpiring claims of `sub` as `role`, with a display name.
pub(crate) fn claims(sub: &str, role: Role) -> Claims {
    Claims {
        name: Some(format!("{sub} Rider")),
        ..Claims::new(sub, role, u64::MAX)
    }
}
