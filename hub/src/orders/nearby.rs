//! Open orders near a rider, and riders near a point (operators).

use super::OrderError;
use crate::auth::{Claims, Role};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tracker_backend::dispatch::{Dispatch, NearbyOrder, RiderPosition};
use tracker_domain::{Clock, Point};

/// Largest search radius, metres.
const MAX_RADIUS_M: f64 = 50_000.0;

/// A "near a point" question, as both calls take it.
#[derive(Debug, Deserialize)]
pub struct NearQuery {
    /// Latitude of the centre.
    pub lat: f64,
    /// Longitude of the centre.
    pub lon: f64,
    /// Radius, metres (default 5000, at most 50 000).
    pub radius_m: Option<f64>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
}

impl NearQuery {
    fn checked(&self) -> Result<(Point, f64, usize), OrderError> {
        let at = Point {
            lat: self.lat,
            lon: self.lon,
        };
        if !at.is_valid() {
            return Err(OrderError::BadRequest(
                "`lat`/`lon` is not a valid position".into(),
            ));
        }
        let radius = self.radius_m.unwrap_or(5000.0);
        if !(radius.is_finite() && radius > 0.0 && radius <= MAX_RADIUS_M) {
            return Err(OrderError::BadRequest(format!(
                "`radius_m` must be in (0, {MAX_RADIUS_M}]"
            )));
        }
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(OrderError::BadRequest("`limit` must be in 1..=500".into()));
        }
        Ok((at, radius, limit))
    }
}

/// Open orders are for riders and operators, not customers.
pub fn may_see_open_orders(claims: &Claims) -> Result<(), OrderError> {
    match claims.role {
        Role::Rider | Role::Admin => Ok(()),
        Role::Customer | Role::Viewer => Err(OrderError::Forbidden("this call is for riders")),
    }
}

/// What the position queries touch: the dispatch index and the clock.
#[derive(Clone)]
pub struct Nearby {
    pub(crate) dispatch: Arc<dyn Dispatch>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rider_stale: Duration,
}

impl Nearby {
    /// Queries over `dispatch`; riders silent for `rider_stale` are left out.
    pub fn new(dispatch: Arc<dyn Dispatch>, clock: Arc<dyn Clock>, rider_stale: Duration) -> Self {
        Nearby {
            dispatch,
            clock,
            rider_stale,
        }
    }

    /// Open orders by distance of their pickup (the caller checked
    /// [`may_see_open_orders`]).
    pub async fn orders(&self, q: &NearQuery) -> Result<Vec<NearbyOrder>, OrderError> {
        let (at, radius, limit) = q.checked()?;
        Ok(self.dispatch.nearby(at, radius, limit).await?)
    }

    /// Riders heard from lately, by distance (operators; the caller checks the role).
    pub async fn riders(&self, q: &NearQuery) -> Result<Vec<RiderPosition>, OrderError> {
        let (at, radius, limit) = q.checked()?;
        let since = self.clock.now_ms() - self.rider_stale.as_millis() as i64;
        Ok(self.dispatch.riders_near(at, radius, since, limit).await?)
    }
}
