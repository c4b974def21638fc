//! The production store: PostgreSQL through sqlx, shared by every hub and ingest process.
//!
//! Same contract and tests as the SQLite store. Concurrent creates with one
//! business key serialise on the `order_dedup` primary key: the loser's insert
//! waits for the winner's commit, does nothing, and reads the winner's order.

use super::goods::postgres as sql;
use super::rows::{
    ACTIVE, ALERTING, JsonColumns, OrderRow, attached_statuses, events_json, outbox_item,
};
use super::{Cursor, Lookup, ModelEntry, NodeClaim, OutboxItem, Store, StoreError, TrackPoint};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;
use tracker_domain::goods::{Item, Package};
use tracker_domain::history::HistoryEntry;
use tracker_domain::{EventBody, Order, Status};

/// PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) and migrates the database.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        Ok(PostgresStore { pool })
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Stock kept in this database, on the store's pool.
    pub fn stock(&self) -> crate::stock::sql::SqlStock {
        crate::stock::sql::SqlStock::Postgres(self.pool.clone())
    }
}

async fn queue_events(
    tx: &mut sqlx::PgConnection,
    order_id: &str,
    events: &[EventBody],
    now: i64,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO outbox (order_id, events, created_at) VALUES ($1, $2, $3)")
        .bind(order_id)
        .bind(events_json(events)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sql::write_history(tx, order_id, events).await
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_order(
        &self,
        order: &Order,
        events: &[EventBody],
    ) -> Result<(Order, bool), StoreError> {
        let json = JsonColumns::of(order)?;
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO order_dedup (biz_order_no, biz_type, order_id, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
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
            let row: OrderRow = sqlx::query_as(
                "SELECT o.* FROM order_dedup d JOIN orders o ON o.id = d.order_id
                 WHERE d.biz_order_no = $1 AND d.biz_type = $2",
            )
            .bind(&order.biz_order_no)
            .bind(&order.biz_type)
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)",
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
        let row: OrderRow = sqlx::query_as("SELECT * FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE orders SET rider_id = $1, rider_name = $2, picked_up_at = $3, status = $4,
                version = $5, status_version = $6, promised_at = $7, cancel_reason = $8,
                cancelled_by = $9, updated_at = $10, late_alert_at = $11, shares_revoked_at = $12,
                route = $13, alerts = $14, open_alerts = $15, arrived_pickup_at = $16,
                arrived_dropoff_at = $17, recipient = $18, sender = $19, notes = $20,
                metadata = $21, refund = $22, refund_pending = $23
             WHERE id = $24 AND version = $25",
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
            let exists = sqlx::query("SELECT 1 FROM orders WHERE id = $1")
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
        // The order row is locked first, then its packages: the order every
        // writer of packages keeps too, so two writers never wait on each other.
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
        let mut tx = self.pool.begin().await?;
        // Lock the order row before the package and the outbox, as every
        // change of the order does, so the order's outbox ids rise in commit order.
        let found = sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !found {
            return Err(StoreError::NotFound);
        }
        sql::write_package(&mut tx, order_id, package).await?;
        queue_events(&mut tx, order_id, events, package.updated_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn items_of(&self, order_id: &str) -> Result<Vec<Item>, StoreError> {
        sql::items_of(&self.pool, order_id).await
    }

    async fn packages_of(&self, order_id: &str) -> Result<Vec<Package>, StoreError> {
        sql::packages_of(&self.pool, order_id).await
    }

    async fn history_of(&self, order_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        sql::history_of(&self.pool, order_id).await
    }

    async fn lookup(
        &self,
        lookup: &Lookup,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Order>, Option<Cursor>), StoreError> {
        sql::lookup(&self.pool, lookup, after, limit).await
    }

    async fn rider_orders(&self, rider_id: &str) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT id FROM orders WHERE rider_id = $1 AND status IN ({})",
            attached_statuses()
        );
        let rows = sqlx::query(&sql)
            .bind(rider_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    async fn active_orders(&self, limit: usize) -> Result<Vec<Order>, StoreError> {
        let sql = format!("SELECT * FROM orders WHERE {ACTIVE} ORDER BY created_at DESC LIMIT $1");
        let rows: Vec<OrderRow> = sqlx::query_as(&sql)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
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
            "SELECT * FROM orders WHERE status = $1 AND updated_at < $2
             ORDER BY updated_at LIMIT $3",
        )
        .bind(status.as_str())
        .bind(updated_before)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Order::try_from).collect()
    }

    async fn overdue_orders(&self, now: i64, limit: usize) -> Result<Vec<Order>, StoreError> {
        let sql = format!(
            "SELECT * FROM orders WHERE promised_at IS NOT NULL AND late_alert_at IS NULL
               AND {ACTIVE} AND promised_at <= $1
             ORDER BY promised_at LIMIT $2"
        );
        let rows: Vec<OrderRow> = sqlx::query_as(&sql)
            .bind(now)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Order::try_from).collect()
    }

    async fn alerting_orders(&self, limit: usize) -> Result<Vec<Order>, StoreError> {
        let sql =
            format!("SELECT * FROM orders WHERE {ALERTING} ORDER BY updated_at DESC LIMIT $1");
        let rows: Vec<OrderRow> = sqlx::query_as(&sql)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Order::try_from).collect()
    }

    async fn model_load(&self) -> Result<Vec<ModelEntry>, StoreError> {
        let rows = sqlx::query("SELECT key, value, weight, updated_at FROM trip_model")
            .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO trip_model (key, value, weight, updated_at) VALUES ($1, $2, $3, $4)
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
        sql::pending_refunds(&self.pool, before, limit).await
    }

    async fn order_keys(
        &self,
        after: Option<&super::Cursor>,
        limit: usize,
    ) -> Result<Vec<super::Cursor>, StoreError> {
        sql::order_keys(&self.pool, after, limit).await
    }

    async fn outbox_holds(&self, order_id: &str) -> Result<bool, StoreError> {
        sql::outbox_holds(&self.pool, order_id).await
    }

    async fn finished_orders(&self, before: i64, limit: usize) -> Result<Vec<Order>, StoreError> {
        sql::finished_orders(&self.pool, before, limit).await
    }

    async fn records_of(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, super::OrderRecords>, StoreError> {
        sql::records_of(&self.pool, ids).await
    }

    async fn delete_orders(&self, orders: &[(String, i64)]) -> Result<Vec<String>, StoreError> {
        sql::delete_orders(&self.pool, orders).await
    }

    async fn claim_node(
        &self,
        owner: &str,
        wanted: Option<u16>,
        now: i64,
        until: i64,
    ) -> Result<NodeClaim, StoreError> {
        super::nodes::postgres::claim(&self.pool, owner, wanted, now, until).await
    }

    async fn renew_node(
        &self,
        node: u16,
        owner: &str,
        until: i64,
        mark: i64,
    ) -> Result<bool, StoreError> {
        super::nodes::postgres::renew(&self.pool, node, owner, until, mark).await
    }

    async fn outbox_fetch(&self, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let rows = sqlx::query("SELECT id, order_id, events FROM outbox ORDER BY id LIMIT $1")
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| outbox_item(r.get(0), r.get(1), r.get::<&str, _>(2)))
            .collect()
    }

    async fn outbox_ack(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_track_points(&self, points: &[TrackPoint]) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
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
             WHERE order_id = $1 ORDER BY ts",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(points)
    }
}

