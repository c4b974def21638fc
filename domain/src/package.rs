//! A package's own state machine, and how it is kept consistent with its order's.
//!
//! `created → shipped → in_transit → delivered | rejected`, and `created →
//! cancelled`. Each package has its own version, so the writers of different
//! packages (carriers' scans) never fight with each other or with the order's
//! status writers.
//!
//! With the order (the choice `docs/protocol.md` names):
//! - a package ships only once the order is paid;
//! - an order reaches `delivered`, `cancelled` or `returned` only when none
//!   of its packages is on its way (`shipped`, `in_transit`), and `delivered`
//!   also needs none still `created`;
//! - a cancel or a return cancels the packages still `created`, in the same
//!   write as the order's change.

use crate::event::EventBody;
use crate::goods::Package;
use crate::order::ChangeError;
use crate::status::Status;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a package is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageStatus {
    /// Packed, not handed to the carrier.
    Created,
    /// Handed to the carrier.
    Shipped,
    /// Moving between the carrier's sites.
    InTransit,
    /// Handed to the recipient. Final.
    Delivered,
    /// Refused by the recipient. Final.
    Rejected,
    /// Never shipped. Final.
    Cancelled,
}

impl PackageStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageStatus::Created => "created",
            PackageStatus::Shipped => "shipped",
            PackageStatus::InTransit => "in_transit",
            PackageStatus::Delivered => "delivered",
            PackageStatus::Rejected => "rejected",
            PackageStatus::Cancelled => "cancelled",
        }
    }

    /// True once nothing more can happen to the package.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PackageStatus::Delivered | PackageStatus::Rejected | PackageStatus::Cancelled
        )
    }

    /// True while the carrier has it.
    pub fn on_its_way(self) -> bool {
        matches!(self, PackageStatus::Shipped | PackageStatus::InTransit)
    }

    /// True when `self → to` is an edge of the machine.
    pub fn can_go(self, to: PackageStatus) -> bool {
        use PackageStatus::*;
        matches!(
            (self, to),
            (Created, Shipped)
                | (Created, Cancelled)
                | (Shipped, InTransit)
                | (InTransit, Delivered)
                | (InTransit, Rejected)
        )
    }
}

impl fmt::Display for PackageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A package status name that is not one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "unknown package status `{0}`: created, shipped, in_transit, delivered, rejected, cancelled"
)]
pub struct UnknownPackageStatus(pub String);

impl FromStr for PackageStatus {
    type Err = UnknownPackageStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use PackageStatus::*;
        Ok(match s {
            "created" => Created,
            "shipped" => Shipped,
            "in_transit" => InTransit,
            "delivered" => Delivered,
            "rejected" => Rejected,
            "cancelled" => Cancelled,
            other => return Err(UnknownPackageStatus(other.to_owned())),
        })
    }
}

/// The `package` event of a package's change.
fn event(
    p: &Package,
    from: PackageStatus,
    reason: Option<String>,
    by: Option<String>,
) -> EventBody {
    EventBody::Package {
        package: p.package_no.clone(),
        status: p.status,
        from: Some(from),
        version: p.version,
        ts: p.updated_at,
        reason,
        by,
    }
}

impl Package {
    /// Moves the package to `to`, if `expected` (its version) is still current
    /// and the order (in `order_status`) allows it. Already there is `None`.
    pub fn change(
        &self,
        to: PackageStatus,
        expected: Option<i64>,
        order_status: Status,
        reason: Option<String>,
        by: Option<String>,
        now: i64,
    ) -> Result<Option<(Package, EventBody)>, ChangeError> {
        if to == self.status {
            return Ok(None);
        }
        if let Some(v) = expected
            && v != self.version
        {
            return Err(ChangeError::Stale {
                version: self.version,
                status_version: self.version,
            });
        }
        if !self.status.can_go(to) {
            return Err(ChangeError::Invalid(format!(
                "illegal package transition {} -> {to}",
                self.status
            )));
        }
        if to == PackageStatus::Shipped && order_status == Status::PendingPayment {
            return Err(ChangeError::Invalid(
                "a package ships only once its order is paid".into(),
            ));
        }
        let mut next = self.clone();
        next.status = to;
        next.version += 1;
        next.updated_at = now;
        let ev = event(&next, self.status, reason, by);
        Ok(Some((next, ev)))
    }
}

