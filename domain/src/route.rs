//! Planned routes: what an order's `route` may be (`docs/protocol.md`).

use crate::order::Point;

/// Fewest points of a route: its two ends.
pub const MIN_ROUTE_POINTS: usize = 2;

/// Most points of a route: a long city trip drawn street by street fits in
/// far fewer, and the bound keeps one order row and its reads small.
pub const MAX_ROUTE_POINTS: usize = 5000;

/// Checks a planned route; the message names `route` and the first bad point.
pub fn check_route(route: &[Point]) -> Result<(), String> {
    if !(MIN_ROUTE_POINTS..=MAX_ROUTE_POINTS).contains(&route.len()) {
        return Err(format!(
            "`route` must have {MIN_ROUTE_POINTS}..={MAX_ROUTE_POINTS} points, not {}",
            route.len()
        ));
    }
    if let Some(i) = route.iter().position(|p| !p.is_valid()) {
        return Err(format!("`route[{i}]` is not a valid lat/lon"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> Point {
        Point { lat, lon }
    }

    #[test]
    fn a_route_needs_two_to_five_thousand_valid_points() {
        assert!(check_route(&[p(1.0, 2.0), p(1.1, 2.1)]).is_ok());
        let one = check_route(&[p(1.0, 2.0)]).unwrap_err();
        assert!(one.contains("`route`") && one.contains("not 1"), "{one}");
        let many = vec![p(1.0, 2.0); 10_000];
        assert!(check_route(&many).unwrap_err().contains("not 10000"));
        let bad = check_route(&[p(1.0, 2.0), p(91.0, 2.0)]).unwrap_err();
        assert!(bad.contains("`route[1]`"), "{bad}");
        assert!(check_route(&[p(f64::NAN, 0.0), p(0.0, 0.0)]).is_err());
    }
}
