//! The archive on SQLite or PostgreSQL (`TRACKER_ARCHIVE_DATABASE_URL`),
//! its statements written once for both (as `backend/src/store/goods.rs`
//! does) and migrated from `migrations/archive/`.

use super::{Archive, ArchivedOrder, Checkpoint};
use crate::store::{Cursor, Lookup, StoreError};
use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::str::FromStr;
use std::time::Duration;
use tracker_domain::Order;

/// The archive's database.
pub enum SqlArchive {
    /// A SQLite file (one writer at a time; the pool holds one connection).
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("archived {what}: {e}").into())
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| corrupt("value", e))
}

/// An archived order read back from its columns.
fn read_back(body: &str, history: &str, track: &str) -> Result<ArchivedOrder, StoreError> {
    let mut order: Order = serde_json::from_str(body).map_err(|e| corrupt("order", e))?;
    order.archived = true;
    Ok(ArchivedOrder {
        order,
        history: serde_json::from_str(history).map_err(|e| corrupt("history", e))?,
        track: serde_json::from_str(track).map_err(|e| corrupt("track", e))?,
    })
}

impl SqlArchive {
    /// Opens (creating a SQLite file if missing) and migrates the archive at `url`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let migrating = |e: sqlx::migrate::MigrateError| {
            StoreError::Unavailable(format!("migrating the archive: {e}").into())
        };
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await?;
            sqlx::migrate!("../migrations/archive/sqlite")
                .run(&pool)
                .await
                .map_err(migrating)?;
            Ok(SqlArchive::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await?;
            sqlx::migrate!("../migrations/archive/postgres")
                .run(&pool)
                .await
                .map_err(migrating)?;
            Ok(SqlArchive::Postgres(pool))
        } else {
            Err(StoreError::Unavailable(
                "the archive URL must be sqlite:// or postgres://".into(),
            ))
        }
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        match self {
            SqlArchive::Sqlite(p) => p.close().await,
            SqlArchive::Postgres(p) => p.close().await,
        }
    }
}

