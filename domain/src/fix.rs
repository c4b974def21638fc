//! A rider's GPS fix as it arrives (MQTT `riders/{id}/pos`, `…/pos/batch`), and its validation.
//!
//! Validation never panics and never gives up on a whole batch for one bad
//! element: each rejection carries a [`RejectReason`] that ingest counts.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One validated position report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// The phone's own fix time, Unix ms; the end-to-end delay is measured from it.
    pub ts: i64,
    /// Ground speed, m/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Course over ground, degrees clockwise from north.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<f64>,
    /// Horizontal accuracy, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc: Option<f64>,
}

/// Why a fix (or a whole payload) was refused; the label is the metrics `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The topic is not `riders/{id}/pos[/batch]` with a sane rider id.
    BadTopic,
    /// The payload is larger than [`FixLimits::max_payload_bytes`].
    TooLarge,
    /// Not JSON at all (garbage bytes, truncated, `NaN` literals).
    BadJson,
    /// JSON of the wrong shape: missing field, string for a number, object for an array.
    BadType,
    /// A batch with more than [`FixLimits::max_batch`] fixes.
    BatchTooLarge,
    /// Latitude or longitude outside the WGS-84 range.
    OutOfRange,
    /// `ts` further in the future than [`FixLimits::max_future_ms`].
    FutureTs,
    /// `ts` older than [`FixLimits::max_age_ms`].
    TooOld,
    /// `speed`, `heading` or `acc` out of its range.
    BadField,
    /// A rider publishing to another rider's topic (or to no rider topic).
    Forbidden,
    /// More payloads per second than the rider's fix rate allows.
    RateLimited,
}

/// Every reason, for exporting zeroed counters.
pub const ALL_REASONS: [RejectReason; 11] = [
    RejectReason::BadTopic,
    RejectReason::TooLarge,
    RejectReason::BadJson,
    RejectReason::BadType,
    RejectReason::BatchTooLarge,
    RejectReason::OutOfRange,
    RejectReason::FutureTs,
    RejectReason::TooOld,
    RejectReason::BadField,
    RejectReason::Forbidden,
    RejectReason::RateLimited,
];