/// A fresh, empty database on the server of `TRACKER_TEST_DATABASE_URL`, for
/// tests; dropped by [`TestDatabase::drop_now`]. `None` when the variable is
/// unset (and not required).
#[cfg(any(test, feature = "contract"))]
pub mod testing {
    use sqlx::Connection;

    /// A database made for one test.
    pub struct TestDatabase {
        admin_url: String,
        /// Its name.
        pub name: String,
        /// Its URL.
        pub url: String,
    }

    /// The admin URL from the environment, or `None` (skipping) / a panic (when required).
    pub fn admin_url() -> Option<String> {
        match std::env::var("TRACKER_TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(u) => Some(u),
            None if std::env::var("TRACKER_TEST_REQUIRE_BACKENDS").as_deref() == Ok("1") => {
                panic!("TRACKER_TEST_DATABASE_URL is not set but TRACKER_TEST_REQUIRE_BACKENDS=1")
            }
            None => {
                eprintln!("skipped: TRACKER_TEST_DATABASE_URL is not set");
                None
            }
        }
    }

    impl TestDatabase {
        /// Creates `tracker_test_<random>` on the server of `admin_url`.
        pub async fn create(admin_url: &str) -> Self {
            let name = format!("tracker_test_{:x}", rand::random::<u64>());
            let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
            TestDatabase {
                admin_url: admin_url.to_owned(),
                url: format!("{base}/{name}"),
                name,
            }
        }

        /// Drops the database (its connections must be closed).
        pub async fn drop_now(self) {
            if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                let _ = sqlx::query(&sql).execute(&mut admin).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{TestDatabase, admin_url};
    use super::*;

    #[tokio::test]
    async fn postgres_store_meets_the_contract() {
        let Some(admin) = admin_url() else { return };
        let db = TestDatabase::create(&admin).await;
        let store = std::sync::Arc::new(PostgresStore::open(&db.url).await.unwrap());
        crate::store::contract::run(store.clone()).await;
        store.close().await;
        db.drop_now().await;
    }

    #[tokio::test]
    async fn unreachable_postgres_is_an_error() {
        assert!(
            PostgresStore::open("postgres://postgres@127.0.0.1:1/none")
                .await
                .is_err()
        );
    }
}
