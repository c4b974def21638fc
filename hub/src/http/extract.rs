//! Who is calling: the token of a request, verified into claims before the
//! handler runs. Tokens arrive in `Authorization: Bearer …` or, where a
//! browser cannot set headers, `?token=…`.

use super::error::ApiError;
use crate::auth::{Auth, AuthError, Claims, Role};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tracker_gate::Gate;

/// The token of a request: the bearer header first, then `?token=`.
pub fn token_of(parts: &Parts) -> Option<String> {
    if let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let h = h.to_str().ok()?;
        return h.strip_prefix("Bearer ").map(|t| t.trim().to_owned());
    }
    let query = parts.uri.query()?;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token=").map(str::to_owned))
}

/// Extractor: the client's IP: the peer's address, or what `X-Forwarded-For`
/// says behind a trusted load balancer (the gate's `TRUSTED_PROXIES`).
/// Requests served without a peer address (in-process tests) are `0.0.0.0`.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    Gate: axum::extract::FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let gate: Gate = axum::extract::FromRef::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Ok(ClientIp(gate.client_ip(peer, forwarded)))
    }
}

/// Extractor: the verified claims of the caller, or a 401.
pub struct Caller(pub Claims);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<Auth>: axum::extract::FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth: Arc<Auth> = axum::extract::FromRef::from_ref(state);
        let token = token_of(parts).ok_or(AuthError::Missing)?;
        Ok(Caller(auth.verify(&token)?))
    }
}

/// Extractor: a caller with the admin role (401 without a valid token, 403 with
/// another role), checked before the request body is read.
pub struct Admin(pub Claims);

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    Arc<Auth>: axum::extract::FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        if claims.role != Role::Admin {
            return Err(ApiError::forbidden("this call needs an admin token"));
        }
        Ok(Admin(claims))
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s with the JSON error body.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);