/// What the order's move to `to` does to its `packages`: refused while one is
/// on its way (or, for `delivered`, still `created`); for a cancel or a return,
/// the `created` ones are cancelled with it (their new rows and events).
pub fn follow_order(
    packages: &[Package],
    to: Status,
    by: Option<&str>,
    now: i64,
) -> Result<Vec<(Package, EventBody)>, ChangeError> {
    if !to.is_terminal() {
        return Ok(Vec::new());
    }
    if let Some(p) = packages
        .iter()
        .find(|p| p.status.on_its_way() || (to == Status::Delivered && !p.status.is_final()))
    {
        return Err(ChangeError::Invalid(format!(
            "package `{}` is {}: the order cannot be {to} before it is delivered, rejected or cancelled",
            p.package_no, p.status
        )));
    }
    let mut out = Vec::new();
    for p in packages
        .iter()
        .filter(|p| p.status == PackageStatus::Created)
    {
        let mut next = p.clone();
        next.status = PackageStatus::Cancelled;
        next.version += 1;
        next.updated_at = now;
        let ev = event(
            &next,
            p.status,
            Some(format!("order {to}")),
            by.map(str::to_owned),
        );
        out.push((next, ev));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goods::{NewPackage, PackedItem};

    fn pkg(status: PackageStatus) -> Package {
        let mut p = Package::new(
            NewPackage {
                package_no: "P1".into(),
                items: vec![PackedItem {
                    sku: "A".into(),
                    qty: 1,
                }],
                carrier: None,
                waybill: None,
            },
            1,
        );
        p.status = status;
        p
    }

    #[test]
    fn a_package_moves_along_its_machine_with_its_own_version() {
        let p = pkg(PackageStatus::Created);
        let (shipped, ev) = p
            .change(PackageStatus::Shipped, Some(1), Status::Paid, None, None, 5)
            .unwrap()
            .unwrap();
        assert_eq!(
            (shipped.status, shipped.version, shipped.updated_at),
            (PackageStatus::Shipped, 2, 5)
        );
        assert!(matches!(
            ev,
            EventBody::Package {
                version: 2,
                from: Some(PackageStatus::Created),
                ..
            }
        ));
        assert!(matches!(
            shipped.change(
                PackageStatus::InTransit,
                Some(1),
                Status::Paid,
                None,
                None,
                6
            ),
            Err(ChangeError::Stale { version: 2, .. })
        ));
        assert!(matches!(
            shipped.change(PackageStatus::Delivered, Some(2), Status::Paid, None, None, 6),
            Err(ChangeError::Invalid(m)) if m.contains("shipped -> delivered")
        ));
        assert!(
            shipped
                .change(PackageStatus::Shipped, None, Status::Paid, None, None, 7)
                .unwrap()
                .is_none()
        );
        assert!(
            p.change(
                PackageStatus::Shipped,
                None,
                Status::PendingPayment,
                None,
                None,
                5
            )
            .is_err()
        );
    }

    #[test]
    fn the_order_ends_only_when_its_packages_allow_it() {
        let moving = [pkg(PackageStatus::Delivered), pkg(PackageStatus::InTransit)];
        assert!(follow_order(&moving, Status::Delivered, None, 9).is_err());
        assert!(follow_order(&moving, Status::Cancelled, None, 9).is_err());
        assert!(
            follow_order(&moving, Status::PickedUp, None, 9)
                .unwrap()
                .is_empty()
        );
        let waiting = [pkg(PackageStatus::Created), pkg(PackageStatus::Rejected)];
        assert!(follow_order(&waiting, Status::Delivered, None, 9).is_err());
        let cancelled = follow_order(&waiting, Status::Cancelled, Some("system"), 9).unwrap();
        assert_eq!(cancelled.len(), 1);
        assert_eq!(cancelled[0].0.status, PackageStatus::Cancelled);
        assert_eq!(cancelled[0].0.version, 2);
        let done = [pkg(PackageStatus::Delivered), pkg(PackageStatus::Rejected)];
        assert!(
            follow_order(&done, Status::Delivered, None, 9)
                .unwrap()
                .is_empty()
        );
    }
}
