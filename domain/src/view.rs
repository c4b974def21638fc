//! Views by role: what a customer may see of their order's events.
//!
//! Operators and the assigned rider see every event as it was appended. A
//! customer sees the rider's position only from pick-up on, the rider's first
//! name and not their id, no operator alerts and no arrival at the pick-up. Hidden events are not left
//! out: they become a `skip` frame with the same `seq`, so the stream a customer
//! watches stays gap-free and resumable like everyone else's.

use crate::event::{EventBody, EventFrame, kind_of};
use crate::order::Order;
use serde::Serialize;

/// Which version of an order's events a watcher gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Everything (operators, the assigned rider).
    Full,
    /// What the order's customer may see.
    Customer,
}

/// The first word of a display name ("Li Wei" → "Li"); the whole name when it has one word.
pub fn first_name(name: &str) -> &str {
    name.split_whitespace().next().unwrap_or("")
}

/// The customer's version of an event's JSON text, or `None` when it is the same.
///
/// A text that does not parse as an event is passed through unchanged: the log
/// only holds texts it encoded itself.
pub fn customer_frame(json: &[u8]) -> Option<Vec<u8>> {
    // Fast path for the bulk of events (fixes after pick-up, statuses, ETAs):
    // the log's texts put the event's own `"t":"…"` first (after `order` and
    // `seq`, whose values cannot hold an unescaped quote), so the first match
    // is the kind, and only the kinds a customer sees differently are parsed.
    match kind_of(json) {
        Some(b"status" | b"package")
            if !contains(json, br#""by":"admin:"#) && !contains(json, br#""by":"rider:"#) =>
        {
            return None;
        }
        Some(b"eta") => return None,
        Some(b"pos") if !contains(json, br#""before_pickup":true"#) => return None,
        _ => {}
    }
    let mut frame: EventFrame = serde_json::from_slice(json).ok()?;
    match &mut frame.body {
        EventBody::Status { by, .. } | EventBody::Package { by, .. } => {
            *by = by.take().map(|b| account_role(&b));
            Some(crate::event::encode(&frame.order, frame.seq, &frame.body))
        }
        EventBody::Pos(p) if p.before_pickup => Some(skip(&frame)),
        EventBody::Alert { .. } => Some(skip(&frame)),
        EventBody::Arrival {
            at: crate::event::Stop::Pickup,
            ..
        } => Some(skip(&frame)),
        EventBody::Assignment { rider_name, ts, .. } => {
            #[derive(Serialize)]
            struct Assignment<'a> {
                order: &'a str,
                seq: u64,
                t: &'static str,
                #[serde(skip_serializing_if = "Option::is_none")]
                rider_name: Option<&'a str>,
                ts: i64,
            }
            let text = serde_json::to_vec(&Assignment {
                order: &frame.order,
                seq: frame.seq,
                t: "assignment",
                rider_name: rider_name.as_deref().map(first_name),
                ts: *ts,
            });
            Some(text.expect("frames always serialize"))
        }
        _ => None,
    }
}

/// Who made a change as a customer may see it: an operator's or a rider's
/// account (`admin:<sub>`, `rider:<id>`) becomes its role; a party a cancel
/// named (`customer`, `shop`) stays.
pub fn account_role(by: &str) -> String {
    match by.split_once(':') {
        Some((role @ ("admin" | "rider"), _)) => role.to_owned(),
        _ => by.to_owned(),
    }
}

/// The order without the phone numbers of its recipient and sender: what a
/// share link's holder sees (`docs/protocol.md`: the phone is for admins, the
/// order's customer and its rider).
pub fn without_phones(mut order: Order) -> Order {
    for p in [&mut order.recipient, &mut order.sender]
        .into_iter()
        .flatten()
    {
        p.phone = None;
    }
    order
}

/// The order as its customer may see it: the rider's first name, not their
/// id, and none of the operators' alerts or the arrival at the pick-up.
pub fn customer_order(order: Order) -> Order {
    Order {
        alerts: Default::default(),
        late_alert_at: None,
        arrived_pickup_at: None,
        rider_id: None,
        rider_name: order
            .rider_name
            .as_deref()
            .map(|n| first_name(n).to_owned()),
        ..order
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `{"order":…,"seq":N,"t":"skip"}`: an event this watcher may not see.
fn skip(frame: &EventFrame) -> Vec<u8> {
    #[derive(Serialize)]
    struct Skip<'a> {
        order: &'a str,
        seq: u64,
        t: &'static str,
    }
    serde_json::to_vec(&Skip {
        order: &frame.order,
        seq: frame.seq,
        t: "skip",
    })
    .expect("frames always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{PosEvent, encode};
    use serde_json::Value;

    fn pos(before_pickup: bool) -> EventBody {
        EventBody::Pos(PosEvent {
            lat: 1.0,
            lon: 2.0,
            ts: 3,
            speed: None,
            heading: None,
            backfill: false,
            before_pickup,
        })
    }

    fn parse(v: &[u8]) -> Value {
        serde_json::from_slice(v).unwrap()
    }

    #[test]
    fn a_fix_before_pick_up_becomes_a_skip_with_the_same_seq() {
        let hidden = customer_frame(&encode("O1", 7, &pos(true))).unwrap();
        assert_eq!(
            parse(&hidden),
            serde_json::json!({"order":"O1","seq":7,"t":"skip"})
        );
        assert_eq!(customer_frame(&encode("O1", 8, &pos(false))), None);
    }

    #[test]
    fn customers_get_the_first_name_only_and_no_alerts() {
        let a = EventBody::Assignment {
            rider_id: Some("r-991".into()),
            rider_name: Some("Wang  Xiao Ming".into()),
            ts: 5,
        };
        let v = parse(&customer_frame(&encode("O1", 2, &a)).unwrap());
        assert_eq!(v["rider_name"], "Wang");
        assert!(v.get("rider_id").is_none());
        assert_eq!(v["seq"], 2);
        let alert = EventBody::alert("stalled", 1, Value::Null);
        assert_eq!(
            parse(&customer_frame(&encode("O1", 3, &alert)).unwrap())["t"],
            "skip"
        );
        let eta = EventBody::eta(9, 1);
        assert_eq!(customer_frame(&encode("O1", 4, &eta)), None);
        let at_shop = EventBody::Arrival {
            at: crate::event::Stop::Pickup,
            ts: 2,
        };
        assert_eq!(
            parse(&customer_frame(&encode("O1", 5, &at_shop)).unwrap())["t"],
            "skip",
            "the pick-up arrival is for operators"
        );
        let at_door = EventBody::Arrival {
            at: crate::event::Stop::Dropoff,
            ts: 3,
        };
        assert_eq!(customer_frame(&encode("O1", 6, &at_door)), None);
    }

    #[test]
    fn the_fast_path_reads_the_kind_not_a_nested_t() {
        let alert = EventBody::alert("late", 1, serde_json::json!({"t": "pos"}));
        let v = parse(&customer_frame(&encode("O\"t\":\"pos", 3, &alert)).unwrap());
        assert_eq!(
            v["t"], "skip",
            "an alert whose detail and order id mention pos"
        );
        assert_eq!(v["order"], "O\"t\":\"pos");
        let status = EventBody::Status {
            from: None,
            status: crate::Status::Paid,
            version: 2,
            ts: 1,
            reason: Some("\"before_pickup\":true".into()),
            by: None,
        };
        assert_eq!(customer_frame(&encode("O1", 4, &status)), None);
    }

    #[test]
    fn first_name_takes_the_first_word() {
        assert_eq!(first_name("Li Wei"), "Li");
        assert_eq!(first_name("Ana"), "Ana");
        assert_eq!(first_name("  "), "");
    }
}
