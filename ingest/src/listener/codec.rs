//! MQTT 3.1.1 and 5 on one port, over the rumqtt project's packet codecs
//! (`rumqttc::mqttbytes::v4`, `rumqttc::v5::mqttbytes::v5`): the version is
//! read from the CONNECT's protocol level, and from then on every packet is
//! turned into the few things a rider's connection does ([`In`]) and every
//! answer written in that version's words ([`Out`]).

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::mqttbytes::{Error as Error4, QoS as QoS4};
use rumqttc::v5::mqttbytes::v5;
use rumqttc::v5::mqttbytes::{Error as Error5, QoS as QoS5};

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5 (protocol level 5).
    V5,
}

/// Why the bytes before a CONNECT were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opening {
    /// The first packet is not a CONNECT, or not MQTT at all.
    NotConnect,
    /// A CONNECT of a protocol level we do not speak (MQTT 3.1 is level 3).
    BadLevel,
    /// A CONNECT larger than the limit.
    TooLarge,
}

/// The remaining length of the packet at the front of `buf` (1 to 4 bytes
/// of 7 bits after the first byte), and where the rest starts; `Ok(None)`
/// when more bytes are needed, `Err` for a fifth length byte.
fn remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, ()> {
    let mut len = 0usize;
    let mut at = 1;
    loop {
        let Some(&b) = buf.get(at) else {
            return Ok(None);
        };
        len |= ((b & 0x7f) as usize) << (7 * (at - 1));
        at += 1;
        if b & 0x80 == 0 {
            return Ok(Some((len, at)));
        }
        if at > 4 {
            return Err(());
        }
    }
}

/// Reads the protocol level of the CONNECT at the front of `buf` without
/// consuming it; `Ok(None)` when more bytes are needed.
pub(super) fn peek_version(buf: &[u8], max_connect: usize) -> Result<Option<Version>, Opening> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != 0x10 {
        return Err(Opening::NotConnect);
    }
    let (len, at) = match remaining_length(buf) {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(None),
        Err(()) => return Err(Opening::NotConnect),
    };
    if len > max_connect {
        return Err(Opening::TooLarge);
    }
    // Protocol name (a two-byte length and "MQTT" or the 3.1 "MQIsdp"), then the level.
    let Some(name_len) = buf.get(at..at + 2) else {
        return Ok(None);
    };
    let name_len = u16::from_be_bytes([name_len[0], name_len[1]]) as usize;
    let Some(name) = buf.get(at + 2..at + 2 + name_len) else {
        return Ok(None);
    };
    let Some(&level) = buf.get(at + 2 + name_len) else {
        return Ok(None);
    };
    match (name, level) {
        (b"MQTT", 4) => Ok(Some(Version::V4)),
        (b"MQTT", 5) => Ok(Some(Version::V5)),
        (b"MQTT" | b"MQIsdp", _) => Err(Opening::BadLevel),
        _ => Err(Opening::NotConnect),
    }
}

/// A CONNECT's password (a rider's token): never printed, not even at debug.
pub(super) struct Password(pub(super) String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What a rider's client sent, in either version.
#[derive(Debug)]
pub(super) enum In {
    /// The opening packet.
    Connect {
        /// Username and password, when given.
        login: Option<(String, Password)>,
        /// Seconds; 0 is none.
        keep_alive: u16,
    },
    /// A publish.
    Publish {
        /// Its topic (empty when a v5 client used a topic alias).
        topic: Bytes,
        /// 0, 1 or 2.
        qos: u8,
        /// Packet id (0 for QoS 0).
        pkid: u16,
        /// The payload.
        payload: Bytes,
        /// A v5 topic alias was used (we allow none).
        alias: bool,
    },
    /// Second step of a QoS 2 publish.
    PubRel {
        /// Packet id.
        pkid: u16,
    },
    /// A subscribe: filters and the QoS asked for each.
    Subscribe {
        /// Packet id.
        pkid: u16,
        /// (filter, qos).
        filters: Vec<(String, u8)>,
    },
    /// An unsubscribe of `count` filters.
    Unsubscribe {
        /// Packet id.
        pkid: u16,
        /// How many filters.
        count: usize,
    },
    /// Keep-alive.
    PingReq,
    /// The client leaves.
    Disconnect,
    /// Anything a client has no business sending to us here.
    Unexpected(&'static str),
}

/// Why a packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bad {
    /// Above the size limit.
    TooLarge,
    /// Not a well-formed packet.
    Malformed,
}

/// How a CONNECT is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnAnswer {
    /// Welcome.
    Accepted,
    /// No or bad credentials.
    BadCredentials,
    /// Good credentials, but not for this.
    NotAuthorized,
    /// Too many new connections from the client's address (v5 0x97).
    RateLimited,
    /// The process is at its connection cap (v5 0x89).
    Busy,
}

