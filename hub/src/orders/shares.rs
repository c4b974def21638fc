//! Share links: a token of role `viewer` that watches one order with its
//! customer's view, made by an admin or the order's customer, and revoked all
//! at once per order (`docs/protocol.md`).
//!
//! A share token carries the order and the time it was made (`shared_at`);
//! revoking writes the time on the order row (later requests are refused by
//! [`crate::auth::can_watch`]) and a `share_revoked` event in the same
//! transaction, which every hub node's watchers read to close the sockets.

use super::{OrderError, Orders, check_id};
use crate::auth::{Auth, Claims, Role};
use serde::{Deserialize, Serialize};
use tracker_domain::Order;

/// A share's life when the caller names none, seconds (24 h).
pub const DEFAULT_TTL: i64 = 24 * 3600;
/// The longest a share may live, seconds (7 days).
pub const MAX_TTL: i64 = 7 * 24 * 3600;

/// `POST /v1/orders/{id}/share`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// Seconds the link lives, 1..=604800 (default 86400).
    pub ttl_secs: Option<i64>,
}

/// A new share link.
#[derive(Debug, Serialize)]
pub struct Share {
    /// The viewer token.
    pub token: String,
    /// The customer page of the order with the token in its fragment.
    pub url: String,
    /// When the token expires, Unix ms.
    pub expires_at: i64,
}

/// Admins and the order's own customer may share or revoke.
fn may_share(claims: &Claims, order: &Order) -> Result<(), OrderError> {
    match claims.role {
        Role::Admin => Ok(()),
        Role::Customer if order.customer_id == claims.sub => Ok(()),
        _ => Err(OrderError::Forbidden(
            "only an admin or the order's customer may share it",
        )),
    }
}

impl Orders {
    /// A viewer token for order `id`, signed by `auth`.
    pub async fn share(
        &self,
        auth: &Auth,
        claims: &Claims,
        id: &str,
        req: ShareRequest,
    ) -> Result<Share, OrderError> {
        check_id(id)?;
        let ttl = req.ttl_secs.unwrap_or(DEFAULT_TTL);
        if !(1..=MAX_TTL).contains(&ttl) {
            return Err(OrderError::BadRequest(format!(
                "`ttl_secs` must be 1..={MAX_TTL} seconds"
            )));
        }
        let order = self.order(id).await?;
        may_share(claims, &order)?;
        let now = self.clock.now_ms();
        // Made after the last revocation, even within its millisecond.
        let shared_at = order.shares_revoked_at.map_or(now, |r| now.max(r + 1));
        let exp_secs = (now / 1000 + ttl).max(0) as u64;
        let token = auth.mint_claims(&Claims {
            order: Some(id.to_owned()),
            shared_at: Some(shared_at),
            ..Claims::new(
                &format!("share:{id}:{:08x}", rand::random::<u32>()),
                Role::Viewer,
                exp_secs,
            )
        });
        metrics::counter!("tracker_shares_created_total").increment(1);
        Ok(Share {
            url: format!("/track/{id}#token={token}"),
            token,
            expires_at: exp_secs as i64 * 1000,
        })
    }

    /// Revokes every share link of order `id` made so far.
    pub async fn revoke_shares(&self, claims: &Claims, id: &str) -> Result<(), OrderError> {
        check_id(id)?;
        let order = self.order(id).await?;
        may_share(claims, &order)?;
        let change = order.revoke_shares(self.clock.now_ms());
        self.commit(order, change).await?;
        metrics::counter!("tracker_shares_revoked_total").increment(1);
        Ok(())
    }
}
