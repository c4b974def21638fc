//! Opens N MQTT 3.1.1 rider connections, each logged in as its own rider
//! (username = rider id, password = a rider token minted with SECRET, or no
//! login with SECRET `-`), keep-alive 60 s, and then holds them idle; used by
//! `bench/idle-mqtt-rss.sh` to measure a broker's memory per idle rider.
//!
//! usage: idle_riders HOST:PORT SECRET N HOLD_SECS
//!
//! The CONNECT is written by hand (a few dozen bytes) and the client keeps no
//! MQTT library state, so 10k connections fit beside the broker.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An MQTT string: a two-byte length and the bytes.
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A 3.1.1 CONNECT of `client`, keep-alive 60 s, with a login when given.
fn connect(client: &str, login: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, "MQTT");
    body.push(4);
    body.push(if login.is_some() { 0xC2 } else { 0x02 });
    body.extend_from_slice(&60u16.to_be_bytes());
    put_str(&mut body, client);
    if let Some((user, password)) = login {
        put_str(&mut body, user);
        put_str(&mut body, password);
    }
    let mut out = vec![0x10];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend(body);
    out
}

fn rider_token(secret: &str, rider: &str) -> String {
    let exp = jsonwebtoken::get_current_timestamp() + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": rider, "role": "rider", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, secret, n, hold] = args.as_slice() else {
        anyhow::bail!("usage: idle_riders HOST:PORT SECRET N HOLD_SECS");
    };
    let (n, hold): (usize, u64) = (n.parse()?, hold.parse()?);
    let run = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let rider = format!("idle-{run}-{i}");
        let token = (secret != "-").then(|| rider_token(secret, &rider));
        let login = token.as_deref().map(|t| (rider.as_str(), t));
        let mut s = TcpStream::connect(addr.as_str()).await?;
        s.write_all(&connect(&rider, login)).await?;
        let mut ack = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut ack)).await??;
        if ack[0] != 0x20 || ack[3] != 0 {
            anyhow::bail!("rider {i}: CONNACK {ack:?}");
        }
        held.push(s);
    }
    println!("ready {n}");
    tokio::time::sleep(Duration::from_secs(hold)).await;
    drop(held);
    Ok(())
}
