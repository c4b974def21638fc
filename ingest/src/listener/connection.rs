//! One rider's MQTT connection: CONNECT with a login, then publishes routed
//! straight to the rider's lane and acknowledged in order once they are in
//! the log, pings, subscriptions inside the rider's own subtree only, and a
//! clean end (the client's, a keep-alive timeout, the token's end, shutdown).

use super::Shared;
use super::auth::LoginRefused;
use super::codec::{self, Bad, ConnAnswer, Farewell, In, Opening, Out, Version};
use crate::topic;
use bytes::BytesMut;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracker_gate::{Permit, Refusal};

/// How long a connection ended by the server waits for the client to close.
const LINGER: Duration = Duration::from_millis(500);

/// Counts a refusal or a forced end, by reason.
fn refused(reason: &'static str) {
    metrics::counter!("tracker_mqtt_refused_total", "reason" => reason).increment(1);
}

/// An answer that waits for its publish to be routed and its track points
/// durable (a PUBREC also opens the wait for its PUBREL).
struct Pending {
    /// True once routed and durable; false if it never will be (stopping).
    done: std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>,
    ack: Out,
}

/// The session after a good CONNECT.
struct Session {
    version: Version,
    /// `None` on a trusted network: any rider's topics.
    rider: Option<String>,
    keep_alive: Option<Duration>,
    expires: Option<Instant>,
    /// QoS 2 packet ids answered with PUBREC and not yet released.
    awaiting_rel: HashSet<u16>,
    pending: VecDeque<Pending>,
}

/// A rider's byte stream: a TCP socket, or TLS over one.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Serves one accepted socket until it ends.
pub(super) async fn run<S: Stream>(
    mut stream: S,
    admission: Result<Permit, Refusal>,
    shared: Arc<Shared>,
) {
    let mut buf = BytesMut::with_capacity(1024);
    let refusal = admission.as_ref().err().copied();
    let Some(session) = open(&mut stream, &mut buf, refusal, &shared).await else {
        return;
    };
    // Holds the connection's place in the process's cap until it ends.
    let _permit = admission;
    metrics::gauge!("tracker_mqtt_riders_connected").increment(1.0);
    serve(stream, buf, session, &shared).await;
    metrics::gauge!("tracker_mqtt_riders_connected").decrement(1.0);
}

/// Reads more of the opening bytes before `deadline`; `None` when the socket
/// closed or the time ran out (counted).
async fn read_more<S: Stream>(stream: &mut S, buf: &mut BytesMut, deadline: Instant) -> Option<()> {
    match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => None,
        Ok(Ok(_)) => Some(()),
        Err(_) => {
            refused("connect_timeout");
            None
        }
    }
}

/// Reads the CONNECT within the time allowed and answers it; the session when
/// the login is good.
async fn open<S: Stream>(
    stream: &mut S,
    buf: &mut BytesMut,
    refusal: Option<Refusal>,
    shared: &Shared,
) -> Option<Session> {
    let cfg = &shared.cfg;
    let deadline = Instant::now() + cfg.connect_timeout;
    let version = loop {
        match codec::peek_version(buf, cfg.max_connect) {
            Ok(Some(v)) => break v,
            Ok(None) => {}
            Err(why) => {
                let reason = match why {
                    Opening::NotConnect => "not_connect",
                    Opening::BadLevel => {
                        // A 3.1.1 CONNACK "unacceptable protocol version" is
                        // what every older client understands.
                        let _ = stream.write_all(&[0x20, 2, 0, 1]).await;
                        "bad_protocol"
                    }
                    Opening::TooLarge => "too_large",
                };
                refused(reason);
                return None;
            }
        }
        read_more(stream, buf, deadline).await?;
    };
    let connect = loop {
        match codec::read(version, buf, cfg.max_connect) {
            Ok(Some(p)) => break p,
            Ok(None) => {}
            Err(Bad::TooLarge) => {
                refused("too_large");
                return None;
            }
            Err(Bad::Malformed) => {
                refused("bad_packet");
                return None;
            }
        }
        read_more(stream, buf, deadline).await?;
    };
    let In::Connect { login, keep_alive } = connect else {
        refused("not_connect");
        return None;
    };
    let mut out = BytesMut::new();
    if let Some(r) = refusal {
        refused("gate");
        let answer = match r {
            Refusal::RateLimited { .. } => ConnAnswer::RateLimited,
            _ => ConnAnswer::Busy,
        };
        codec::write(version, Out::ConnAck(answer, 0), &mut out);
        let _ = stream.write_all(&out).await;
        return None;
    }
    let answer = match login {
        None => shared.auth.anonymous().ok_or(LoginRefused::BadCredentials),
        Some((user, password)) => shared.auth.login(&user, &password.0),
    };
    let login = match answer {
        Ok(login) => login,
        Err(why) => {
            refused("unauthorized");
            let answer = match why {
                LoginRefused::BadCredentials => ConnAnswer::BadCredentials,
                LoginRefused::NotAuthorized => ConnAnswer::NotAuthorized,
            };
            codec::write(version, Out::ConnAck(answer, 0), &mut out);
            let _ = stream.write_all(&out).await;
            return None;
        }
    };
    let expires = match login.expires_at {
        None => None,
        Some(at) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            if at <= now {
                refused("unauthorized");
                codec::write(
                    version,
                    Out::ConnAck(ConnAnswer::BadCredentials, 0),
                    &mut out,
                );
                let _ = stream.write_all(&out).await;
                return None;
            }
            Some(Instant::now() + Duration::from_secs(at - now))
        }
    };
    let max = u32::try_from(cfg.max_packet).unwrap_or(u32::MAX);
    codec::write(version, Out::ConnAck(ConnAnswer::Accepted, max), &mut out);
    if stream.write_all(&out).await.is_err() {
        return None;
    }
    Some(Session {
        version,
        rider: login.rider,
        // A client is gone after one and a half keep-alive periods of silence.
        keep_alive: (keep_alive > 0).then(|| Duration::from_millis(keep_alive as u64 * 1500)),
        expires,
        awaiting_rel: HashSet::new(),
        pending: VecDeque::new(),
    })
}