/// Why the server ends a connection (said to v5 clients in a DISCONNECT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Farewell {
    /// The client broke the protocol.
    ProtocolError,
    /// A packet above the limit.
    TooLarge,
    /// The token ended.
    NotAuthorized,
    /// Nothing heard within 1.5 × keep-alive.
    KeepAlive,
    /// A topic alias, which we do not offer.
    TopicAlias,
    /// The process is stopping.
    ShuttingDown,
}

/// What the server sends.
#[derive(Debug)]
pub(super) enum Out {
    /// The answer to CONNECT; v5 also learns the largest packet we take.
    ConnAck(ConnAnswer, u32),
    /// A QoS 1 publish is in the log (or was refused, `denied`).
    PubAck {
        /// Packet id.
        pkid: u16,
        /// Refused (v5 says so; v4 cannot).
        denied: bool,
    },
    /// First answer to a QoS 2 publish.
    PubRec {
        /// Packet id.
        pkid: u16,
        /// Refused (v5 says so; v4 cannot).
        denied: bool,
    },
    /// Last answer to a QoS 2 publish.
    PubComp {
        /// Packet id.
        pkid: u16,
    },
    /// The answer to a subscribe: the QoS granted per filter, `None` refused.
    SubAck {
        /// Packet id.
        pkid: u16,
        /// Per filter.
        granted: Vec<Option<u8>>,
    },
    /// The answer to an unsubscribe.
    UnsubAck {
        /// Packet id.
        pkid: u16,
        /// How many filters it named.
        count: usize,
    },
    /// The answer to a ping.
    PingResp,
    /// Goodbye (v5 only; a v4 server just closes).
    Disconnect(Farewell),
}

fn qos4(q: QoS4) -> u8 {
    q as u8
}

fn qos5(q: QoS5) -> u8 {
    q as u8
}

fn qos4_of(q: u8) -> QoS4 {
    match q {
        0 => QoS4::AtMostOnce,
        _ => QoS4::AtLeastOnce,
    }
}

fn qos5_of(q: u8) -> QoS5 {
    match q {
        0 => QoS5::AtMostOnce,
        _ => QoS5::AtLeastOnce,
    }
}

/// The next packet in `buf` (consumed), `Ok(None)` when more bytes are needed.
pub(super) fn read(v: Version, buf: &mut BytesMut, max: usize) -> Result<Option<In>, Bad> {
    match v {
        Version::V4 => match v4::Packet::read(buf, max) {
            Ok(p) => Ok(Some(from_v4(p))),
            Err(Error4::InsufficientBytes(_)) => Ok(None),
            Err(Error4::PayloadSizeLimitExceeded(_)) => Err(Bad::TooLarge),
            Err(_) => Err(Bad::Malformed),
        },
        Version::V5 if buf.first() == Some(&0xE0) => v5_disconnect(buf),
        Version::V5 => match v5::Packet::read(buf, Some(max as u32)) {
            Ok(p) => Ok(Some(from_v5(p))),
            Err(Error5::InsufficientBytes(_)) => Ok(None),
            Err(Error5::PayloadSizeLimitExceeded { .. }) => Err(Bad::TooLarge),
            Err(_) => Err(Bad::Malformed),
        },
    }
}

/// A v5 DISCONNECT, read here: rumqttc 0.25 refuses one whose remaining
/// length is 1 (a reason code and no properties), which MQTT 5 allows and
/// clients such as mosquitto_pub send.
fn v5_disconnect(buf: &mut BytesMut) -> Result<Option<In>, Bad> {
    let Some((len, at)) = remaining_length(buf).map_err(|()| Bad::Malformed)? else {
        return Ok(None);
    };
    if len > 1024 {
        return Err(Bad::TooLarge);
    }
    if buf.len() < at + len {
        return Ok(None);
    }
    let _ = buf.split_to(at + len);
    Ok(Some(In::Disconnect))
}

fn from_v4(p: v4::Packet) -> In {
    match p {
        v4::Packet::Connect(c) => In::Connect {
            login: c.login.map(|l| (l.username, Password(l.password))),
            keep_alive: c.keep_alive,
        },
        v4::Packet::Publish(p) => In::Publish {
            topic: p.topic.into_bytes().into(),
            qos: qos4(p.qos),
            pkid: p.pkid,
            payload: p.payload,
            alias: false,
        },
        v4::Packet::PubRel(r) => In::PubRel { pkid: r.pkid },
        v4::Packet::Subscribe(s) => In::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, qos4(f.qos)))
                .collect(),
        },
        v4::Packet::Unsubscribe(u) => In::Unsubscribe {
            pkid: u.pkid,
            count: u.topics.len(),
        },
        v4::Packet::PingReq => In::PingReq,
        v4::Packet::Disconnect => In::Disconnect,
        _ => In::Unexpected("a packet only servers send"),
    }
}

