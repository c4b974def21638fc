//! Access that follows the order: what an event of an order changes in who
//! may watch it, read from the event itself so every hub node decides alike
//! (no node-local cache of who holds what).
//!
//! Two events take access away: an `assignment` to someone else (or back to
//! the pool) ends the previous rider's subscriptions, and `share_revoked`
//! ends every share link made up to its time. Each is found by its kind
//! (`tracker_domain::event::kind_of`) without parsing the other events.

use crate::auth::{Claims, Role};
use tracker_domain::event::{EventBody, EventFrame, kind_of};

/// An event that changes who may watch its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessChange {
    /// The order now belongs to this rider (`None`: back to the pool).
    Rider(Option<String>),
    /// Share links made at or before this time (Unix ms) are revoked.
    SharesRevoked(i64),
}

/// The access change an event's JSON text carries, if any.
pub fn access_change(json: &[u8]) -> Option<AccessChange> {
    match kind_of(json)? {
        b"assignment" | b"share_revoked" => {}
        _ => return None,
    }
    let frame: EventFrame = serde_json::from_slice(json).ok()?;
    match frame.body {
        EventBody::Assignment { rider_id, .. } => Some(AccessChange::Rider(rider_id)),
        EventBody::ShareRevoked { ts } => Some(AccessChange::SharesRevoked(ts)),
        _ => None,
    }
}

/// What a change means for one watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing for this watcher.
    Keep,
    /// This subscription ends with a `forbidden` error frame.
    Unsubscribe,
    /// The whole connection ends: its token no longer holds (close 4001).
    Revoked,
}

/// What `change` means for the holder of `claims`.
pub fn verdict(claims: &Claims, change: &AccessChange) -> Verdict {
    match (claims.role, change) {
        (Role::Rider, AccessChange::Rider(holder)) if holder.as_deref() != Some(&claims.sub) => {
            Verdict::Unsubscribe
        }
        (Role::Viewer, AccessChange::SharesRevoked(at))
            if claims.shared_at.is_some_and(|made| made <= *at) =>
        {
            Verdict::Revoked
        }
        _ => Verdict::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_domain::event::encode;

    #[test]
    fn only_the_events_that_move_access_are_read() {
        let away = encode(
            "O1",
            4,
            &EventBody::Assignment {
                rider_id: Some("r2".into()),
                rider_name: None,
                ts: 1,
            },
        );
        assert_eq!(
            access_change(&away),
            Some(AccessChange::Rider(Some("r2".into())))
        );
        let revoked = encode("O1", 5, &EventBody::ShareRevoked { ts: 77 });
        assert_eq!(
            access_change(&revoked),
            Some(AccessChange::SharesRevoked(77))
        );
        let eta = encode("O1", 6, &EventBody::eta(1, 1));
        assert_eq!(access_change(&eta), None);
        assert_eq!(access_change(b"{\"t\":\"assignment\",broken"), None);
    }

    #[test]
    fn a_rider_loses_the_order_and_a_share_its_link() {
        let rider = Claims::new("r1", Role::Rider, u64::MAX);
        let to = |r: Option<&str>| AccessChange::Rider(r.map(str::to_owned));
        assert_eq!(verdict(&rider, &to(Some("r1"))), Verdict::Keep);
        assert_eq!(verdict(&rider, &to(Some("r2"))), Verdict::Unsubscribe);
        assert_eq!(verdict(&rider, &to(None)), Verdict::Unsubscribe);
        let admin = Claims::new("ops", Role::Admin, u64::MAX);
        assert_eq!(verdict(&admin, &to(None)), Verdict::Keep);
        let viewer = Claims {
            order: Some("O1".into()),
            shared_at: Some(10),
            ..Claims::new("share", Role::Viewer, u64::MAX)
        };
        assert_eq!(
            verdict(&viewer, &AccessChange::SharesRevoked(10)),
            Verdict::Revoked
        );
        assert_eq!(
            verdict(&viewer, &AccessChange::SharesRevoked(9)),
            Verdict::Keep,
            "a link made after the revocation"
        );
        let customer = Claims::new("c1", Role::Customer, u64::MAX);
        assert_eq!(
            verdict(&customer, &AccessChange::SharesRevoked(10)),
            Verdict::Keep
        );
    }
}
