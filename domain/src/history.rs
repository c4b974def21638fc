//! The durable status history of an order: one entry per status change of
//! the order or of one of its packages, taken from the change's own events so
//! the store writes it in the same transaction as the change.

use crate::event::EventBody;
use serde::{Deserialize, Serialize};

/// One status change, as `GET /v1/orders/{id}/history` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The package that changed; absent for the order's own status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The order's version (or the package's) after the change.
    pub version: i64,
    /// The status before; absent for the first one.
    pub from: Option<String>,
    /// The status after.
    pub to: String,
    /// When, Unix ms.
    pub ts: i64,
    /// Who made it (`admin:<sub>`, `rider:<id>`, `system`, or what the caller named).
    pub by: Option<String>,
    /// Why, when a reason was given.
    pub reason: Option<String>,
}

/// The history entries of a change's `events`, in order.
pub fn entries(events: &[EventBody]) -> Vec<HistoryEntry> {
    events
        .iter()
        .filter_map(|e| match e {
            EventBody::Status {
                status,
                from,
                version,
                ts,
                reason,
                by,
            } => Some(HistoryEntry {
                package: None,
                version: *version,
                from: from.map(|s| s.as_str().to_owned()),
                to: status.as_str().to_owned(),
                ts: *ts,
                by: by.clone(),
                reason: reason.clone(),
            }),
            EventBody::Package {
                package,
                status,
                from,
                version,
                ts,
                reason,
                by,
            } => Some(HistoryEntry {
                package: Some(package.clone()),
                version: *version,
                from: from.map(|s| s.as_str().to_owned()),
                to: status.as_str().to_owned(),
                ts: *ts,
                by: by.clone(),
                reason: reason.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// A history entry as an order's customer (or a share link) may see it: an
/// operator's or rider's account becomes their role.
pub fn customer_entry(mut e: HistoryEntry) -> HistoryEntry {
    e.by = e.by.map(|by| crate::view::account_role(&by));
    e
}