fn from_v5(p: v5::Packet) -> In {
    match p {
        v5::Packet::Connect(c, _will, login) => In::Connect {
            login: login.map(|l| (l.username, Password(l.password))),
            keep_alive: c.keep_alive,
        },
        v5::Packet::Publish(p) => In::Publish {
            alias: p.topic.is_empty()
                || p.properties
                    .as_ref()
                    .is_some_and(|pr| pr.topic_alias.is_some()),
            topic: p.topic,
            qos: qos5(p.qos),
            pkid: p.pkid,
            payload: p.payload,
        },
        v5::Packet::PubRel(r) => In::PubRel { pkid: r.pkid },
        v5::Packet::Subscribe(s) => In::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, qos5(f.qos)))
                .collect(),
        },
        v5::Packet::Unsubscribe(u) => In::Unsubscribe {
            pkid: u.pkid,
            count: u.filters.len(),
        },
        v5::Packet::PingReq(_) => In::PingReq,
        v5::Packet::Disconnect(_) => In::Disconnect,
        v5::Packet::Auth(_) => In::Unexpected("extended authentication"),
        _ => In::Unexpected("a packet only servers send"),
    }
}

/// Appends `out`, in version `v`, to `buf`. A v4 connection has no
/// DISCONNECT from the server: nothing is written for it.
pub(super) fn write(v: Version, out: Out, buf: &mut BytesMut) {
    let r = match v {
        Version::V4 => write_v4(out, buf),
        Version::V5 => write_v5(out, buf),
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "an MQTT answer could not be encoded");
    }
}

fn write_v4(out: Out, buf: &mut BytesMut) -> Result<usize, String> {
    let e = |e: Error4| e.to_string();
    match out {
        Out::ConnAck(answer, _) => {
            let code = match answer {
                ConnAnswer::Accepted => v4::ConnectReturnCode::Success,
                ConnAnswer::BadCredentials => v4::ConnectReturnCode::BadUserNamePassword,
                ConnAnswer::NotAuthorized => v4::ConnectReturnCode::NotAuthorized,
                ConnAnswer::RateLimited | ConnAnswer::Busy => {
                    v4::ConnectReturnCode::ServiceUnavailable
                }
            };
            v4::ConnAck::new(code, false).write(buf).map_err(e)
        }
        Out::PubAck { pkid, .. } => v4::PubAck::new(pkid).write(buf).map_err(e),
        Out::PubRec { pkid, .. } => v4::PubRec::new(pkid).write(buf).map_err(e),
        Out::PubComp { pkid } => v4::PubComp::new(pkid).write(buf).map_err(e),
        Out::SubAck { pkid, granted } => {
            let codes = granted
                .into_iter()
                .map(|g| match g {
                    Some(q) => v4::SubscribeReasonCode::Success(qos4_of(q)),
                    None => v4::SubscribeReasonCode::Failure,
                })
                .collect();
            v4::SubAck::new(pkid, codes).write(buf).map_err(e)
        }
        Out::UnsubAck { pkid, .. } => v4::UnsubAck::new(pkid).write(buf).map_err(e),
        Out::PingResp => v4::PingResp.write(buf).map_err(e),
        Out::Disconnect(_) => Ok(0),
    }
}

