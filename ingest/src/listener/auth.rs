//! Who a CONNECT proves to be: the listener asks a [`RiderAuth`], so the
//! token rules (JWT, roles, secrets) stay with whoever owns them.

/// The rider a connection belongs to, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiderLogin {
    /// The rider id: the connection may publish to its topics only. `None`
    /// on a trusted network ([`Trusted`]): any rider's topics.
    pub rider: Option<String>,
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

    /// What a CONNECT without a login gets; refused unless overridden.
    fn anonymous(&self) -> Option<RiderLogin> {
        None
    }
}

/// `TRACKER_MQTT_AUTH=none`, for a trusted network only: every CONNECT is
/// welcome, with or without a login, and may publish for any rider (as a
/// load generator or a gateway does).
#[derive(Debug, Default, Clone, Copy)]
pub struct Trusted;

impl RiderAuth for Trusted {
    fn login(&self, _username: &str, _password: &str) -> Result<RiderLogin, LoginRefused> {
        Ok(RiderLogin {
            rider: None,
            expires_at: None,
        })
    }

    fn anonymous(&self) -> Option<RiderLogin> {
        Some(RiderLogin {
            rider: None,
            expires_at: None,
        })
    }
}
