//! Which orders each rider holds, cached so a fix does not cost a store read.
//!
//! Entries are filled from the store on a miss and dropped when the event log
//! says the holder may have changed: an `assignment` event (the old holder,
//! through the reverse map, and the new one) or a status that detaches the
//! rider (delivered, cancelled, returned, back to the pool). A gap in the tail
//! drops everything. As a safety net a rider's orders are re-read after
//! [`HELD_TTL`], and "holds nothing" after [`NONE_TTL`] only, so a rider who
//! just got an order is routed to it within a second even if its assignment
//! event were missed. Until [`Holders::follow`] runs, nothing is cached.

use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracker_backend::TailEvent;
use tracker_domain::EventBody;
use tracker_domain::event::{EventFrame, kind_of};

/// How long a rider's known orders are trusted without an event.
pub const HELD_TTL: Duration = Duration::from_secs(60);
/// How long "holds no order" is trusted.
pub const NONE_TTL: Duration = Duration::from_secs(1);

struct Held {
    orders: Vec<String>,
    at: Instant,
}

/// The cache: rider → orders, and order → rider for invalidation.
#[derive(Default)]
pub struct Holders {
    by_rider: DashMap<String, Held>,
    by_order: DashMap<String, String>,
    on: AtomicBool,
}

impl Holders {
    /// The cached orders of `rider`, while fresh.
    pub fn get(&self, rider: &str) -> Option<Vec<String>> {
        if !self.on.load(Ordering::Acquire) {
            return None;
        }
        let held = self.by_rider.get(rider)?;
        let ttl = if held.orders.is_empty() {
            NONE_TTL
        } else {
            HELD_TTL
        };
        (held.at.elapsed() < ttl).then(|| held.orders.clone())
    }

    /// Remembers what the store said `rider` holds.
    pub fn put(&self, rider: &str, orders: &[String]) {
        if !self.on.load(Ordering::Acquire) {
            return;
        }
        for o in orders {
            self.by_order.insert(o.clone(), rider.to_owned());
        }
        self.by_rider.insert(
            rider.to_owned(),
            Held {
                orders: orders.to_vec(),
                at: Instant::now(),
            },
        );
    }

    /// The holder of `order` may have changed: forget its old holder and `new_rider`.
    pub fn forget(&self, order: &str, new_rider: Option<&str>) {
        if let Some((_, old)) = self.by_order.remove(order) {
            self.by_rider.remove(&old);
        }
        if let Some(r) = new_rider {
            self.by_rider.remove(r);
        }
    }

    /// Forgets everything (the tail may have missed events).
    pub fn clear(&self) {
        self.by_rider.clear();
        self.by_order.clear();
    }

    /// Takes one logged event's text: forgets what it may have changed.
    pub fn observe(&self, order: &str, json: &[u8]) {
        match kind_of(json) {
            Some(b"assignment" | b"status") => {}
            _ => return,
        }
        let Ok(frame) = serde_json::from_slice::<EventFrame>(json) else {
            return;
        };
        match frame.body {
            EventBody::Assignment { rider_id, .. } => self.forget(order, rider_id.as_deref()),
            EventBody::Status { status, .. } if !status.rider_attached() => {
                self.forget(order, None)
            }
            _ => {}
        }
    }

    /// Keeps the cache honest from the log's tail until `stop`; caching is on
    /// only while this runs.
    pub async fn follow(&self, mut tail: broadcast::Receiver<TailEvent>, stop: CancellationToken) {
        self.on.store(true, Ordering::Release);
        loop {
            let e = tokio::select! {
                e = tail.recv() => e,
                _ = stop.cancelled() => break,
            };
            match e {
                Ok(TailEvent::Entries(run)) => {
                    for entry in run.iter() {
                        self.observe(&entry.order, &entry.json);
                    }
                }
                Ok(TailEvent::Gap) | Err(broadcast::error::RecvError::Lagged(_)) => self.clear(),
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        self.on.store(false, Ordering::Release);
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_domain::Status;
    use tracker_domain::event::encode;

    fn on() -> Holders {
        let h = Holders::default();
        h.on.store(true, Ordering::Release);
        h
    }

    #[test]
    fn nothing_is_cached_until_the_tail_is_followed() {
        let h = Holders::default();
        h.put("r1", &["O1".into()]);
        assert_eq!(h.get("r1"), None);
    }

    #[test]
    fn an_assignment_forgets_the_old_and_the_new_holder() {
        let h = on();
        h.put("r1", &["O1".into()]);
        h.put("r2", &[]);
        assert_eq!(h.get("r1"), Some(vec!["O1".to_owned()]));
        assert_eq!(h.get("r2"), Some(vec![]));
        let fix = encode("O1", 9, &EventBody::eta(1, 1));
        h.observe("O1", &fix);
        assert!(h.get("r1").is_some(), "other events change nothing");
        let moved = encode(
            "O1",
            10,
            &EventBody::Assignment {
                rider_id: Some("r2".into()),
                rider_name: None,
                ts: 1,
            },
        );
        h.observe("O1", &moved);
        assert_eq!((h.get("r1"), h.get("r2")), (None, None));
    }

    #[test]
    fn a_delivered_order_forgets_its_rider_but_pick_up_does_not() {
        let h = on();
        h.put("r1", &["O1".into()]);
        let status = |status| {
            encode(
                "O1",
                5,
                &EventBody::Status {
                    from: None,
                    status,
                    version: 5,
                    ts: 1,
                    reason: None,
                    by: None,
                },
            )
        };
        h.observe("O1", &status(Status::PickedUp));
        assert!(h.get("r1").is_some());
        h.observe("O1", &status(Status::Delivered));
        assert_eq!(h.get("r1"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn holding_nothing_is_trusted_for_a_second_only() {
        let h = on();
        h.put("r1", &[]);
        h.put("r2", &["O2".into()]);
        tokio::time::advance(NONE_TTL + Duration::from_millis(1)).await;
        assert_eq!(h.get("r1"), None);
        assert!(h.get("r2").is_some());
        tokio::time::advance(HELD_TTL).await;
        assert_eq!(h.get("r2"), None);
    }
}
