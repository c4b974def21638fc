//! Rider ids: what every door (MQTT topics, tokens over HTTP) accepts as one.

/// Longest accepted rider id.
pub const MAX_RIDER_ID: usize = 64;

/// Is `id` a rider id: 1..=64 characters of `[A-Za-z0-9_.-]`?
pub fn is_valid_rider_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_RIDER_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rider_ids_are_short_and_plain() {
        for good in ["r1", "r-1.a_b", &"x".repeat(64)] {
            assert!(is_valid_rider_id(good), "{good}");
        }
        for bad in ["", "r 1", "a/b", "r+", "é", &"x".repeat(65)] {
            assert!(!is_valid_rider_id(bad), "{bad}");
        }
    }
}