/// What the loop does next.
enum Step {
    Go,
    End(Option<Farewell>),
}

async fn serve<S: Stream>(mut stream: S, mut buf: BytesMut, mut s: Session, shared: &Shared) {
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let mut heard = Instant::now();
    let mut out = BytesMut::new();
    let farewell = loop {
        // Whatever is already buffered is handled before waiting again.
        let mut step = Step::Go;
        loop {
            match codec::read(s.version, &mut buf, shared.cfg.max_packet) {
                Ok(Some(p)) => {
                    heard = Instant::now();
                    step = handle(p, &mut s, shared, &mut out).await;
                    if let Step::End(_) = step {
                        break;
                    }
                }
                Ok(None) => break,
                Err(Bad::TooLarge) => {
                    refused("too_large");
                    step = Step::End(Some(Farewell::TooLarge));
                    break;
                }
                Err(Bad::Malformed) => {
                    refused("bad_packet");
                    step = Step::End(Some(Farewell::ProtocolError));
                    break;
                }
            }
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            break None;
        }
        out.clear();
        if let Step::End(f) = step {
            break f;
        }
        let idle_at = s.keep_alive.map_or(far, |k| heard + k);
        let expires_at = s.expires.unwrap_or(far);
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break None,
                Ok(_) => {}
            },
            // Lazy: select! builds every branch's future, even a disabled one.
            done = async { s.pending.front_mut().expect("guarded").done.as_mut().await },
                if !s.pending.is_empty() =>
            {
                let p = s.pending.pop_front().expect("guarded");
                if !done {
                    break Some(Farewell::ShuttingDown); // not routed: never acked
                }
                if let Out::PubRec { pkid, .. } = &p.ack {
                    s.awaiting_rel.insert(*pkid);
                }
                codec::write(s.version, p.ack, &mut out);
            }
            _ = tokio::time::sleep_until(idle_at) => {
                refused("keepalive_timeout");
                break Some(Farewell::KeepAlive);
            }
            _ = tokio::time::sleep_until(expires_at) => {
                refused("token_expired");
                break Some(Farewell::NotAuthorized);
            }
            _ = shared.stop.cancelled() => break Some(Farewell::ShuttingDown),
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            break None;
        }
        out.clear();
    };
    if let Some(f) = farewell {
        out.clear();
        codec::write(s.version, Out::Disconnect(f), &mut out);
        // Said, then a moment for the client to read it and close first, so
        // the reason is not lost to a reset.
        let linger = async {
            stream.write_all(&out).await?;
            stream.flush().await?;
            let mut sink = [0u8; 256];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(LINGER, linger).await;
    }
    let _ = stream.shutdown().await;
}

/// Is `filter` inside `riders/{rider}/…`, with no wildcard above it? On a
/// trusted network (`None`) anything goes.
fn may_subscribe(rider: Option<&str>, filter: &str) -> bool {
    rider.is_none_or(|r| inside_own_subtree(r, filter))
}