/// The statements, made for each dialect's pool.
macro_rules! statements {
    ($db:ty) => {
        use super::*;
        use sqlx::{QueryBuilder, Row};

        type Db = $db;

        pub(crate) async fn put_batch(
            pool: &sqlx::Pool<Db>,
            batch: &[ArchivedOrder],
            now: i64,
        ) -> Result<u64, StoreError> {
            let mut tx = pool.begin().await?;
            let mut new = 0;
            for a in batch {
                let o = &a.order;
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO archived_orders (id, customer_id, biz_order_no, biz_type,
                        created_at, finished_at, archived_at, body, history, track) VALUES (",
                );
                let mut v = q.separated(", ");
                v.push_bind(o.id.as_str())
                    .push_bind(o.customer_id.as_str())
                    .push_bind(o.biz_order_no.as_str())
                    .push_bind(o.biz_type.as_str())
                    .push_bind(o.created_at)
                    .push_bind(o.updated_at)
                    .push_bind(now)
                    .push_bind(json(o)?)
                    .push_bind(json(&a.history)?)
                    .push_bind(json(&a.track)?);
                // A later copy of the same order (it changed after the last
                // copy, so the hot store kept it) replaces the earlier one.
                q.push(
                    ") ON CONFLICT (id) DO UPDATE SET body = excluded.body,
                        history = excluded.history, track = excluded.track,
                        finished_at = excluded.finished_at, archived_at = excluded.archived_at
                     WHERE archived_orders.body <> excluded.body
                        OR archived_orders.history <> excluded.history
                        OR archived_orders.track <> excluded.track",
                );
                new += q.build().execute(&mut *tx).await?.rows_affected();
            }
            let ids: Vec<&str> = batch.iter().map(|a| a.order.id.as_str()).collect();
            let finished = batch.iter().map(|a| a.order.updated_at).max().unwrap_or(0);
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO archive_checkpoint (id, last_batch, finished_at, orders, batches,
                    updated_at) VALUES (1, ",
            );
            let mut v = q.separated(", ");
            v.push_bind(json(&ids)?)
                .push_bind(finished)
                .push_bind(new as i64)
                .push_bind(1_i64)
                .push_bind(now);
            q.push(
                ") ON CONFLICT (id) DO UPDATE SET last_batch = excluded.last_batch,
                    finished_at = CASE WHEN archive_checkpoint.finished_at > excluded.finished_at
                        THEN archive_checkpoint.finished_at ELSE excluded.finished_at END,
                    orders = archive_checkpoint.orders + excluded.orders,
                    batches = archive_checkpoint.batches + 1,
                    updated_at = excluded.updated_at",
            );
            q.build().execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(new)
        }

        pub(crate) async fn checkpoint(pool: &sqlx::Pool<Db>) -> Result<Checkpoint, StoreError> {
            let row = sqlx::query(
                "SELECT last_batch, finished_at, orders, batches FROM archive_checkpoint WHERE id = 1",
            )
            .fetch_optional(pool)
            .await?;
            let Some(r) = row else {
                return Ok(Checkpoint::default());
            };
            let batch: String = r.try_get(0)?;
            Ok(Checkpoint {
                last_batch: serde_json::from_str(&batch).map_err(|e| corrupt("checkpoint", e))?,
                finished_at: r.try_get(1)?,
                orders: r.try_get(2)?,
                batches: r.try_get(3)?,
            })
        }

        pub(crate) async fn get(
            pool: &sqlx::Pool<Db>,
            id: &str,
        ) -> Result<Option<ArchivedOrder>, StoreError> {
            let mut q =
                QueryBuilder::<Db>::new("SELECT body, history, track FROM archived_orders WHERE id = ");
            q.push_bind(id);
            let Some(r) = q.build().fetch_optional(pool).await? else {
                return Ok(None);
            };
            let (body, history, track): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            read_back(&body, &history, &track).map(Some)
        }

        pub(crate) async fn lookup(
            pool: &sqlx::Pool<Db>,
            lookup: &Lookup,
            after: Option<&Cursor>,
            limit: usize,
        ) -> Result<(Vec<Order>, Option<Cursor>), StoreError> {
            let mut q = lookup_sql("SELECT body FROM archived_orders", lookup, after, limit);
            let rows = q.build().fetch_all(pool).await?;
            let more = rows.len() > limit;
            let mut orders = Vec::with_capacity(rows.len().min(limit));
            for r in rows.into_iter().take(limit) {
                let body: String = r.try_get(0)?;
                let mut o: Order = serde_json::from_str(&body).map_err(|e| corrupt("order", e))?;
                o.archived = true;
                // A page lists orders as the hot store's pages do: without their goods.
                o.items = None;
                o.packages = None;
                orders.push(o);
            }
            let next = more.then(|| {
                let last = orders.last().expect("limit is at least 1");
                Cursor {
                    created_at: last.created_at,
                    id: last.id.clone(),
                }
            });
            Ok((orders, next))
        }

        pub(crate) async fn ids(
            pool: &sqlx::Pool<Db>,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<String>, StoreError> {
            let mut q = QueryBuilder::<Db>::new("SELECT id FROM archived_orders");
            if let Some(after) = after {
                q.push(" WHERE id > ").push_bind(after);
            }
            q.push(" ORDER BY id LIMIT ")
                .push_bind(limit.min(i64::MAX as usize) as i64);
            q.build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect()
        }

        pub(crate) async fn count(pool: &sqlx::Pool<Db>) -> Result<u64, StoreError> {
            let n: i64 = sqlx::query("SELECT COUNT(*) FROM archived_orders")
                .fetch_one(pool)
                .await?
                .try_get(0)?;
            Ok(n as u64)
        }
    };
}

mod sqlite {
    use crate::store::goods::sqlite::select_lookup as lookup_sql;
    statements!(sqlx::Sqlite);
}

mod postgres {
    use crate::store::goods::postgres::select_lookup as lookup_sql;
    statements!(sqlx::Postgres);
}

/// Runs `$call` on whichever dialect the archive is.
macro_rules! on_pool {
    ($self:ident, $f:ident($($arg:expr),*)) => {
        match $self {
            SqlArchive::Sqlite(p) => sqlite::$f(p, $($arg),*).await,
            SqlArchive::Postgres(p) => postgres::$f(p, $($arg),*).await,
        }
    };
}

#[async_trait]
impl Archive for SqlArchive {
    async fn put_batch(&self, batch: &[ArchivedOrder], now: i64) -> Result<u64, StoreError> {
        on_pool!(self, put_batch(batch, now))
    }

    async fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        on_pool!(self, checkpoint())
    }

    async fn get(&self, id: &str) -> Result<Option<ArchivedOrder>, StoreError> {
        on_pool!(self, get(id))
    }

    async fn lookup(
        &self,
        lookup: &Lookup,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Order>, Option<Cursor>), StoreError> {
        on_pool!(self, lookup(lookup, after, limit))
    }

    async fn count(&self) -> Result<u64, StoreError> {
        on_pool!(self, count())
    }

    async fn ids(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        on_pool!(self, ids(after, limit))
    }
}
