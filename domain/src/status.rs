//! The order state machine of `docs/design.md`.
//!
//! Forward: `pending_payment → paid → preparing → ready → assigned → picked_up → delivered`,
//! or `picked_up → rejected` by the receiver at the door. A cancel is allowed from any
//! state before pick-up; after pick-up (and after a rejection) it becomes a return,
//! `returning → returned`. `assigned → ready` puts an order back in the pool (an
//! operator's unassign, or a rider who never picked it up).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created; waiting for the payment system.
    PendingPayment,
    /// Paid; the store has not started picking.
    Paid,
    /// Being picked and packed in the store.
    Preparing,
    /// Packed and open for riders to grab.
    Ready,
    /// A rider has it and is on the way to the store.
    Assigned,
    /// The rider carries it to the customer.
    PickedUp,
    /// Handed over. Terminal.
    Delivered,
    /// Refused by the receiver at the door; goes back as a return.
    Rejected,
    /// Cancelled before pick-up. Terminal.
    Cancelled,
    /// On its way back to the store after a cancel or a rejection.
    Returning,
    /// Back in the store. Terminal.
    Returned,
}

/// Every status, in the order of the forward path first.
pub const ALL: [Status; 11] = [
    Status::PendingPayment,
    Status::Paid,
    Status::Preparing,
    Status::Ready,
    Status::Assigned,
    Status::PickedUp,
    Status::Delivered,
    Status::Rejected,
    Status::Cancelled,
    Status::Returning,
    Status::Returned,
];

impl Status {
    /// The wire name, as in `docs/protocol.md` (`pending_payment`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingPayment => "pending_payment",
            Status::Paid => "paid",
            Status::Preparing => "preparing",
            Status::Ready => "ready",
            Status::Assigned => "assigned",
            Status::PickedUp => "picked_up",
            Status::Delivered => "delivered",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
            Status::Returning => "returning",
            Status::Returned => "returned",
        }
    }

    /// True once nothing more can happen to the order.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Delivered | Status::Cancelled | Status::Returned
        )
    }

    /// True while a rider holds the order and their fixes belong to its log.
    pub fn rider_attached(self) -> bool {
        matches!(
            self,
            Status::Assigned | Status::PickedUp | Status::Rejected | Status::Returning
        )
    }

    /// True before the rider has the goods: a cancel is a plain cancel, not a return.
    pub fn before_pickup(self) -> bool {
        matches!(
            self,
            Status::PendingPayment
                | Status::Paid
                | Status::Preparing
                | Status::Ready
                | Status::Assigned
        )
    }

    /// True once the rider has the goods: from here on a customer may see where they are.
    pub fn picked_up_or_later(self) -> bool {
        matches!(
            self,
            Status::PickedUp
                | Status::Delivered
                | Status::Rejected
                | Status::Returning
                | Status::Returned
        )
    }

    /// The status that a request for `to` leads to from `self`, or `None` when illegal.
    ///
    /// This is where "a cancel after pick-up becomes a return" happens: asking for
    /// `cancelled` from `picked_up` or `rejected` yields `returning`.
    pub fn resolve(self, to: Status) -> Option<Status> {
        use Status::*;
        let target = match (self, to) {
            (PickedUp | Rejected, Cancelled) => Returning,
            _ => to,
        };
        let legal = match (self, target) {
            (PendingPayment, Paid) | (Paid, Preparing) | (Preparing, Ready) => true,
            (Ready, Assigned) | (Assigned, Ready) | (Assigned, PickedUp) => true,
            (PickedUp, Delivered) | (PickedUp, Rejected) => true,
            (PickedUp | Rejected, Returning) | (Returning, Returned) => true,
            (from, Cancelled) => from.before_pickup(),
            _ => false,
        };
        legal.then_some(target)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn forward_path_is_legal_step_by_step() {
        let path = [
            PendingPayment,
            Paid,
            Preparing,
            Ready,
            Assigned,
            PickedUp,
            Delivered,
        ];
        for w in path.windows(2) {
            assert_eq!(w[0].resolve(w[1]), Some(w[1]), "{} -> {}", w[0], w[1]);
        }
    }

    #[test]
    fn skipping_or_going_back_is_illegal() {
        assert_eq!(PendingPayment.resolve(Ready), None);
        assert_eq!(Delivered.resolve(PickedUp), None);
        assert_eq!(Paid.resolve(PendingPayment), None);
        assert_eq!(Ready.resolve(PickedUp), None);
    }

    #[test]
    fn cancel_before_pickup_and_return_after() {
        for s in [PendingPayment, Paid, Preparing, Ready, Assigned] {
            assert_eq!(s.resolve(Cancelled), Some(Cancelled));
        }
        assert_eq!(PickedUp.resolve(Cancelled), Some(Returning));
        assert_eq!(Rejected.resolve(Cancelled), Some(Returning));
        assert_eq!(Returning.resolve(Returned), Some(Returned));
        for s in [Delivered, Cancelled, Returned] {
            assert!(s.is_terminal());
            for to in ALL {
                assert_eq!(s.resolve(to), None, "{s} -> {to}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("delivering".parse::<Status>().is_err());
    }
}
