//! Who is asking, and may they watch this order: JWT verification and per-order access.
//!
//! Tokens are HS256 with the configured secret, or RS256 when a public key is
//! configured (both may be accepted at once). How a request carries one is the
//! HTTP layer's business (`hub/src/http/extract.rs`).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use tracker_domain::Order;
use tracker_domain::view::View;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches their own orders.
    Customer,
    /// Watches the orders assigned to them; pushes fixes.
    Rider,
    /// Operators and upstream systems: everything.
    Admin,
    /// A share link's holder: watches the one order named in the `order`
    /// claim, with the customer's view, and nothing else.
    Viewer,
}

/// The claims we read from a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id: a customer id, a rider id, or an operator's name.
    pub sub: String,
    /// Their role.
    pub role: Role,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not valid before, Unix seconds (optional, honoured when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// A display name (riders: the one customers see the first word of when
    /// the rider grabs an order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Viewers (share links): the one order the token may watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// Viewers: when the share was made, Unix ms; revoking an order's shares
    /// refuses every token made at or before the revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_at: Option<i64>,
}

/// Seconds of clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

/// Why a token was refused; all of them answer 401.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token in the header or the query.
    #[error("missing token")]
    Missing,
    /// Bad signature, expired, malformed, wrong algorithm.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Verifies tokens and, for demo and tests, mints HS256 ones.
pub struct Auth {
    hs256: (DecodingKey, EncodingKey),
    rs256: Option<DecodingKey>,
}

impl Auth {
    /// Accepts HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        Auth {
            hs256: (
                DecodingKey::from_secret(secret),
                EncodingKey::from_secret(secret),
            ),
            rs256: None,
        }
    }

    /// Also accepts RS256 tokens verified with this PEM public key.
    pub fn with_rs256_public_key(mut self, pem: &[u8]) -> Result<Self, AuthError> {
        let key = DecodingKey::from_rsa_pem(pem).map_err(|e| AuthError::Invalid(e.to_string()))?;
        self.rs256 = Some(key);
        Ok(self)
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = match (header.alg, &self.rs256) {
            (Algorithm::HS256, _) => &self.hs256.0,
            (Algorithm::RS256, Some(k)) => k,
            (alg, _) => {
                return Err(AuthError::Invalid(format!(
                    "algorithm {alg:?} not accepted"
                )));
            }
        };
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        let claims = decode::<Claims>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        claims.check().map_err(AuthError::Invalid)?;
        Ok(claims)
    }

    /// An HS256 token for `sub` as `role`, valid for `ttl_secs`.
    pub fn mint(&self, sub: &str, role: Role, ttl_secs: u64) -> String {
        self.mint_claims(&Claims::new(
            sub,
            role,
            jsonwebtoken::get_current_timestamp() + ttl_secs,
        ))
    }

    /// An HS256 token carrying `claims` as they are (a rider's display name, say).
    pub fn mint_claims(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.hs256.1)
            .expect("HS256 signing cannot fail")
    }
}

impl Claims {
    /// Claims of `sub` as `role` until `exp` (Unix seconds), nothing else set.
    pub fn new(sub: &str, role: Role, exp: u64) -> Self {
        Claims {
            sub: sub.to_owned(),
            role,
            exp,
            nbf: None,
            name: None,
            order: None,
            shared_at: None,
        }
    }

    /// What a verified signature does not prove: a subject, and a viewer's
    /// order and share time.
    fn check(&self) -> Result<(), String> {
        if self.sub.trim().is_empty() {
            return Err("the token's `sub` is empty".into());
        }
        if self.role == Role::Viewer && (self.order.is_none() || self.shared_at.is_none()) {
            return Err("a viewer token names its `order` and `shared_at`".into());
        }
        Ok(())
    }

    /// The view of orders this caller gets: customers and share links a
    /// redacted one, everyone else all of it.
    pub fn view(&self) -> View {
        match self.role {
            Role::Customer | Role::Viewer => View::Customer,
            Role::Rider | Role::Admin => View::Full,
        }
    }

    /// Whether another token may replace this one on an open connection:
    /// the same holder in the same role (and, for share links, the same order).
    pub fn same_holder(&self, other: &Claims) -> bool {
        self.sub == other.sub && self.role == other.role && self.order == other.order
    }
}

/// May the holder of `claims` watch (and read) `order`? (`docs/protocol.md`)
pub fn can_watch(claims: &Claims, order: &Order) -> bool {
    match claims.role {
        Role::Admin => true,
        Role::Customer => order.customer_id == claims.sub,
        Role::Rider => order.rider_id.as_deref() == Some(claims.sub.as_str()),
        Role::Viewer => {
            claims.order.as_deref() == Some(order.id.as_str()) && !share_revoked(claims, order)
        }
    }
}