impl RejectReason {
    /// The label used in metrics and error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadTopic => "bad_topic",
            RejectReason::TooLarge => "too_large",
            RejectReason::BadJson => "bad_json",
            RejectReason::BadType => "bad_type",
            RejectReason::BatchTooLarge => "batch_too_large",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::FutureTs => "future_ts",
            RejectReason::TooOld => "too_old",
            RejectReason::BadField => "bad_field",
            RejectReason::Forbidden => "forbidden",
            RejectReason::RateLimited => "rate_limited",
        }
    }

    /// Position in [`ALL_REASONS`], for array-indexed counters.
    pub fn index(self) -> usize {
        ALL_REASONS.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Bounds on what a fix may say; defaults suit phones.
#[derive(Debug, Clone, Copy)]
pub struct FixLimits {
    /// Largest payload read at all.
    pub max_payload_bytes: usize,
    /// Most fixes in one batch.
    pub max_batch: usize,
    /// How far ahead of our clock a phone's `ts` may be (clock skew).
    pub max_future_ms: i64,
    /// How old a fix may be (an offline backlog).
    pub max_age_ms: i64,
}

impl Default for FixLimits {
    fn default() -> Self {
        FixLimits {
            max_payload_bytes: 256 * 1024,
            max_batch: 2000,
            max_future_ms: 60_000,
            max_age_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// The fastest plausible rider, m/s (a scooter on a highway, with margin).
const MAX_SPEED: f64 = 100.0;

fn classify(e: &serde_json::Error) -> RejectReason {
    match e.classify() {
        serde_json::error::Category::Data => RejectReason::BadType,
        _ => RejectReason::BadJson,
    }
}

impl Fix {
    /// Checks ranges against `now` (Unix ms).
    pub fn validate(&self, now: i64, limits: &FixLimits) -> Result<(), RejectReason> {
        let point = crate::order::Point {
            lat: self.lat,
            lon: self.lon,
        };
        if !point.is_valid() {
            return Err(RejectReason::OutOfRange);
        }
        if self.ts > now.saturating_add(limits.max_future_ms) {
            return Err(RejectReason::FutureTs);
        }
        if self.ts < now.saturating_sub(limits.max_age_ms) {
            return Err(RejectReason::TooOld);
        }
        let in_range = |v: Option<f64>, lo: f64, hi: f64| {
            v.is_none_or(|x| x.is_finite() && x >= lo && x <= hi)
        };
        if !in_range(self.speed, 0.0, MAX_SPEED)
            || !in_range(self.heading, 0.0, 360.0)
            || !in_range(self.acc, 0.0, 100_000.0)
        {
            return Err(RejectReason::BadField);
        }
        Ok(())
    }
}

/// Parses and validates one fix.
pub fn parse_fix(payload: &[u8], now: i64, limits: &FixLimits) -> Result<Fix, RejectReason> {
    if payload.len() > limits.max_payload_bytes {
        return Err(RejectReason::TooLarge);
    }
    let fix: Fix = serde_json::from_slice(payload).map_err(|e| classify(&e))?;
    fix.validate(now, limits)?;
    Ok(fix)
}

/// Parses a batch: the good fixes, and a reason for each bad one.
///
/// A payload that is not a JSON array at all, or is too large, is refused whole.
pub fn parse_batch(
    payload: &[u8],
    now: i64,
    limits: &FixLimits,
) -> Result<(Vec<Fix>, Vec<RejectReason>), RejectReason> {
    if payload.len() > limits.max_payload_bytes {
        return Err(RejectReason::TooLarge);
    }
    let items: Vec<&RawValue> = serde_json::from_slice(payload).map_err(|e| classify(&e))?;
    if items.len() > limits.max_batch {
        return Err(RejectReason::BatchTooLarge);
    }
    let mut good = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for raw in items {
        match serde_json::from_str::<Fix>(raw.get()) {
            Ok(fix) => match fix.validate(now, limits) {
                Ok(()) => good.push(fix),
                Err(r) => bad.push(r),
            },
            Err(e) => bad.push(classify(&e)),
        }
    }
    Ok((good, bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    const NOW: i64 = 1_763_700_000_000;

    fn one(s: &str) -> Result<Fix, RejectReason> {
        parse_fix(s.as_bytes(), NOW, &FixLimits::default())
    }

    #[test]
    fn accepts_the_protocol_example() {
        let f = one(
            r#"{"lat":23.1291,"lon":113.2644,"ts":1763700000000,"speed":4.2,"heading":90,"acc":8}"#,
        )
        .unwrap();
        assert_eq!(f.lat, 23.1291);
        assert_eq!(f.speed, Some(4.2));
        assert!(one(r#"{"lat":23.1291,"lon":113.2644,"ts":1763700000000}"#).is_ok());
    }

    #[test]
    fn rejects_each_kind_of_bad_input_with_its_reason() {
        use RejectReason::*;
        let cases = [
            ("\u{0}\u{1}garbage", BadJson),
            ("{\"lat\":NaN,\"lon\":1,\"ts\":1}", BadJson),
            ("{\"lat\":1e999,\"lon\":1,\"ts\":1763700000000}", BadJson),
            ("{\"lat\":\"23\",\"lon\":1,\"ts\":1763700000000}", BadType),
            ("{\"lon\":1,\"ts\":1763700000000}", BadType),
            ("[1,2]", BadType),
            ("{\"lat\":91,\"lon\":1,\"ts\":1763700000000}", OutOfRange),
            ("{\"lat\":1,\"lon\":-181,\"ts\":1763700000000}", OutOfRange),
            ("{\"lat\":1,\"lon\":1,\"ts\":1863700000000}", FutureTs),
            ("{\"lat\":1,\"lon\":1,\"ts\":1000}", TooOld),
            (
                "{\"lat\":1,\"lon\":1,\"ts\":1763700000000,\"speed\":-1}",
                BadField,
            ),
            (
                "{\"lat\":1,\"lon\":1,\"ts\":1763700000000,\"heading\":400}",
                BadField,
            ),
        ];
        for (payload, reason) in cases {
            assert_eq!(one(payload), Err(reason), "{payload}");
        }
        let huge = vec![b' '; FixLimits::default().max_payload_bytes + 1];
        assert_eq!(parse_fix(&huge, NOW, &FixLimits::default()), Err(TooLarge));
    }

    #[test]
    fn batch_keeps_good_fixes_and_counts_bad_ones() {
        let p = br#"[{"lat":1,"lon":1,"ts":1763699990000},{"lat":99,"lon":1,"ts":1763699990000},"x",{"lat":2,"lon":2,"ts":1763699980000}]"#;
        let (good, bad) = parse_batch(p, NOW, &FixLimits::default()).unwrap();
        assert_eq!(good.len(), 2);
        assert_eq!(bad, vec![RejectReason::OutOfRange, RejectReason::BadType]);
        assert_eq!(
            parse_batch(b"{}", NOW, &FixLimits::default()),
            Err(RejectReason::BadType)
        );
        let limits = FixLimits {
            max_batch: 2,
            ..Default::default()
        };
        assert_eq!(
            parse_batch(b"[1,2,3]", NOW, &limits),
            Err(RejectReason::BatchTooLarge)
        );
    }
}
