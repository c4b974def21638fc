//! The embedded store: SQLite through sqlx, one file under the data directory.
//!
//! SQLite allows one writer at a time, so writes go through a pool of exactly
//! one connection (no `SQLITE_BUSY` races between our own writers) and reads
//! through a separate pool; WAL mode lets readers run beside the writer.

use super::goods::sqlite as sql;
use super::rows::{
    ACTIVE, ALERTING, JsonColumns, OrderRow, attached_statuses, events_json, outbox_item,
};
use super::{Cursor, Lookup, ModelEntry, NodeClaim, OutboxItem, Store, StoreError, TrackPoint};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;
use tracker_domain::goods::{Item, Package};
use tracker_domain::history::HistoryEntry;
use tracker_domain::{EventBody, Order, Status};

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`) and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrating {url}: {e}").into()))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(SqliteStore { writer, reader })
    }

    /// Stock kept in this database, written through the store's one writer.
    pub fn stock(&self) -> crate::stock::sql::SqlStock {
        crate::stock::sql::SqlStock::Sqlite(self.writer.clone())
    }
}

async fn queue_events(
    tx: &mut sqlx::SqliteConnection,
    order_id: &str,
    events: &[EventBody],
    now: i64,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO outbox (order_id, events, created_at) VALUES (?, ?, ?)")
        .bind(order_id)
        .bind(events_json(events)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sql::write_history(tx, order_id, events).await
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn create_order(
        &self,
        order: &Order,
        events: &[EventBody],
    ) -> Result<(Order, bool), StoreError> {
        let json = JsonColumns::of(order)?;
        let mut tx = self.writer.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO order_dedup (biz_order_no, biz_type, order_id, created_at)
             VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&order.biz_order_no)
        .bind(&order.biz_type)
        .bind(&order.id)
        .bind(order.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            let existing: String = sqlx::query(
                "SELECT order_id FROM order_dedup WHERE biz_order_no = ? AND biz_type = ?",
            )
            .bind(&order.biz_order_no)
            .bind(&order.biz_type)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            let row: OrderRow = sqlx::query_as("SELECT * FROM orders WHERE id = ?")
                .bind(&existing)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok((row.try_into()?, false));
        }
        sqlx::query(
            "INSERT INTO orders (id, biz_order_no, biz_type, customer_id, rider_id, status, version,
                status_version, pickup_lat, pickup_lon, dropoff_lat, dropoff_lon, promised_at,
                cancel_reason, cancelled_by, created_at, updated_at, route, alerts, open_alerts,
                arrived_pickup_at, arrived_dropoff_at, recipient, sender, notes, metadata,
                item_count, package_count)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                ?, ?)",
        )
        .bind(&order.id)
        .bind(&order.biz_order_no)
        .bind(&order.biz_type)
        .bind(&order.customer_id)
        .bind(&order.rider_id)
        .bind(order.status.as_str())
        .bind(order.version)
        .bind(order.status_version)
        .bind(order.pickup.lat)
        .bind(order.pickup.lon)
        .bind(order.dropoff.lat)
        .bind(order.dropoff.lon)
        .bind(order.promised_at)
        .bind(&order.cancel_reason)
        .bind(&order.cancelled_by)
        .bind(order.created_at)
        .bind(order.updated_at)
        .bind(&json.route)
        .bind(&json.alerts)
        .bind(json.open_alerts)
        .bind(order.arrived_pickup_at)
        .bind(order.arrived_dropoff_at)
        .bind(&json.recipient)
        .bind(&json.sender)
        .bind(&order.notes)
        .bind(&json.metadata)
        .bind(i64::from(order.item_count))
        .bind(i64::from(order.package_count))
        .execute(&mut *tx)
        .await?;
        if let Some(items) = order.items.as_deref().filter(|i| !i.is_empty()) {
            sql::insert_items(&order.id, items)
                .build()
                .execute(&mut *tx)
                .await?;
        }
        if let Some(packages) = order.packages.as_deref().filter(|p| !p.is_empty()) {
            sql::insert_packages(&order.id, packages)?
                .build()
                .execute(&mut *tx)
                .await?;
        }
        queue_events(&mut tx, &order.id, events, order.created_at).await?;
        tx.commit().await?;
        Ok((order.clone(), true))
    }

    async fn get_order(&self, id: &str) -> Result<Order, StoreError> {
        let row: OrderRow = sqlx::query_as("SELECT * FROM orders WHERE id = ?")
            .bind(id)
            .fetch_one(&self.reader)
            .await?;
        row.try_into()
    }

    async fn update_order_and_packages(
        &self,
        order: &Order,
        read_version: i64,
        packages: &[Package],
        events: &[EventBody],
    ) -> Result<(), StoreError> {
        let json = JsonColumns::of(order)?;
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query(
            "UPDATE orders SET rider_id = ?, rider_name = ?, picked_up_at = ?, status = ?,
                version = ?, status_version = ?, promised_at = ?, cancel_reason = ?,
                cancelled_by = ?, updated_at = ?, late_alert_at = ?, shares_revoked_at = ?,
                route = ?, alerts = ?, open_alerts = ?, arrived_pickup_at = ?, arrived_dropoff_at = ?,
                recipient = ?, sender = ?, notes = ?, metadata = ?, refund = ?, refund_pending = ?
             WHERE id = ? AND version = ?",
        )
        .bind(&order.rider_id)
        .bind(&order.rider_name)
        .bind(order.picked_up_at)
        .bind(order.status.as_str())
        .bind(order.version)
        .bind(order.status_version)
        .bind(order.promised_at)
        .bind(&order.cancel_reason)
        .bind(&order.cancelled_by)
        .bind(order.updated_at)
        .bind(order.late_alert_at)
        .bind(order.shares_revoked_at)
        .bind(&json.route)
        .bind(&json.alerts)
        .bind(json.open_alerts)
        .bind(order.arrived_pickup_at)
        .bind(order.arrived_dropoff_at)
        .bind(&json.recipient)
        .bind(&json.sender)
        .bind(&order.notes)
        .bind(&json.metadata)
        .bind(&json.refund)
        .bind(json.refund_pending)
        .bind(&order.id)
        .bind(read_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            let exists = sqlx::query("SELECT 1 FROM orders WHERE id = ?")
                .bind(&order.id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                StoreError::Conflict
            } else {
                StoreError::NotFound
            });
        }
        for p in packages {
            sql::write_package(&mut tx, &order.id, p).await?;
        }
        queue_events(&mut tx, &order.id, events, order.updated_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_package(
        &self,
        order_id: &str,
        package: &Package,
        events: &[EventBody],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sql::write_package(&mut tx, order_id, package).await?;
        queue_events(&mut tx, order_id, events, package.updated_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn items_of(&self, order_id: &str) -> Result<Vec<Item>, StoreError> {
        sql::items_of(&self.reader, order_id).await
    }

    async fn packages_of(&self, order_id: &str) -> Result<Vec<Package>, StoreError> {
        sql::packages_of(&self.reader, order_id).await
    }

    async fn history_of(&self, order_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        sql::history_of(&self.reader, order_id).await
    }

    async fn lookup(
        &self,
        lookup: &Lookup,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Order>, Option<Cursor>), StoreError> {
        sql::lookup(&self.reader, lookup, after, limit).await
    }

    async fn rider_orders(&self, rider_id: &str) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT id FROM orders WHERE rider_id = ? AND status IN ({})",
            attached_statuses()
        );
        let rows = sqlx::query(&sql)
            .bind(rider_id)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    async fn active_orders(&self, limit: usize) -> Result<Vec<Order>, StoreError> {
        let sql = format!("SELECT * FROM orders WHERE {ACTIVE} ORDER BY created_at DESC LIMIT ?");
        let rows: Vec<OrderRow> = sqlx::query_as(&sql)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(Order::try_from).collect()
    }

    async fn orders_in(
        &self,
        status: Status,
        updated_before: i64,
        limit: usize,
    ) -> Result<Vec<Order>, StoreError> {
        let rows: Vec<OrderRow> = sqlx::query_as(
            "SELECT * FROM orders WHERE status = ? AND updated_at < ?
             ORDER BY updated_at LIMIT ?",
        )
        .bind(status.as_str())
        .bind(updated_before)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(Order::try_from).collect()
    }

    async fn overdue_orders(&self, now: i64, limit: usize) -> Result<Vec<Order>, StoreError> {
        let sql = format!(
            "SELECT * FROM orders WHERE promised_at IS NOT NULL AND late_alert_at IS NULL
               AND {ACTIVE} AND promised_at <= ?
             ORDER BY promised_at LIMIT ?"
        );
        let rows: Vec<OrderRow> = sqlx::query_as(&sql)
            .bind(now)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(Order::try_from).collect()
    }

    async fn alerting_orders(&self, limit: usize) -> Result<Vec<Order>, StoreError> {
        let sql = format!("SELECT * FROM orders WHERE {ALERTING} ORDER BY updated_at DESC LIMIT ?");
        let rows: Vec<OrderRow> = sqlx::query_as(&sql)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(Order::try_from).collect()
    }

    async fn model_load(&self) -> Result<Vec<ModelEntry>, StoreError> {
        let rows = sqlx::query("SELECT key, value, weight, updated_at FROM trip_model")
            .fetch_all(&self.reader)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ModelEntry {
                key: r.get(0),
                value: r.get(1),
                weight: r.get(2),
                updated_at: r.get(3),
            })
            .collect())
    }

    async fn model_save(&self, entries: &[ModelEntry]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO trip_model (key, value, weight, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                    weight = excluded.weight, updated_at = excluded.updated_at",
            )
            .bind(&e.key)
            .bind(e.value)
            .bind(e.weight)
            .bind(e.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pending_refunds(&self, before: i64, limit: usize) -> Result<Vec<Order>, StoreError> {
        sql::pending_refunds(&self.reader, before, limit).await
    }

    async fn order_keys(
        &self,
        after: Option<&super::Cursor>,
        limit: usize,
    ) -> Result<Vec<super::Cursor>, StoreError> {
        sql::order_keys(&self.reader, after, limit).await
    }

    async fn outbox_holds(&self, order_id: &str) -> Result<bool, StoreError> {
        sql::outbox_holds(&self.reader, order_id).await
    }

    async fn finished_orders(&self, before: i64, limit: usize) -> Result<Vec<Order>, StoreError> {
        sql::finished_orders(&self.reader, before, limit).await
    }

    async fn records_of(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, super::OrderRecords>, StoreError> {
        sql::records_of(&self.reader, ids).await
    }

    async fn delete_orders(&self, orders: &[(String, i64)]) -> Result<Vec<String>, StoreError> {
        sql::delete_orders(&self.writer, orders).await
    }

    async fn claim_node(
        &self,
        owner: &str,
        wanted: Option<u16>,
        now: i64,
        until: i64,
    ) -> Result<NodeClaim, StoreError> {
        super::nodes::sqlite::claim(&self.writer, owner, wanted, now, until).await
    }

    async fn renew_node(
        &self,
        node: u16,
        owner: &str,
        until: i64,
        mark: i64,
    ) -> Result<bool, StoreError> {
        super::nodes::sqlite::renew(&self.writer, node, owner, until, mark).await
    }

    async fn outbox_fetch(&self, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let rows = sqlx::query("SELECT id, order_id, events FROM outbox ORDER BY id LIMIT ?")
            .bind(limit as i64)
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter()
            .map(|r| outbox_item(r.get(0), r.get(1), r.get::<&str, _>(2)))
            .collect()
    }

    async fn outbox_ack(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let marks = vec!["?"; ids.len()].join(",");
        let sql = format!("DELETE FROM outbox WHERE id IN ({marks})");
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id);
        }
        q.execute(&self.writer).await?;
        Ok(())
    }

    async fn insert_track_points(&self, points: &[TrackPoint]) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for chunk in points.chunks(super::rows::TRACK_ROWS_PER_INSERT) {
            super::rows::insert_track_rows(chunk)
                .build()
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn track_of(&self, order_id: &str) -> Result<Vec<TrackPoint>, StoreError> {
        let points = sqlx::query_as(
            "SELECT order_id, rider_id, ts, lat, lon, speed, heading, acc FROM track_points
             WHERE order_id = ? ORDER BY ts",
        )
        .bind(order_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = std::sync::Arc::new(SqliteStore::open(&url).await.unwrap());
        crate::store::contract::run(store).await;
    }

    #[tokio::test]
    async fn bad_url_is_an_error_not_a_panic() {
        assert!(
            SqliteStore::open("sqlite:///nonexistent-dir/x/y.db")
                .await
                .is_err()
        );
    }
}
