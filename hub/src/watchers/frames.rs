//! The JSON frames of the watcher protocol: what clients send, and the server's own replies.

use axum::extract::ws::Utf8Bytes;
use serde::Deserialize;

/// A client → server frame.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ClientOp {
    /// Watch an order; with `since`, resume after that `seq`.
    Sub {
        /// The order id.
        order: String,
        /// The last `seq` the client holds.
        #[serde(default)]
        since: Option<u64>,
        /// The epoch of that `seq`, from an earlier snapshot; a different one means history was lost.
        #[serde(default)]
        epoch: Option<String>,
    },
    /// Stop watching an order.
    Unsub {
        /// The order id.
        order: String,
    },
    /// Keep-alive; answered with `pong`.
    Ping,
    /// Replaces the connection's token (same holder, later `exp`).
    Refresh {
        /// The new JWT.
        token: String,
    },
}

/// Why a client frame was not taken; the `code` of the error frame and the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Not JSON.
    BadJson,
    /// JSON, but not an op we know, or missing a field.
    BadRequest,
    /// A binary frame; the protocol is text.
    Unsupported,
    /// Above the parse limit.
    TooLarge,
}

impl FrameError {
    /// The wire code.
    pub fn code(self) -> &'static str {
        match self {
            FrameError::BadJson => "bad_json",
            FrameError::BadRequest => "bad_request",
            FrameError::Unsupported => "unsupported",
            FrameError::TooLarge => "too_large",
        }
    }
}

/// Parses a client text frame, bounded by `max_len` bytes.
pub fn parse(text: &str, max_len: usize) -> Result<ClientOp, (FrameError, String)> {
    if text.len() > max_len {
        return Err((
            FrameError::TooLarge,
            format!("frames are limited to {max_len} bytes"),
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Data => FrameError::BadRequest,
            _ => FrameError::BadJson,
        };
        (kind, e.to_string())
    })
}

/// Turns encoded JSON into frame text (it is always UTF-8; serde_json writes nothing else).
pub fn text(json: Vec<u8>) -> Utf8Bytes {
    match String::from_utf8(json) {
        Ok(s) => s.into(),
        Err(_) => Utf8Bytes::from_static("{\"t\":\"error\",\"code\":\"internal\"}"),
    }
}

/// `{"t":"error","code":…,"order":…,"msg":…}`.
pub fn error(code: &str, order: Option<&str>, msg: &str) -> Utf8Bytes {
    let v = serde_json::json!({ "t": "error", "code": code, "order": order, "msg": msg });
    v.to_string().into()
}

/// `{"t":"refreshed","exp":…}`: the connection's token now expires at `exp` (Unix seconds).
pub fn refreshed(exp: u64) -> Utf8Bytes {
    format!("{{\"t\":\"refreshed\",\"exp\":{exp}}}").into()
}

/// `{"t":"pong"}`.
pub fn pong() -> Utf8Bytes {
    Utf8Bytes::from_static("{\"t\":\"pong\"}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_protocol_ops() {
        assert_eq!(
            parse(r#"{"op":"sub","order":"O1","since":41}"#, 4096).unwrap(),
            ClientOp::Sub {
                order: "O1".into(),
                since: Some(41),
                epoch: None
            }
        );
        assert_eq!(
            parse(r#"{"op":"unsub","order":"O1"}"#, 4096).unwrap(),
            ClientOp::Unsub { order: "O1".into() }
        );
        assert_eq!(parse(r#"{"op":"ping"}"#, 4096).unwrap(), ClientOp::Ping);
        assert_eq!(
            parse(r#"{"op":"refresh","token":"a.b.c"}"#, 4096).unwrap(),
            ClientOp::Refresh {
                token: "a.b.c".into()
            }
        );
    }

    #[test]
    fn bad_frames_get_distinct_codes() {
        assert_eq!(parse("{nope", 4096).unwrap_err().0, FrameError::BadJson);
        assert_eq!(
            parse(r#"{"op":"dance"}"#, 4096).unwrap_err().0,
            FrameError::BadRequest
        );
        assert_eq!(
            parse(r#"{"op":"sub"}"#, 4096).unwrap_err().0,
            FrameError::BadRequest
        );
        assert_eq!(
            parse(r#"{"op":"refresh"}"#, 4096).unwrap_err().0,
            FrameError::BadRequest,
            "a refresh without its token"
        );
        assert_eq!(
            parse(r#"{"op":"sub","order":"O1","since":-1}"#, 4096)
                .unwrap_err()
                .0,
            FrameError::BadRequest
        );
        assert_eq!(
            parse(&"x".repeat(5000), 4096).unwrap_err().0,
            FrameError::TooLarge
        );
    }
}