/// True when `claims` are a share link of `order` made at or before the
/// order's shares were last revoked.
pub fn share_revoked(claims: &Claims, order: &Order) -> bool {
    match (claims.shared_at, order.shares_revoked_at) {
        (Some(made), Some(revoked)) => made <= revoked,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_forged_ones_do_not() {
        let auth = Auth::hs256(b"secret");
        let t = auth.mint("c1", Role::Customer, 60);
        assert_eq!(auth.verify(&t).unwrap().sub, "c1");
        let other = Auth::hs256(b"other");
        assert!(other.verify(&t).is_err());
        assert!(auth.verify("not.a.token").is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let auth = Auth::hs256(b"secret");
        let claims = Claims::new(
            "c1",
            Role::Customer,
            jsonwebtoken::get_current_timestamp() - 600,
        );
        let t = encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(matches!(auth.verify(&t), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn tokens_not_yet_valid_or_without_a_subject_are_refused() {
        let auth = Auth::hs256(b"secret");
        let now = jsonwebtoken::get_current_timestamp();
        let later = Claims {
            nbf: Some(now + 600),
            ..Claims::new("c1", Role::Customer, now + 1200)
        };
        assert!(auth.verify(&auth.mint_claims(&later)).is_err());
        let soon = Claims {
            nbf: Some(now + 2),
            ..Claims::new("c1", Role::Customer, now + 1200)
        };
        assert!(
            auth.verify(&auth.mint_claims(&soon)).is_ok(),
            "within the leeway"
        );
        for sub in ["", "  "] {
            let t = auth.mint_claims(&Claims::new(sub, Role::Customer, now + 60));
            assert!(auth.verify(&t).is_err(), "sub {sub:?}");
        }
        let loose_viewer = Claims::new("share", Role::Viewer, now + 60);
        assert!(auth.verify(&auth.mint_claims(&loose_viewer)).is_err());
    }

    #[test]
    fn a_share_token_watches_its_order_until_revoked() {
        let order = Order::new(
            "O1".into(),
            tracker_domain::NewOrder {
                biz_order_no: "B".into(),
                biz_type: "t".into(),
                customer_id: "c1".into(),
                pickup: tracker_domain::order::Point { lat: 1.0, lon: 1.0 },
                dropoff: tracker_domain::order::Point { lat: 1.0, lon: 1.0 },
                promised_at: None,
                route: None,
                ..Default::default()
            },
            0,
        );
        let viewer = Claims {
            order: Some("O1".into()),
            shared_at: Some(100),
            ..Claims::new("share:O1", Role::Viewer, u64::MAX)
        };
        assert!(can_watch(&viewer, &order));
        let other = Order {
            id: "O2".into(),
            ..order.clone()
        };
        assert!(!can_watch(&viewer, &other));
        let revoked = Order {
            shares_revoked_at: Some(100),
            ..order.clone()
        };
        assert!(!can_watch(&viewer, &revoked));
        let newer = Claims {
            shared_at: Some(101),
            ..viewer.clone()
        };
        assert!(
            can_watch(&newer, &revoked),
            "a share made after the revocation"
        );
        assert_eq!(viewer.view(), View::Customer);
    }

    #[test]
    fn rs256_tokens_verify_with_the_configured_public_key() {
        let private = include_bytes!("../tests/fixtures/rs256-test.key.pem");
        let public = include_bytes!("../tests/fixtures/rs256-test.pub.pem");
        let claims = Claims {
            name: Some("Ops Desk".into()),
            ..Claims::new(
                "ops",
                Role::Admin,
                jsonwebtoken::get_current_timestamp() + 60,
            )
        };
        let token = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(private).unwrap(),
        )
        .unwrap();

        let hs_only = Auth::hs256(b"secret");
        assert!(
            hs_only.verify(&token).is_err(),
            "RS256 is refused unless a public key is configured"
        );
        let both = Auth::hs256(b"secret")
            .with_rs256_public_key(public)
            .unwrap();
        assert_eq!(both.verify(&token).unwrap(), claims);
        assert!(
            both.verify(&both.mint("c1", Role::Customer, 60)).is_ok(),
            "HS256 still accepted"
        );
        assert!(
            Auth::hs256(b"s")
                .with_rs256_public_key(b"not a key")
                .is_err()
        );
    }
}
