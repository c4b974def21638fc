//! The SQL of what an order carries (items, packages), its status history
//! and the lookups by customer and business key, written once for both
//! dialects: each function builds its statement with `QueryBuilder`, which
//! spells the placeholders of the engine it runs on.

use super::StoreError;
use sqlx::{FromRow, QueryBuilder};
use std::str::FromStr;
use tracker_domain::goods::{Item, Package, PackedItem};
use tracker_domain::history::HistoryEntry;
use tracker_domain::package::PackageStatus;

/// Where a page of a lookup starts: after the order created at `created_at`
/// with id `id` (newest first), as `GET /v1/orders?cursor=` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The last listed order's creation time, Unix ms.
    pub created_at: i64,
    /// The last listed order's id.
    pub id: String,
}

impl Cursor {
    /// The cursor's text: `<created_at>.<id>`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }

    /// Reads a cursor made by [`Cursor::encode`].
    pub fn decode(text: &str) -> Option<Cursor> {
        let (at, id) = text.split_once('.')?;
        let created_at = at.parse().ok()?;
        (!id.is_empty() && id.len() <= 128).then(|| Cursor {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// Which orders a lookup lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// One customer's orders (index `orders_by_customer`).
    Customer(String),
    /// The orders with this business order number, of one business line or
    /// of all of them (index `orders_by_biz`).
    Business {
        /// `biz_order_no`.
        no: String,
        /// `biz_type`, when given.
        kind: Option<String>,
    },
}

/// The statements, spelled once and made for each dialect's `QueryBuilder`.
macro_rules! statements {
    ($db:ty) => {
        use super::*;
        type Db = $db;

        /// One INSERT of an order's item lines.
        pub(crate) fn insert_items<'a>(order_id: &'a str, items: &'a [Item]) -> QueryBuilder<'a, Db>
        {
            let mut q = QueryBuilder::new(
                "INSERT INTO order_items (order_id, line, sku, name, qty, weight_g, volume_cm3) ",
            );
            q.push_values(items.iter().enumerate(), |mut row, (i, it)| {
                row.push_bind(order_id)
                    .push_bind(i as i64)
                    .push_bind(it.sku.as_str())
                    .push_bind(it.name.as_deref())
                    .push_bind(i64::from(it.qty))
                    .push_bind(it.weight_g.map(i64::from))
                    .push_bind(it.volume_cm3.map(i64::from));
            });
            q
        }

        /// One INSERT of an order's packages.
        pub(crate) fn insert_packages<'a>(
            order_id: &'a str,
            packages: &'a [Package],
        ) -> Result<QueryBuilder<'a, Db>, StoreError>
        {
            let contents = packages
                .iter()
                .map(|p| serde_json::to_string(&p.items).map_err(|e| StoreError::Corrupt(e.into())))
                .collect::<Result<Vec<_>, _>>()?;
            let mut q = QueryBuilder::new(
                "INSERT INTO order_packages (order_id, package_no, line, items, carrier, waybill,
                    status, version, updated_at) ",
            );
            q.push_values(
                packages.iter().zip(contents).enumerate(),
                |mut row, (i, (p, items))| {
                    row.push_bind(order_id)
                        .push_bind(p.package_no.as_str())
                        .push_bind(i as i64)
                        .push_bind(items)
                        .push_bind(p.carrier.as_deref())
                        .push_bind(p.waybill.as_deref())
                        .push_bind(p.status.as_str())
                        .push_bind(p.version)
                        .push_bind(p.updated_at);
                },
            );
            Ok(q)
        }

        /// The compare-and-set of one package: from `version - 1` to its new row.
        pub(crate) fn update_package<'a>(order_id: &'a str, p: &'a Package) -> QueryBuilder<'a, Db>
        {
            let mut q = QueryBuilder::new("UPDATE order_packages SET status = ");
            q.push_bind(p.status.as_str())
                .push(", version = ")
                .push_bind(p.version)
                .push(", updated_at = ")
                .push_bind(p.updated_at)
                .push(" WHERE order_id = ")
                .push_bind(order_id)
                .push(" AND package_no = ")
                .push_bind(p.package_no.as_str())
                .push(" AND version = ")
                .push_bind(p.version - 1);
            q
        }

        /// The compare-and-set of one package inside `conn`'s transaction:
        /// [`StoreError::Conflict`] when it moved on, [`StoreError::NotFound`]
        /// when the order has no such package.
        pub(crate) async fn write_package(
            conn: &mut <Db as sqlx::Database>::Connection,
            order_id: &str,
            p: &Package,
        ) -> Result<(), StoreError> {
            let moved = update_package(order_id, p)
                .build()
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if moved == 1 {
                return Ok(());
            }
            let mut q = QueryBuilder::<Db>::new("SELECT 1 FROM order_packages WHERE order_id = ");
            q.push_bind(order_id)
                .push(" AND package_no = ")
                .push_bind(p.package_no.as_str());
            let exists = q.build().fetch_optional(&mut *conn).await?.is_some();
            Err(if exists {
                StoreError::Conflict
            } else {
                StoreError::NotFound
            })
        }

        /// The history entries of `events`, inside `conn`'s transaction.
        pub(crate) async fn write_history(
            conn: &mut <Db as sqlx::Database>::Connection,
            order_id: &str,
            events: &[tracker_domain::EventBody],
        ) -> Result<(), StoreError> {
            let changes = tracker_domain::history::entries(events);
            if let Some(mut q) = insert_history(order_id, &changes) {
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// One INSERT of history entries (none: `None`).
        pub(crate) fn insert_history<'a>(
            order_id: &'a str,
            entries: &'a [HistoryEntry],
        ) -> Option<QueryBuilder<'a, Db>>
        {
            if entries.is_empty() {
                return None;
            }
            let mut q = QueryBuilder::new(
                "INSERT INTO order_history (order_id, package_no, version, from_status, to_status, ts, by, reason) ",
            );
            q.push_values(entries, |mut row, e| {
                row.push_bind(order_id)
                    .push_bind(e.package.as_deref())
                    .push_bind(e.version)
                    .push_bind(e.from.as_deref())
                    .push_bind(e.to.as_str())
                    .push_bind(e.ts)
                    .push_bind(e.by.as_deref())
                    .push_bind(e.reason.as_deref());
            });
            Some(q)
        }

        /// The SELECT of one table's rows of the orders `ids`, by order and
        /// in their order within it.
        pub(crate) fn select_of<'a>(what: Table, ids: &'a [String]) -> QueryBuilder<'a, Db>
        {
            let (columns, table, order) = match what {
                Table::Items => (
                    "order_id, sku, name, qty, weight_g, volume_cm3",
                    "order_items",
                    "line",
                ),
                Table::Packages => (
                    "order_id, package_no, items, carrier, waybill, status, version, updated_at",
                    "order_packages",
                    "line",
                ),
                Table::History => (
                    "order_id, package_no, version, from_status, to_status, ts, by, reason",
                    "order_history",
                    "id",
                ),
                Table::Track => (
                    "order_id, rider_id, ts, lat, lon, speed, heading, acc",
                    "track_points",
                    "ts",
                ),
            };
            let mut q = QueryBuilder::new(format!("SELECT {columns} FROM {table} WHERE order_id IN ("));
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(id.as_str());
            }
            q.push(format!(") ORDER BY order_id, {order}"));
            q
        }

        /// `select` (`SELECT … FROM <table>`) of one page of a lookup, newest first; `limit + 1` rows, so
        /// the caller knows whether a next page exists.
        pub(crate) fn select_lookup<'a>(
            select: &str,
            lookup: &'a Lookup,
            after: Option<&'a Cursor>,
            limit: usize,
        ) -> QueryBuilder<'a, Db>
        {
            let mut q = QueryBuilder::new(format!("{select} WHERE "));
            match lookup {
                Lookup::Customer(c) => {
                    q.push("customer_id = ").push_bind(c.as_str());
                }
                Lookup::Business { no, kind } => {
                    q.push("biz_order_no = ").push_bind(no.as_str());
                    if let Some(kind) = kind {
                        q.push(" AND biz_type = ").push_bind(kind.as_str());
                    }
                }
            }
            if let Some(c) = after {
                // (created_at, id) < (cursor): written out, as both engines use the index for it.
                q.push(" AND (created_at < ")
                    .push_bind(c.created_at)
                    .push(" OR (created_at = ")
                    .push_bind(c.created_at)
                    .push(" AND id < ")
                    .push_bind(c.id.as_str())
                    .push("))");
            }
            q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                .push_bind((limit + 1) as i64);
            q
        }

