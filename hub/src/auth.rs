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
    /// A display name (riders: the one customers see the first word of when
    /// the rider grabs an order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

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
        v.leeway = 5;
        decode::<Claims>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// An HS256 token for `sub` as `role`, valid for `ttl_secs`.
    pub fn mint(&self, sub: &str, role: Role, ttl_secs: u64) -> String {
        self.mint_claims(&Claims {
            sub: sub.to_owned(),
            role,
            exp: jsonwebtoken::get_current_timestamp() + ttl_secs,
            name: None,
        })
    }

    /// An HS256 token carrying `claims` as they are (a rider's display name, say).
    pub fn mint_claims(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.hs256.1)
            .expect("HS256 signing cannot fail")
    }
}

impl Claims {
    /// The view of orders this caller gets: customers a redacted one, everyone else all of it.
    pub fn view(&self) -> View {
        match self.role {
            Role::Customer => View::Customer,
            Role::Rider | Role::Admin => View::Full,
        }
    }
}

/// May the holder of `claims` watch (and read) `order`? (`docs/protocol.md`)
pub fn can_watch(claims: &Claims, order: &Order) -> bool {
    match claims.role {
        Role::Admin => true,
        Role::Customer => order.customer_id == claims.sub,
        Role::Rider => order.rider_id.as_deref() == Some(claims.sub.as_str()),
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
        let claims = Claims {
            sub: "c1".into(),
            role: Role::Customer,
            exp: jsonwebtoken::get_current_timestamp() - 600,
            name: None,
        };
        let t = encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(matches!(auth.verify(&t), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn rs256_tokens_verify_with_the_configured_public_key() {
        let private = include_bytes!("../tests/fixtures/rs256-test.key.pem");
        let public = include_bytes!("../tests/fixtures/rs256-test.pub.pem");
        let claims = Claims {
            sub: "ops".into(),
            role: Role::Admin,
            exp: jsonwebtoken::get_current_timestamp() + 60,
            name: Some("Ops Desk".into()),
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
