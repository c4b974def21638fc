//! Who a CONNECT proves to be: the listener asks a [`RiderAuth`], so the
//! token rules (JWT, roles, secrets) stay with whoever owns them.

/// The rider a connection belongs to, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiderLogin {
    /// The rider id; the connection may publish to its topics only.
    pub rider: String,
    /// When the proof ends, Unix seconds: the connection is closed then.
    pub expires_at: Option<u64>,
}

/// Why a CONNECT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// No credentials, or ones that prove nothing (bad signature, expired,
    /// not a rider id).
    BadCredentials,
    /// Valid credentials of somebody who may not connect as this rider (a
    /// customer's token, another rider's).
    NotAuthorized,
}

/// Checks the username and password of a CONNECT.
pub trait RiderAuth: Send + Sync + 'static {
    /// The rider that `username` and `password` prove, or why not.
    fn login(&self, username: &str, password: &str) -> Result<RiderLogin, LoginRefused>;
}

/// For a trusted network only: the username is taken as the rider id,
/// unchecked (it must still be a valid rider id).
#[derive(Debug, Default, Clone, Copy)]
pub struct TrustUsername;

impl RiderAuth for TrustUsername {
    fn login(&self, username: &str, _password: &str) -> Result<RiderLogin, LoginRefused> {
        if !tracker_domain::rider::is_valid_rider_id(username) {
            return Err(LoginRefused::BadCredentials);
        }
        Ok(RiderLogin {
            rider: username.to_owned(),
            expires_at: None,
        })
    }
}