        /// The order's item lines, in their order.
        pub(crate) async fn items_of(
            pool: &sqlx::Pool<Db>,
            order_id: &str,
        ) -> Result<Vec<Item>, StoreError> {
            let ids = [order_id.to_owned()];
            let rows: Vec<ItemRow> = select_of(Table::Items, &ids)
                .build_query_as()
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().map(Item::from).collect())
        }

        /// The order's packages, in their order.
        pub(crate) async fn packages_of(
            pool: &sqlx::Pool<Db>,
            order_id: &str,
        ) -> Result<Vec<Package>, StoreError> {
            let ids = [order_id.to_owned()];
            let rows: Vec<PackageRow> = select_of(Table::Packages, &ids)
                .build_query_as()
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(Package::try_from).collect()
        }

        /// The order's history, oldest first.
        pub(crate) async fn history_of(
            pool: &sqlx::Pool<Db>,
            order_id: &str,
        ) -> Result<Vec<HistoryEntry>, StoreError> {
            let ids = [order_id.to_owned()];
            let rows: Vec<HistoryRow> = select_of(Table::History, &ids)
                .build_query_as()
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().map(HistoryEntry::from).collect())
        }

        /// One page of a lookup and the cursor of the next.
        pub(crate) async fn lookup(
            pool: &sqlx::Pool<Db>,
            lookup: &Lookup,
            after: Option<&Cursor>,
            limit: usize,
        ) -> Result<(Vec<tracker_domain::Order>, Option<Cursor>), StoreError> {
            let rows: Vec<super::super::rows::OrderRow> =
                select_lookup("SELECT * FROM orders", lookup, after, limit)
                .build_query_as()
                .fetch_all(pool)
                .await?;
            super::super::rows::page(rows, limit)
        }

        /// Everything kept per order of the orders `ids`, four statements in all.
        pub(crate) async fn records_of(
            pool: &sqlx::Pool<Db>,
            ids: &[String],
        ) -> Result<std::collections::HashMap<String, super::super::OrderRecords>, StoreError> {
            let mut out: std::collections::HashMap<String, super::super::OrderRecords> =
                ids.iter().map(|id| (id.clone(), Default::default())).collect();
            if ids.is_empty() {
                return Ok(out);
            }
            let items: Vec<ItemRow> = select_of(Table::Items, ids).build_query_as().fetch_all(pool).await?;
            for r in items {
                if let Some(rec) = out.get_mut(&r.order_id) {
                    rec.items.push(Item::from(r));
                }
            }
            let packages: Vec<PackageRow> =
                select_of(Table::Packages, ids).build_query_as().fetch_all(pool).await?;
            for r in packages {
                let id = r.order_id.clone();
                if let Some(rec) = out.get_mut(&id) {
                    rec.packages.push(Package::try_from(r)?);
                }
            }
            let history: Vec<HistoryRow> =
                select_of(Table::History, ids).build_query_as().fetch_all(pool).await?;
            for r in history {
                let id = r.order_id.clone();
                if let Some(rec) = out.get_mut(&id) {
                    rec.history.push(HistoryEntry::from(r));
                }
            }
            let track: Vec<crate::store::TrackPoint> =
                select_of(Table::Track, ids).build_query_as().fetch_all(pool).await?;
            for p in track {
                if let Some(rec) = out.get_mut(&p.order_id) {
                    rec.track.push(p);
                }
            }
            Ok(out)
        }

        /// Orders matching `condition` whose last change is older than
        /// `before`, oldest change first.
        async fn orders_changed_before(
            pool: &sqlx::Pool<Db>,
            condition: &str,
            before: i64,
            limit: usize,
        ) -> Result<Vec<tracker_domain::Order>, StoreError> {
            let mut q = QueryBuilder::<Db>::new(format!(
                "SELECT * FROM orders WHERE {condition} AND updated_at < "
            ));
            q.push_bind(before)
                .push(" ORDER BY updated_at, id LIMIT ")
                .push_bind(limit.min(i64::MAX as usize) as i64);
            let rows: Vec<super::super::rows::OrderRow> =
                q.build_query_as().fetch_all(pool).await?;
            rows.into_iter().map(tracker_domain::Order::try_from).collect()
        }

        /// Finished orders whose last change is older than `before`, oldest first.
        pub(crate) async fn finished_orders(
            pool: &sqlx::Pool<Db>,
            before: i64,
            limit: usize,
        ) -> Result<Vec<tracker_domain::Order>, StoreError> {
            orders_changed_before(pool, super::super::rows::FINISHED, before, limit).await
        }

        /// Orders whose refund waits, last changed before `before`, oldest first.
        pub(crate) async fn pending_refunds(
            pool: &sqlx::Pool<Db>,
            before: i64,
            limit: usize,
        ) -> Result<Vec<tracker_domain::Order>, StoreError> {
            orders_changed_before(pool, super::super::rows::REFUND_PENDING, before, limit).await
        }

        /// Order keys `(created_at, id)` after `after`, in that order.
        pub(crate) async fn order_keys(
            pool: &sqlx::Pool<Db>,
            after: Option<&Cursor>,
            limit: usize,
        ) -> Result<Vec<Cursor>, StoreError> {
            use sqlx::Row;
            let mut q = QueryBuilder::<Db>::new("SELECT created_at, id FROM orders");
            if let Some(c) = after {
                q.push(" WHERE (created_at, id) > (")
                    .push_bind(c.created_at)
                    .push(", ")
                    .push_bind(c.id.as_str())
                    .push(")");
            }
            q.push(" ORDER BY created_at, id LIMIT ")
                .push_bind(limit.min(i64::MAX as usize) as i64);
            q.build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(Cursor {
                        created_at: r.try_get(0)?,
                        id: r.try_get(1)?,
                    })
                })
                .collect()
        }

        /// Whether events of the order still wait in the outbox.
        pub(crate) async fn outbox_holds(
            pool: &sqlx::Pool<Db>,
            order_id: &str,
        ) -> Result<bool, StoreError> {
            let mut q = QueryBuilder::<Db>::new("SELECT 1 FROM outbox WHERE order_id = ");
            q.push_bind(order_id).push(" LIMIT 1");
            Ok(q.build().fetch_optional(pool).await?.is_some())
        }

        /// Deletes the orders still at the version given, and everything
        /// kept per order of those, in one transaction; the ids deleted.
        pub(crate) async fn delete_orders(
            pool: &sqlx::Pool<Db>,
            orders: &[(String, i64)],
        ) -> Result<Vec<String>, StoreError> {
            use sqlx::Row;
            if orders.is_empty() {
                return Ok(Vec::new());
            }
            let mut tx = pool.begin().await?;
            let mut q = QueryBuilder::<Db>::new("DELETE FROM orders WHERE ");
            for (i, (id, version)) in orders.iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                q.push("(id = ")
                    .push_bind(id.as_str())
                    .push(" AND version = ")
                    .push_bind(*version)
                    .push(")");
            }
            q.push(" RETURNING id");
            let gone: Vec<String> = q
                .build()
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            if !gone.is_empty() {
                for table in ["order_items", "order_packages", "order_history", "track_points"] {
                    let mut q =
                        QueryBuilder::<Db>::new(format!("DELETE FROM {table} WHERE order_id IN ("));
                    let mut list = q.separated(", ");
                    for id in &gone {
                        list.push_bind(id.as_str());
                    }
                    q.push(")");
                    q.build().execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(gone)
        }
    };
}

