//! The thresholds of the trip watcher (`docs/protocol.md`, "ETA, alerts, arrival").

use std::time::Duration;

/// When an alert or an arrival is raised.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TripSettings {
    /// `stalled`: moved less than this many metres…
    pub stall_radius_m: f64,
    /// …over this much fix time.
    pub stall: Duration,
    /// `off_route`: farther than this from the route for two fixes in a row.
    pub off_route_m: f64,
    /// `rider_offline`: no fix from the rider holding the order for this long.
    pub offline: Duration,
    /// `arrival`: this close to the pick-up or the drop-off.
    pub arrival_m: f64,
    /// A new `eta` event only when the estimate moves by this much.
    pub eta_step: Duration,
}

impl Default for TripSettings {
    fn default() -> Self {
        TripSettings {
            stall_radius_m: 50.0,
            stall: Duration::from_secs(300),
            off_route_m: 250.0,
            offline: Duration::from_secs(120),
            arrival_m: 100.0,
            eta_step: Duration::from_secs(30),
        }
    }
}
