//! `tracker token`: mints a token with the configured secret, so a deployment
//! without the demo (compose, Kubernetes) can hand out tokens to operators,
//! upstream systems and riders' apps.

use crate::settings::Settings;
use anyhow::bail;
use tracker_hub::{Auth, Claims, Role};

/// What `tracker token` was asked for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `admin`, `customer`, `rider` or `viewer`.
    pub role: String,
    /// The user id the token speaks for.
    pub sub: String,
    /// Seconds until it expires.
    pub ttl_secs: u64,
    /// A display name (riders: what customers see).
    pub name: Option<String>,
    /// The one order a `viewer` may watch.
    pub order: Option<String>,
}

/// The longest token this command mints: a year. Longer-lived credentials
/// belong in a key rotation, not a token nobody can take back.
pub const MAX_TTL_SECS: u64 = 366 * 24 * 3600;

/// An HS256 token for `req`, signed with `TRACKER_JWT_SECRET`.
pub fn mint(settings: &Settings, req: &TokenRequest) -> anyhow::Result<String> {
    let Some(secret) = settings.auth.secret() else {
        bail!(
            "TRACKER_JWT_SECRET is not set: a token is only good for processes that share the secret it is signed with"
        );
    };
    let role: Role =
        serde_json::from_value(serde_json::Value::String(req.role.clone())).map_err(|_| {
            anyhow::anyhow!(
                "unknown role `{}`: admin, customer, rider or viewer",
                req.role
            )
        })?;
    if req.sub.trim().is_empty() {
        bail!("--sub must name the user");
    }
    // A viewer token is a share link: no longer than the API makes them.
    let max = if role == Role::Viewer {
        tracker_hub::orders::shares::MAX_TTL as u64
    } else {
        MAX_TTL_SECS
    };
    if req.ttl_secs == 0 || req.ttl_secs > max {
        bail!(
            "--ttl must be between 1 and {max} seconds for a {} token",
            req.role
        );
    }
    if role == Role::Rider && !tracker_domain::rider::is_valid_rider_id(&req.sub) {
        bail!(
            "`{}` is not a rider id (letters, digits, `-`, `_`, `.`)",
            req.sub
        );
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let mut claims = Claims::new(&req.sub, role, now.as_secs() + req.ttl_secs);
    claims.name = req.name.clone();
    match (role, &req.order) {
        (Role::Viewer, None) => bail!("a viewer token needs --order: the one order it may watch"),
        (Role::Viewer, Some(order)) => {
            claims.order = Some(order.clone());
            // In ms, as the API's shares: revoking the order's shares later
            // refuses this token, and a revocation before it does not.
            claims.shared_at = Some(i64::try_from(now.as_millis())?);
        }
        (_, Some(_)) => bail!("--order is for viewer tokens only"),
        (_, None) => {}
    }
    Ok(Auth::hs256(secret.as_bytes()).mint_claims(&claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: Option<&str>) -> Settings {
        let vars: std::collections::HashMap<String, String> = secret
            .map(|s| ("TRACKER_JWT_SECRET".to_owned(), s.to_owned()))
            .into_iter()
            .collect();
        Settings::from_vars(&vars).unwrap()
    }

    fn req(role: &str) -> TokenRequest {
        TokenRequest {
            role: role.into(),
            sub: "alice".into(),
            ttl_secs: 600,
            name: Some("Alice Li".into()),
            order: None,
        }
    }

    #[test]
    fn a_minted_token_verifies_with_the_same_secret_and_carries_what_was_asked() {
        let s = settings(Some("a-secret-of-enough-length"));
        let token = mint(&s, &req("rider")).unwrap();
        let claims = Auth::hs256(b"a-secret-of-enough-length")
            .verify(&token)
            .unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.role, Role::Rider);
        assert_eq!(claims.name.as_deref(), Some("Alice Li"));
        let left = claims.exp - jsonwebtoken::get_current_timestamp();
        assert!((595..=600).contains(&left), "{left}");
        assert!(
            Auth::hs256(b"another-secret-entirely")
                .verify(&token)
                .is_err()
        );
    }

    #[test]
    fn a_viewer_token_names_its_order_and_when_it_was_shared() {
        let s = settings(Some("a-secret-of-enough-length"));
        assert!(mint(&s, &req("viewer")).is_err(), "a viewer needs --order");
        let mut r = req("viewer");
        r.order = Some("42".into());
        let token = mint(&s, &r).unwrap();
        let claims = Auth::hs256(b"a-secret-of-enough-length")
            .verify(&token)
            .unwrap();
        assert_eq!(claims.order.as_deref(), Some("42"));
        assert!(claims.shared_at.is_some());
    }

    #[test]
    fn refuses_without_a_secret_an_unknown_role_a_blank_user_or_a_bad_ttl() {
        let e = mint(&settings(None), &req("admin")).unwrap_err();
        assert!(e.to_string().contains("TRACKER_JWT_SECRET"), "{e}");
        let s = settings(Some("a-secret-of-enough-length"));
        assert!(mint(&s, &req("superuser")).is_err());
        let mut r = req("admin");
        r.sub = " ".into();
        assert!(mint(&s, &r).is_err());
        let mut r = req("admin");
        r.ttl_secs = 0;
        assert!(mint(&s, &r).is_err());
        r.ttl_secs = MAX_TTL_SECS + 1;
        assert!(mint(&s, &r).is_err());
        let mut r = req("viewer");
        r.order = Some("42".into());
        r.ttl_secs = 30 * 24 * 3600;
        assert!(mint(&s, &r).is_err(), "a share link lasts a week at most");
        let mut r = req("rider");
        r.sub = "no spaces".into();
        assert!(mint(&s, &r).is_err(), "not a rider id");
        let mut r = req("admin");
        r.order = Some("42".into());
        assert!(mint(&s, &r).is_err(), "--order is for viewers");
    }
}
