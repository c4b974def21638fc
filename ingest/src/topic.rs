//! Rider topics (`docs/protocol.md`): `riders/{rider_id}/pos` and `riders/{rider_id}/pos/batch`.

use tracker_domain::rider::is_valid_rider_id;
pub use tracker_routing::Kind;

/// Largest publish taken from a rider, bytes (a batch of ~2000 fixes).
pub const MAX_PAYLOAD: usize = 512 * 1024;

/// The rider and kind of a publish topic, or `None` when it is not a rider topic
/// or the rider id is not 1..=64 of `[A-Za-z0-9_.-]`.
pub fn parse(topic: &str) -> Option<(&str, Kind)> {
    let rest = topic.strip_prefix("riders/")?;
    let (rider, kind) = if let Some(r) = rest.strip_suffix("/pos/batch") {
        (r, Kind::Batch)
    } else {
        (rest.strip_suffix("/pos")?, Kind::Single)
    };
    is_valid_rider_id(rider).then_some((rider, kind))
}

/// The subscription filters of an ingest instance: in shared group `group`
/// (`$share/{group}/riders/+/pos` and `…/pos/batch`, `docs/protocol.md`), or plain
/// filters when it is the only consumer (`None`).
pub fn filters(group: Option<&str>) -> [String; 2] {
    match group {
        Some(g) => [
            format!("$share/{g}/riders/+/pos"),
            format!("$share/{g}/riders/+/pos/batch"),
        ],
        None => ["riders/+/pos".to_owned(), "riders/+/pos/batch".to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rider_topics_and_refuses_others() {
        assert_eq!(parse("riders/r1/pos"), Some(("r1", Kind::Single)));
        assert_eq!(
            parse("riders/r-1.a_b/pos/batch"),
            Some(("r-1.a_b", Kind::Batch))
        );
        for bad in [
            "riders//pos",
            "riders/a/b/pos",
            "drivers/r1/pos",
            "riders/r1/position",
            "riders/r 1/pos",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse(&format!("riders/{}/pos", "x".repeat(65))), None);
    }

    #[test]
    fn filters_follow_the_protocol() {
        assert_eq!(
            filters(Some("ingest")),
            [
                "$share/ingest/riders/+/pos",
                "$share/ingest/riders/+/pos/batch"
            ]
        );
        assert_eq!(filters(None), ["riders/+/pos", "riders/+/pos/batch"]);
    }
}
