//! Tokens: the verifier every door of the process shares (the hub's HTTP and
//! WebSocket, the riders' MQTT listener), and what a rider's token proves at
//! CONNECT.

use super::Mode;
use crate::settings::Settings;
use anyhow::{Context, bail};
use std::sync::Arc;
use tracker_domain::rider::is_valid_rider_id;
use tracker_hub::{Auth, Role};
use tracker_ingest::listener::{LoginRefused, RiderAuth, RiderLogin};

/// Token verification as configured, and the secret when it was made up here:
/// `tracker run` makes one up when none is set; `tracker hub` and `tracker
/// ingest` refuse to, since every process must share it.
pub fn verifier(s: &Settings, mode: Mode) -> anyhow::Result<(Arc<Auth>, Option<String>)> {
    let (secret, generated) = match (s.auth.secret(), mode) {
        (Some(secret), _) => (secret.to_owned(), None),
        (None, Mode::Run) => {
            let secret = format!("{:032x}", rand::random::<u128>());
            (secret.clone(), Some(secret))
        }
        (None, Mode::Hub) => {
            bail!("`tracker hub` needs TRACKER_JWT_SECRET, the same on every hub node")
        }
        (None, Mode::Ingest) => bail!(
            "`tracker ingest` checks riders' tokens on its MQTT listener: set TRACKER_JWT_SECRET \
             (the hub's), or TRACKER_MQTT_AUTH=none on a trusted network"
        ),
    };
    let mut auth = Auth::hs256(secret.as_bytes());
    if let Some(path) = &s.auth.jwt_public_key {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading TRACKER_JWT_PUBLIC_KEY `{}`", path.display()))?;
        auth = auth
            .with_rs256_public_key(&pem)
            .context("TRACKER_JWT_PUBLIC_KEY is not an RSA public key in PEM")?;
    }
    Ok((Arc::new(auth), generated))
}

/// A CONNECT's login as `docs/protocol.md` has it: username = rider id,
/// password = a valid token of role `rider` whose `sub` is that id.
pub struct RiderTokens(pub Arc<Auth>);

impl RiderAuth for RiderTokens {
    fn login(&self, username: &str, password: &str) -> Result<RiderLogin, LoginRefused> {
        let claims = self
            .0
            .verify(password)
            .map_err(|_| LoginRefused::BadCredentials)?;
        if claims.role != Role::Rider || claims.sub != username {
            return Err(LoginRefused::NotAuthorized);
        }
        if !is_valid_rider_id(&claims.sub) {
            return Err(LoginRefused::BadCredentials);
        }
        Ok(RiderLogin {
            rider: Some(claims.sub),
            expires_at: Some(claims.exp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_hub::Claims;

    #[test]
    fn only_a_riders_own_token_logs_in_as_that_rider() {
        let auth = Arc::new(Auth::hs256(b"test-secret-0123456789"));
        let riders = RiderTokens(auth.clone());
        let good = auth.mint("r1", Role::Rider, 60);
        let login = riders.login("r1", &good).unwrap();
        assert_eq!(login.rider.as_deref(), Some("r1"));
        assert!(login.expires_at.is_some());
        assert_eq!(
            riders.login("r2", &good),
            Err(LoginRefused::NotAuthorized),
            "another rider"
        );
        let customer = auth.mint("r1", Role::Customer, 60);
        assert_eq!(
            riders.login("r1", &customer),
            Err(LoginRefused::NotAuthorized)
        );
        let forged = Auth::hs256(b"another-secret-0123456789").mint("r1", Role::Rider, 60);
        assert_eq!(
            riders.login("r1", &forged),
            Err(LoginRefused::BadCredentials)
        );
        let expired = auth.mint_claims(&Claims::new(
            "r1",
            Role::Rider,
            jsonwebtoken::get_current_timestamp() - 600,
        ));
        assert_eq!(
            riders.login("r1", &expired),
            Err(LoginRefused::BadCredentials)
        );
        assert_eq!(riders.login("r1", ""), Err(LoginRefused::BadCredentials));
    }
}
