//! The leases of the order id generator's node ids and their high-water
//! marks (table `id_nodes`), written once for both dialects as in
//! [`super::goods`]: a process takes the lowest node id that is free or
//! whose lease ran out, renews it, and raises the node's mark to the times it
//! reserved; a starting process reads the highest mark of all nodes.

use super::StoreError;

/// A node id taken: the id and the highest mark of every node (Unix ms;
/// 0 when none was ever kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeClaim {
    /// The node id now leased to the caller.
    pub node: u16,
    /// The highest reservation any node ever made.
    pub mark: i64,
}

/// Attempts at a claim before giving up: each loses only to another
/// process taking the same free node in the same instant.
const ATTEMPTS: usize = 8;

fn unavailable(why: String) -> StoreError {
    StoreError::Unavailable(why.into())
}

/// The claim and renewal, made for each dialect's pool.
macro_rules! leases {
    ($db:ty) => {
        use super::*;
        use sqlx::{QueryBuilder, Row};

        type Db = $db;

        /// Takes `wanted` (whoever held it), or the lowest node id free or
        /// whose lease ended before `now`, for `owner` until `until`.
        pub(crate) async fn claim(
            pool: &sqlx::Pool<Db>,
            owner: &str,
            wanted: Option<u16>,
            now: i64,
            until: i64,
        ) -> Result<NodeClaim, StoreError> {
            for _ in 0..ATTEMPTS {
                let rows = sqlx::query("SELECT node, owner, expires_at, mark FROM id_nodes")
                    .fetch_all(pool)
                    .await?;
                let mut mark = 0_i64;
                let mut taken = std::collections::HashSet::new();
                let mut free = Vec::new();
                for r in &rows {
                    let node: i32 = r.try_get(0)?;
                    let holder: String = r.try_get(1)?;
                    let expires: i64 = r.try_get(2)?;
                    mark = mark.max(r.try_get(3)?);
                    taken.insert(node);
                    if expires < now || holder == owner {
                        free.push(node);
                    }
                }
                free.sort_unstable();
                let candidate = match wanted {
                    Some(n) => i32::from(n),
                    None => match free.first() {
                        Some(n) => *n,
                        None => match (0..=i32::from(tracker_domain::ids::MAX_NODE))
                            .find(|n| !taken.contains(n))
                        {
                            Some(n) => n,
                            None => return Err(unavailable("every node id is leased".into())),
                        },
                    },
                };
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO id_nodes (node, owner, expires_at, mark) VALUES (",
                );
                q.push_bind(candidate)
                    .push(", ")
                    .push_bind(owner)
                    .push(", ")
                    .push_bind(until)
                    .push(", 0) ON CONFLICT (node) DO UPDATE SET owner = excluded.owner, ")
                    .push("expires_at = excluded.expires_at");
                if wanted.is_none() {
                    q.push(" WHERE id_nodes.expires_at < ")
                        .push_bind(now)
                        .push(" OR id_nodes.owner = ")
                        .push_bind(owner);
                }
                if q.build().execute(pool).await?.rows_affected() == 1 {
                    return Ok(NodeClaim {
                        node: candidate as u16,
                        mark,
                    });
                }
            }
            Err(unavailable(format!(
                "no node id could be leased in {ATTEMPTS} attempts"
            )))
        }

        /// Extends `owner`'s lease of `node` to `until` and raises its mark
        /// to `mark`; false when the lease is no longer theirs.
        pub(crate) async fn renew(
            pool: &sqlx::Pool<Db>,
            node: u16,
            owner: &str,
            until: i64,
            mark: i64,
        ) -> Result<bool, StoreError> {
            let mut q = QueryBuilder::<Db>::new("UPDATE id_nodes SET expires_at = ");
            q.push_bind(until)
                .push(", mark = CASE WHEN mark > ")
                .push_bind(mark)
                .push(" THEN mark ELSE ")
                .push_bind(mark)
                .push(" END WHERE node = ")
                .push_bind(i32::from(node))
                .push(" AND owner = ")
                .push_bind(owner);
            Ok(q.build().execute(pool).await?.rows_affected() == 1)
        }
    };
}

/// The leases on SQLite.
pub(crate) mod sqlite {
    leases!(sqlx::Sqlite);
}

/// The leases on PostgreSQL.
pub(crate) mod postgres {
    leases!(sqlx::Postgres);
}