/// The statements for SQLite.
pub(crate) mod sqlite {
    statements!(sqlx::Sqlite);
}

/// The statements for PostgreSQL.
pub(crate) mod postgres {
    statements!(sqlx::Postgres);
}

/// The per-order tables the SELECTs above read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Table {
    /// `order_items`.
    Items,
    /// `order_packages`.
    Packages,
    /// `order_history`.
    History,
    /// `track_points`.
    Track,
}

/// One row of `order_items`.
#[derive(FromRow)]
pub(crate) struct ItemRow {
    order_id: String,
    sku: String,
    name: Option<String>,
    qty: i64,
    weight_g: Option<i64>,
    volume_cm3: Option<i64>,
}

impl From<ItemRow> for Item {
    fn from(r: ItemRow) -> Item {
        let narrow = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        Item {
            sku: r.sku,
            name: r.name,
            qty: narrow(r.qty),
            weight_g: r.weight_g.map(narrow),
            volume_cm3: r.volume_cm3.map(narrow),
        }
    }
}

/// One row of `order_packages`.
#[derive(FromRow)]
pub(crate) struct PackageRow {
    order_id: String,
    package_no: String,
    items: String,
    carrier: Option<String>,
    waybill: Option<String>,
    status: String,
    version: i64,
    updated_at: i64,
}

