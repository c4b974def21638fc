//! Stock in the store's own database (tables `stock` and `stock_reservations`,
//! migration 0009), each step one transaction, its statements written once for
//! both dialects as `backend/src/store/goods.rs` does.
//!
//! A reservation first reads which of its SKUs are stock-controlled (an
//! order with none stops there, after one read). Its transaction then writes
//! first (the reservation row, with those lines), so on SQLite it takes the
//! write lock at once and on PostgreSQL a second create with the same key
//! waits for the first; the SKU rows are then changed in SKU order with
//! `available >= qty` in the `WHERE`, so two transactions never deadlock and
//! none takes more than is there. A SKU set for the first time while an order
//! is being created may miss that order: it counts as made before the level.

use super::{
    OpenReservation, ReservationKey, ReservationState, Reserved, Settle, Stock, StockError,
    StockLevel, StockLine, check_level, check_sku, sorted_lines,
};
use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

/// Stock on the store's pool: SQLite (its single writer) or PostgreSQL.
#[derive(Clone)]
pub enum SqlStock {
    /// The SQLite store's writer pool.
    Sqlite(SqlitePool),
    /// The PostgreSQL store's pool.
    Postgres(PgPool),
}

fn corrupt(e: impl std::fmt::Display) -> StockError {
    StockError::Unavailable(format!("a stored reservation cannot be read: {e}").into())
}

/// The statements, made for each dialect's pool.
macro_rules! statements {
    ($db:ty) => {
        use super::*;
        use sqlx::{QueryBuilder, Row};

        type Db = $db;

        pub(crate) async fn set(
            pool: &sqlx::Pool<Db>,
            sku: &str,
            available: i64,
            now: i64,
        ) -> Result<StockLevel, StockError> {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO stock (sku, available, reserved, sold, updated_at, added_at) VALUES (",
            );
            q.push_bind(sku)
                .push(", ")
                .push_bind(available)
                .push(", 0, 0, ")
                .push_bind(now)
                .push(", ")
                .push_bind(now)
                .push(
                    ") ON CONFLICT (sku) DO UPDATE SET available = excluded.available,
                        updated_at = excluded.updated_at
                     RETURNING available, reserved, sold",
                );
            let row = q.build().fetch_one(pool).await?;
            Ok(StockLevel {
                sku: sku.to_owned(),
                available: row.try_get(0)?,
                reserved: row.try_get(1)?,
                sold: row.try_get(2)?,
            })
        }

        pub(crate) async fn skus(
            pool: &sqlx::Pool<Db>,
            since: i64,
            skip: usize,
            limit: usize,
        ) -> Result<Vec<String>, StockError> {
            let mut q = QueryBuilder::<Db>::new("SELECT sku FROM stock WHERE added_at >= ");
            q.push_bind(since)
                .push(" ORDER BY added_at, sku LIMIT ")
                .push_bind(limit.min(i64::MAX as usize) as i64)
                .push(" OFFSET ")
                .push_bind(skip.min(i64::MAX as usize) as i64);
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        }

        pub(crate) async fn get(
            pool: &sqlx::Pool<Db>,
            sku: &str,
        ) -> Result<Option<StockLevel>, StockError> {
            let mut q =
                QueryBuilder::<Db>::new("SELECT available, reserved, sold FROM stock WHERE sku = ");
            q.push_bind(sku);
            let Some(row) = q.build().fetch_optional(pool).await? else {
                return Ok(None);
            };
            Ok(Some(StockLevel {
                sku: sku.to_owned(),
                available: row.try_get(0)?,
                reserved: row.try_get(1)?,
                sold: row.try_get(2)?,
            }))
        }

        fn by_key<'a>(q: &mut QueryBuilder<'a, Db>, key: &'a ReservationKey) {
            q.push(" WHERE biz_type = ")
                .push_bind(key.biz_type.as_str())
                .push(" AND biz_order_no = ")
                .push_bind(key.biz_order_no.as_str());
        }

        pub(crate) async fn reserve(
            pool: &sqlx::Pool<Db>,
            key: &ReservationKey,
            lines: &[StockLine],
            now: i64,
        ) -> Result<Reserved, StockError> {
            // Which of the SKUs are stock-controlled: for an order with none
            // this one read is all the reservation costs.
            let mut q = QueryBuilder::<Db>::new("SELECT sku FROM stock WHERE sku IN (");
            let mut skus = q.separated(", ");
            for l in lines {
                skus.push_bind(l.sku.as_str());
            }
            q.push(")");
            let controlled: Vec<String> = q
                .build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let held: Vec<&StockLine> = lines
                .iter()
                .filter(|l| controlled.contains(&l.sku))
                .collect();
            if held.is_empty() {
                return Ok(Reserved::Uncontrolled);
            }
            let json: Vec<(&str, i64)> = held.iter().map(|l| (l.sku.as_str(), l.qty)).collect();
            let json = serde_json::to_string(&json).map_err(corrupt)?;
            let mut tx = pool.begin().await?;
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO stock_reservations (biz_type, biz_order_no, state, lines, created_at)
                 VALUES (",
            );
            q.push_bind(key.biz_type.as_str())
                .push(", ")
                .push_bind(key.biz_order_no.as_str())
                .push(", 'reserved', ")
                .push_bind(json)
                .push(", ")
                .push_bind(now)
                .push(") ON CONFLICT (biz_type, biz_order_no) DO NOTHING");
            if q.build().execute(&mut *tx).await?.rows_affected() == 0 {
                let mut q = QueryBuilder::<Db>::new("SELECT state FROM stock_reservations");
                by_key(&mut q, key);
                let state: String = q.build().fetch_one(&mut *tx).await?.try_get(0)?;
                let state = ReservationState::parse(&state).ok_or_else(|| corrupt(&state))?;
                return Ok(Reserved::Already(state));
            }
            for l in held {
                let mut q = QueryBuilder::<Db>::new("UPDATE stock SET available = available - ");
                q.push_bind(l.qty)
                    .push(", reserved = reserved + ")
                    .push_bind(l.qty)
                    .push(", updated_at = ")
                    .push_bind(now)
                    .push(" WHERE sku = ")
                    .push_bind(l.sku.as_str())
                    .push(" AND available >= ")
                    .push_bind(l.qty);
                if q.build().execute(&mut *tx).await?.rows_affected() == 0 {
                    // Stock rows are never deleted: it is there, and short.
                    // Dropping the transaction rolls every line back.
                    return Err(StockError::OutOfStock { sku: l.sku.clone() });
                }
            }
            tx.commit().await?;
            Ok(Reserved::New)
        }

        pub(crate) async fn settle(
            pool: &sqlx::Pool<Db>,
            key: &ReservationKey,
            how: Settle,
            now: i64,
        ) -> Result<bool, StockError> {
            let mut tx = pool.begin().await?;
            let mut q = match how {
                Settle::Forget => QueryBuilder::<Db>::new("DELETE FROM stock_reservations"),
                Settle::Release | Settle::Sell => {
                    let to = if how == Settle::Sell {
                        ReservationState::Sold
                    } else {
                        ReservationState::Released
                    };
                    let mut q = QueryBuilder::<Db>::new("UPDATE stock_reservations SET state = ");
                    q.push_bind(to.as_str())
                        .push(", settled_at = ")
                        .push_bind(now);
                    q
                }
            };
            by_key(&mut q, key);
            q.push(" AND state = 'reserved' RETURNING lines");
            let Some(row) = q.build().fetch_optional(&mut *tx).await? else {
                return Ok(false);
            };
            let lines: String = row.try_get(0)?;
            let lines: Vec<(String, i64)> = serde_json::from_str(&lines).map_err(corrupt)?;
            for (sku, qty) in &lines {
                let qty = *qty;
                let mut q = QueryBuilder::<Db>::new("UPDATE stock SET reserved = reserved - ");
                q.push_bind(qty);
                if how == Settle::Sell {
                    q.push(", sold = sold + ").push_bind(qty);
                } else {
                    q.push(", available = available + ").push_bind(qty);
                }
                q.push(", updated_at = ")
                    .push_bind(now)
                    .push(" WHERE sku = ")
                    .push_bind(sku.as_str());
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        }

        pub(crate) async fn open_reservations(
            pool: &sqlx::Pool<Db>,
            before: i64,
            limit: usize,
        ) -> Result<Vec<OpenReservation>, StockError> {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT biz_type, biz_order_no, created_at FROM stock_reservations
                 WHERE state = 'reserved' AND created_at < ",
            );
            q.push_bind(before)
                .push(" ORDER BY created_at LIMIT ")
                .push_bind(limit as i64);
            let rows = q.build().fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(OpenReservation {
                        key: ReservationKey {
                            biz_type: r.try_get(0)?,
                            biz_order_no: r.try_get(1)?,
                        },
                        at: r.try_get(2)?,
                    })
                })
                .collect()
        }
    };
}

