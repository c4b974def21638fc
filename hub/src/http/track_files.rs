//! A stored trip as a file other tools open: GPX 1.1 (maps, GIS, Traccar's
//! exports) or CSV (spreadsheets), for `GET /v1/orders/{id}/track?format=…`.

use crate::orders::queries::Trip;
use std::fmt::Write;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 UTC time of Unix ms `ts` (GPX's `xsd:dateTime`); empty when out of range.
fn rfc3339(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The trip as a GPX 1.1 document: one track, one segment, a point per fix
/// with its time (speed and course have no element of their own in GPX 1.1).
pub fn gpx(trip: &Trip) -> String {
    let mut out = String::with_capacity(128 + trip.points.len() * 96);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(
        "<gpx version=\"1.1\" creator=\"tracker\" xmlns=\"http://www.topografix.com/GPX/1/1\">\n",
    );
    // Order ids are digits (docs/protocol.md): nothing to escape.
    let _ = writeln!(out, "  <trk><name>order {}</name><trkseg>", trip.order);
    for p in &trip.points {
        let _ = writeln!(
            out,
            "    <trkpt lat=\"{:.7}\" lon=\"{:.7}\"><time>{}</time></trkpt>",
            p.lat,
            p.lon,
            rfc3339(p.ts)
        );
    }
    out.push_str("  </trkseg></trk>\n</gpx>\n");
    out
}

/// The trip as CSV, a header and a row per fix; empty cells where a fix
/// has no value (the rider's id is empty in a customer's view).
pub fn csv(trip: &Trip) -> String {
    let mut out = String::from("ts,time,lat,lon,speed,heading,acc,rider_id\n");
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for p in &trip.points {
        // Rider ids are letters, digits, `-` and `_` (domain/src/rider.rs): no quoting.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            p.ts,
            rfc3339(p.ts),
            p.lat,
            p.lon,
            opt(p.speed),
            opt(p.heading),
            opt(p.acc),
            p.rider_id
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_backend::TrackPoint;
    use tracker_domain::Status;

    fn trip() -> Trip {
        let point = |ts: i64, lat: f64, lon: f64, speed: Option<f64>| TrackPoint {
            order_id: "42".into(),
            rider_id: "rider-1".into(),
            ts,
            lat,
            lon,
            speed,
            heading: None,
            acc: Some(6.5),
        };
        Trip {
            order: "42".into(),
            status: Status::PickedUp,
            picked_up_at: Some(1_765_000_000_000),
            points: vec![
                point(1_765_000_000_000, 23.1291, 113.2644, Some(4.5)),
                point(1_765_000_005_000, 23.1295, 113.2650, None),
            ],
        }
    }

    #[test]
    fn gpx_parses_with_a_gpx_reader_and_keeps_every_point_and_time() {
        let doc = gpx::read(gpx(&trip()).as_bytes()).expect("valid GPX");
        assert_eq!(doc.version, gpx::GpxVersion::Gpx11);
        let points = &doc.tracks[0].segments[0].points;
        assert_eq!(points.len(), 2);
        let p = points[1].point();
        assert!((p.y() - 23.1295).abs() < 1e-7 && (p.x() - 113.2650).abs() < 1e-7);
        let time: OffsetDateTime = points[0].time.unwrap().into();
        assert_eq!(time.unix_timestamp(), 1_765_000_000);
    }

    #[test]
    fn csv_has_a_header_and_a_row_per_fix_with_empty_cells_for_what_is_missing() {
        let text = csv(&trip());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ts,time,lat,lon,speed,heading,acc,rider_id");
        assert_eq!(
            lines[1],
            "1765000000000,2025-12-06T05:46:40Z,23.1291,113.2644,4.5,,6.5,rider-1"
        );
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with("1765000005000,2025-12-06T05:46:45Z,"));
    }
}