/// Is `filter` under `riders/{rider}/`, with no wildcard above it?
fn inside_own_subtree(rider: &str, filter: &str) -> bool {
    filter
        .strip_prefix("riders/")
        .and_then(|rest| rest.strip_prefix(rider))
        .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
}

async fn handle(p: In, s: &mut Session, shared: &Shared, out: &mut BytesMut) -> Step {
    let v = s.version;
    match p {
        In::Publish { alias: true, .. } => {
            refused("topic_alias");
            Step::End(Some(Farewell::TopicAlias))
        }
        In::Publish {
            topic,
            qos,
            pkid,
            payload,
            ..
        } => {
            // The topic is read once: as text, then as a rider topic. On a
            // trusted network any text goes to the lanes, which count one
            // that names no rider as `bad_topic`.
            let text = std::str::from_utf8(&topic).ok();
            let parsed = text.and_then(topic::parse);
            let own = match &s.rider {
                None => text.is_some(),
                Some(me) => parsed.is_some_and(|(rider, _)| rider == me),
            };
            if !own {
                shared.stats.reject(tracker_domain::RejectReason::Forbidden);
                match qos {
                    1 => codec::write(v, Out::PubAck { pkid, denied: true }, out),
                    2 => {
                        s.awaiting_rel.insert(pkid);
                        codec::write(v, Out::PubRec { pkid, denied: true }, out);
                    }
                    _ => {}
                }
                return Step::Go;
            }
            let ack = match qos {
                0 => None,
                1 => Some(Out::PubAck {
                    pkid,
                    denied: false,
                }),
                _ => Some(Out::PubRec {
                    pkid,
                    denied: false,
                }),
            };
            if qos == 2 && s.awaiting_rel.contains(&pkid) {
                // A resend of a QoS 2 publish already taken: answer again, route once.
                codec::write(v, ack.expect("QoS 2 is answered"), out);
                return Step::Go;
            }
            let (done_tx, done) = oneshot::channel();
            let done_tx = ack.is_some().then_some(done_tx);
            let sent = match (parsed, text) {
                (Some((rider, kind)), _) => {
                    shared.lanes.send_for(rider, kind, payload, done_tx).await
                }
                (None, Some(text)) => shared.lanes.send(text, payload, done_tx).await,
                (None, None) => unreachable!("only text is ever `own`"),
            };
            if !sent {
                return Step::End(Some(Farewell::ShuttingDown));
            }
            if let Some(ack) = ack {
                let done = Box::pin(crate::lanes::routed_and_stored(done));
                s.pending.push_back(Pending { done, ack });
            }
            Step::Go
        }
        In::PubRel { pkid } => {
            s.awaiting_rel.remove(&pkid);
            codec::write(v, Out::PubComp { pkid }, out);
            Step::Go
        }
        In::Subscribe { pkid, filters } => {
            let granted = filters
                .iter()
                .map(|(f, q)| {
                    if may_subscribe(s.rider.as_deref(), f) {
                        Some((*q).min(1))
                    } else {
                        refused("forbidden_subscription");
                        None
                    }
                })
                .collect();
            codec::write(v, Out::SubAck { pkid, granted }, out);
            Step::Go
        }
        In::Unsubscribe { pkid, count } => {
            codec::write(v, Out::UnsubAck { pkid, count }, out);
            Step::Go
        }
        In::PingReq => {
            codec::write(v, Out::PingResp, out);
            Step::Go
        }
        In::Disconnect => Step::End(None),
        In::Connect { .. } => {
            refused("bad_packet");
            Step::End(Some(Farewell::ProtocolError))
        }
        In::Unexpected(what) => {
            tracing::debug!(rider = ?s.rider, what, "unexpected MQTT packet; closing");
            refused("bad_packet");
            Step::End(Some(Farewell::ProtocolError))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::inside_own_subtree;

    #[test]
    fn subscriptions_stay_inside_the_riders_own_subtree() {
        assert!(inside_own_subtree("r1", "riders/r1/#"));
        assert!(inside_own_subtree("r1", "riders/r1/cmd"));
        for bad in [
            "riders/r1",
            "riders/r1/",
            "riders/#",
            "riders/+/pos",
            "riders/r10/#",
            "#",
            "riders/r1x",
            "$SYS/#",
        ] {
            assert!(!inside_own_subtree("r1", bad), "{bad}");
        }
    }
}