impl TryFrom<PackageRow> for Package {
    type Error = StoreError;
    fn try_from(r: PackageRow) -> Result<Package, StoreError> {
        let corrupt =
            |e: String| StoreError::Corrupt(format!("package {}: {e}", r.package_no).into());
        let items: Vec<PackedItem> =
            serde_json::from_str(&r.items).map_err(|e| corrupt(e.to_string()))?;
        let status = PackageStatus::from_str(&r.status).map_err(|e| corrupt(e.to_string()))?;
        Ok(Package {
            items,
            status,
            package_no: r.package_no,
            carrier: r.carrier,
            waybill: r.waybill,
            version: r.version,
            updated_at: r.updated_at,
        })
    }
}

/// One row of `order_history`.
#[derive(FromRow)]
pub(crate) struct HistoryRow {
    order_id: String,
    package_no: Option<String>,
    version: i64,
    from_status: Option<String>,
    to_status: String,
    ts: i64,
    by: Option<String>,
    reason: Option<String>,
}

impl From<HistoryRow> for HistoryEntry {
    fn from(r: HistoryRow) -> HistoryEntry {
        HistoryEntry {
            package: r.package_no,
            version: r.version,
            from: r.from_status,
            to: r.to_status,
            ts: r.ts,
            by: r.by,
            reason: r.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_refuse_nonsense() {
        let c = Cursor {
            created_at: 1_763_700_000_000,
            id: "1234.5".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("x.1"), None);
        assert_eq!(Cursor::decode("12"), None);
        assert_eq!(Cursor::decode("12."), None);
    }
}