fn write_v5(out: Out, buf: &mut BytesMut) -> Result<usize, String> {
    let e = |e: Error5| e.to_string();
    match out {
        Out::ConnAck(answer, max_packet) => {
            let code = match answer {
                ConnAnswer::Accepted => v5::ConnectReturnCode::Success,
                ConnAnswer::BadCredentials => v5::ConnectReturnCode::BadUserNamePassword,
                ConnAnswer::NotAuthorized => v5::ConnectReturnCode::NotAuthorized,
                ConnAnswer::RateLimited => v5::ConnectReturnCode::QuotaExceeded,
                ConnAnswer::Busy => v5::ConnectReturnCode::ServerBusy,
            };
            let properties = (answer == ConnAnswer::Accepted).then(|| v5::ConnAckProperties {
                max_packet_size: Some(max_packet),
                retain_available: Some(0),
                wildcard_subscription_available: Some(0),
                shared_subscription_available: Some(0),
                ..connack_properties()
            });
            v5::ConnAck {
                session_present: false,
                code,
                properties,
            }
            .write(buf)
            .map_err(e)
        }
        Out::PubAck { pkid, denied } => {
            let mut ack = v5::PubAck::new(pkid, None);
            if denied {
                ack.reason = v5::PubAckReason::NotAuthorized;
            }
            ack.write(buf).map_err(e)
        }
        Out::PubRec { pkid, denied } => {
            let mut rec = v5::PubRec::new(pkid, None);
            if denied {
                rec.reason = v5::PubRecReason::NotAuthorized;
            }
            rec.write(buf).map_err(e)
        }
        Out::PubComp { pkid } => v5::PubComp::new(pkid, None).write(buf).map_err(e),
        Out::SubAck { pkid, granted } => v5::SubAck {
            pkid,
            return_codes: granted
                .into_iter()
                .map(|g| match g {
                    Some(q) => v5::SubscribeReasonCode::Success(qos5_of(q)),
                    // 0x80, as for 3.1.1 (`docs/protocol.md`).
                    None => v5::SubscribeReasonCode::Unspecified,
                })
                .collect(),
            properties: None,
        }
        .write(buf)
        .map_err(e),
        Out::UnsubAck { pkid, count } => v5::UnsubAck {
            pkid,
            reasons: vec![v5::UnsubAckReason::NoSubscriptionExisted; count],
            properties: None,
        }
        .write(buf)
        .map_err(e),
        Out::PingResp => v5::PingResp::write(buf).map_err(e),
        Out::Disconnect(why) => {
            let reason = match why {
                Farewell::ProtocolError => v5::DisconnectReasonCode::ProtocolError,
                Farewell::TooLarge => v5::DisconnectReasonCode::PacketTooLarge,
                Farewell::NotAuthorized => v5::DisconnectReasonCode::NotAuthorized,
                Farewell::KeepAlive => v5::DisconnectReasonCode::KeepAliveTimeout,
                Farewell::TopicAlias => v5::DisconnectReasonCode::TopicAliasInvalid,
                Farewell::ShuttingDown => v5::DisconnectReasonCode::ServerShuttingDown,
            };
            // Written by hand: rumqttc 0.25's `Disconnect::write` without
            // properties declares one byte and writes two (the reason and an
            // empty property length), which clients then reject. Here the
            // remaining length says two: the reason and no properties.
            buf.extend_from_slice(&[0xE0, 2, reason as u8, 0]);
            Ok(4)
        }
    }
}

/// Every CONNACK property unset.
fn connack_properties() -> v5::ConnAckProperties {
    v5::ConnAckProperties {
        session_expiry_interval: None,
        receive_max: None,
        max_qos: None,
        retain_available: None,
        max_packet_size: None,
        assigned_client_identifier: None,
        topic_alias_max: None,
        reason_string: None,
        user_properties: Vec::new(),
        wildcard_subscription_available: None,
        subscription_identifiers_available: None,
        shared_subscription_available: None,
        server_keep_alive: None,
        response_information: None,
        server_reference: None,
        authentication_method: None,
        authentication_data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_the_connect_and_nothing_else_opens() {
        let mut v4c = BytesMut::new();
        v4::Connect::new("c1").write(&mut v4c).unwrap();
        assert_eq!(peek_version(&v4c, 8192), Ok(Some(Version::V4)));
        assert_eq!(peek_version(&v4c[..5], 8192), Ok(None), "needs more bytes");
        let mut level5 = v4c.to_vec();
        level5[8] = 5; // the level byte after 0x10, len, 0x00 0x04 "MQTT"
        assert_eq!(peek_version(&level5, 8192), Ok(Some(Version::V5)));
        level5[8] = 3;
        assert_eq!(peek_version(&level5, 8192), Err(Opening::BadLevel));
        assert_eq!(
            peek_version(b"GET / HTTP/1.1\r\n", 8192),
            Err(Opening::NotConnect)
        );
        assert_eq!(
            peek_version(&[0x30, 2, 0, 0], 8192),
            Err(Opening::NotConnect),
            "a PUBLISH first"
        );
        assert_eq!(
            peek_version(&[0x10, 0xff, 0xff, 0x7f], 8192),
            Err(Opening::TooLarge)
        );
        assert_eq!(
            peek_version(&[0x10, 0xff, 0xff, 0xff, 0xff], 8192),
            Err(Opening::NotConnect)
        );
    }

    #[test]
    fn every_v5_disconnect_form_reads_as_disconnect() {
        for bytes in [&[0xE0, 0][..], &[0xE0, 1, 0x04], &[0xE0, 2, 0x00, 0]] {
            let mut buf = BytesMut::from(bytes);
            let got = read(Version::V5, &mut buf, 1024);
            assert!(
                matches!(got, Ok(Some(In::Disconnect))),
                "{bytes:?}: {got:?}"
            );
            assert!(buf.is_empty());
        }
        let mut part = BytesMut::from(&[0xE0, 2, 0x00][..]);
        assert!(matches!(read(Version::V5, &mut part, 1024), Ok(None)));
    }
}