mod sqlite {
    statements!(sqlx::Sqlite);
}

mod postgres {
    statements!(sqlx::Postgres);
}

/// Calls the statement `$f` on whichever pool `$self` holds.
macro_rules! on_pool {
    ($self:expr, $f:ident($($arg:expr),*)) => {
        match $self {
            SqlStock::Sqlite(p) => sqlite::$f(p, $($arg),*).await,
            SqlStock::Postgres(p) => postgres::$f(p, $($arg),*).await,
        }
    };
}

#[async_trait]
impl Stock for SqlStock {
    async fn set(&self, sku: &str, available: i64, now: i64) -> Result<StockLevel, StockError> {
        check_sku(sku)?;
        check_level(available)?;
        on_pool!(self, set(sku, available, now))
    }

    async fn get(&self, sku: &str) -> Result<Option<StockLevel>, StockError> {
        check_sku(sku)?;
        on_pool!(self, get(sku))
    }

    async fn reserve(
        &self,
        key: &ReservationKey,
        lines: &[StockLine],
        now: i64,
    ) -> Result<Reserved, StockError> {
        let lines = sorted_lines(lines)?;
        on_pool!(self, reserve(key, &lines, now))
    }

    async fn settle(
        &self,
        key: &ReservationKey,
        how: Settle,
        now: i64,
    ) -> Result<bool, StockError> {
        on_pool!(self, settle(key, how, now))
    }

    async fn open_reservations(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<OpenReservation>, StockError> {
        on_pool!(self, open_reservations(before, limit))
    }
    async fn skus(&self, since: i64, skip: usize, limit: usize) -> Result<Vec<String>, StockError> {
        on_pool!(self, skus(since, skip, limit))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::postgres::PostgresStore;
    use crate::store::postgres::testing::{TestDatabase, admin_url};
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn sqlite_stock_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/s.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        super::super::contract::run(|| std::sync::Arc::new(store.stock())).await;
    }

    #[tokio::test]
    async fn postgres_stock_meets_the_contract() {
        let Some(admin) = admin_url() else { return };
        let db = TestDatabase::create(&admin).await;
        let store = PostgresStore::open(&db.url).await.unwrap();
        super::super::contract::run(|| std::sync::Arc::new(store.stock())).await;
        store.close().await;
        db.drop_now().await;
    }
}
