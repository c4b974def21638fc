//! Limits and the block list at every door: connect rate per client IP
//! (WebSocket, SSE, long-poll, MQTT), caps per process and per user, the
//! block list file re-read without a restart, the per-rider fix rate, the
//! header read timeout and header size, and the small bad inputs around them.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tracker_hub::Role;

/// The handshake status of a WebSocket from client address `ip` (named in
/// `X-Forwarded-For`, which the app trusts from 127.0.0.1), and its `Retry-After`.
async fn ws_from(app: &App, ip: &str, token: &str) -> (u16, Option<String>) {
    let mut req = format!("{}?token={token}", app.ws_url)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", ip.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => {
            // Kept open: these tests count open connections.
            std::mem::forget(ws);
            (101, None)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => (
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        ),
        Err(e) => panic!("unexpected handshake error {e}"),
    }
}

async fn poll_from(app: &App, ip: &str, token: &str, order: &str) -> u16 {
    app.http
        .get(format!(
            "{}/v1/orders/{order}/events?since=0&wait=0",
            app.base
        ))
        .bearer_auth(token)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A minimal MQTT 5 CONNECT; answers the CONNACK's reason code.
async fn mqtt5_connack(app: &App) -> u8 {
    let mut s = TcpStream::connect((app.mqtt.0.as_str(), app.mqtt.1))
        .await
        .unwrap();
    let connect = [
        0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b'a',
    ];
    s.write_all(&connect).await.unwrap();
    let mut ack = [0u8; 4];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut ack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack[0], 0x20, "a CONNACK: {ack:?}");
    ack[3]
}

#[tokio::test]
async fn the_connect_rate_is_per_address_across_every_door() {
    let app = spawn_app_with(&[
        ("TRACKER_CONNECT_RATE", "5/5"),
        ("TRACKER_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let admin = app.admin();
    let order = app.create_order("c1").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..4 {
        assert_eq!(ws_from(&app, "203.0.113.1", &admin).await.0, 101);
    }
    assert_eq!(poll_from(&app, "203.0.113.1", &admin, &order).await, 200);
    let (status, retry) = ws_from(&app, "203.0.113.1", &admin).await;
    assert_eq!(status, 429, "the sixth in a second");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(poll_from(&app, "203.0.113.1", &admin, &order).await, 429);
    let r = app
        .http
        .get(format!("{}/v1/orders/{order}/sse", app.base))
        .bearer_auth(&admin)
        .header("x-forwarded-for", "203.0.113.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(
        ws_from(&app, "203.0.113.2", &admin).await.0,
        101,
        "another address still connects"
    );
    // No token at all still costs the address a connection: refused by rate, not 401.
    assert_eq!(ws_from(&app, "203.0.113.1", "nope").await.0, 429);
    // The API's ordinary calls are not connections.
    let (status, _, _) = app.read_as(&format!("/v1/orders/{order}"), &admin).await;
    assert_eq!(status, 200);

    // MQTT from 127.0.0.1 (no header to believe there): five, then 0x97.
    for _ in 0..5 {
        assert_eq!(mqtt5_connack(&app).await, 0);
    }
    assert_eq!(mqtt5_connack(&app).await, 0x97);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("tracker_refused_total{reason=\"connect_rate\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_a_trusted_proxy_forwarded_for_is_ignored() {
    let app = spawn_app_with(&[("TRACKER_CONNECT_RATE", "3/3")]).await;
    let admin = app.admin();
    for i in 0..3 {
        assert_eq!(
            ws_from(&app, &format!("203.0.113.{i}"), &admin).await.0,
            101
        );
    }
    assert_eq!(
        ws_from(&app, "203.0.113.99", &admin).await.0,
        429,
        "all of them came from 127.0.0.1"
    );
}

#[tokio::test]
async fn users_and_the_process_are_capped() {
    let app = spawn_app_with(&[
        ("TRACKER_CONNECT_RATE", "off"),
        ("TRACKER_MAX_CONNECTIONS_PER_USER", "2"),
        ("TRACKER_MAX_CONNECTIONS", "4"),
    ])
    .await;
    let c1 = app.token("c1", Role::Customer);
    let mut first = app.ws(&c1).await;
    let _second = app.ws(&c1).await;
    let (status, retry) = ws_from(&app, "127.0.0.1", &c1).await;
    assert_eq!(status, 503, "a third for one user");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(
        ws_from(&app, "127.0.0.1", &app.token("c2", Role::Customer))
            .await
            .0,
        101
    );
    let admin = app.admin();
    assert_eq!(
        ws_from(&app, "127.0.0.1", &admin).await.0,
        101,
        "admins are not capped"
    );
    assert_eq!(
        ws_from(&app, "127.0.0.1", &admin).await.0,
        503,
        "the process holds four"
    );

    // A closed connection frees its places.
    first.stream.close(None).await.unwrap();
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match ws_from(&app, "127.0.0.1", &c1).await.0 {
            101 => break,
            503 => assert!(tokio::time::Instant::now() < deadline, "never freed"),
            s => panic!("{s}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_blocked_address_is_refused_until_its_line_goes() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("blocked.txt");
    std::fs::write(
        &list,
        "# bad actors\n203.0.113.9\nthis is not an address\n198.51.100.0/24 # a whole net\n",
    )
    .unwrap();
    let app = spawn_app_with(&[
        ("TRACKER_IP_BLOCKLIST", list.to_str().unwrap()),
        ("TRACKER_TRUSTED_PROXIES", "127.0.0.0/8"),
    ])
    .await;
    let admin = app.admin();
    let get_from = |ip: &'static str| {
        let req = app
            .http
            .get(format!("{}/v1/orders/nope", app.base))
            .bearer_auth(&admin)
            .header("x-forwarded-for", ip);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let (status, body) = get_from("203.0.113.9").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("blocked")),
        "{body}"
    );
    assert_eq!(
        get_from("198.51.100.77").await.0,
        403,
        "the CIDR, past the bad line"
    );
    assert_eq!(get_from("192.0.2.1").await.0, 404, "others get through");
    assert_eq!(ws_from(&app, "203.0.113.9", &admin).await.0, 403);

    std::fs::write(&list, "198.51.100.0/24\n").unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while get_from("203.0.113.9").await.0 == 403 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the file was never re-read"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ws_from(&app, "203.0.113.9", &admin).await.0, 101);
    assert_eq!(get_from("198.51.100.77").await.0, 403);
}

#[tokio::test]
async fn a_rider_over_the_fix_rate_is_told_to_slow_down() {
    let app = spawn_app_with(&[("TRACKER_FIX_RATE", "1/3")]).await;
    let rider = app.token("r-fast", Role::Rider);
    let mut codes = Vec::new();
    for i in 0..5 {
        let fix = json!({"lat": 23.1, "lon": 113.2, "ts": now_ms() - 10 + i});
        let r = app
            .http
            .post(format!("{}/v1/riders/me/pos", app.base))
            .bearer_auth(&rider)
            .json(&fix)
            .send()
            .await
            .unwrap();
        codes.push((r.status().as_u16(), r.headers().contains_key("retry-after")));
    }
    assert_eq!(&codes[..3], &[(200, false); 3], "{codes:?}");
    assert_eq!(codes[3], (429, true), "{codes:?}");
    // Another rider is not held back.
    let other = app.token("r-slow", Role::Rider);
    let r = app
        .http
        .post(format!("{}/v1/riders/me/pos", app.base))
        .bearer_auth(&other)
        .json(&json!({"lat": 23.1, "lon": 113.2, "ts": now_ms()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn half_sent_requests_are_dropped_and_huge_heads_refused() {
    let app = spawn_app_with(&[("TRACKER_HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // The slow way of holding an upgrade open: headers that never end.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(PATIENCE, slow.read_to_end(&mut buf))
        .await
        .expect("the server hangs up")
        .ok();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let mut big = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\n\r\n",
        "j".repeat(64 * 1024)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(PATIENCE, big.read(&mut answer))
        .await
        .unwrap()
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
}

#[tokio::test]
async fn small_bad_inputs_get_clear_answers() {
    let app = spawn_app().await;
    let o = app.create_order("c1").await;
    let id = o["id"].as_str().unwrap().to_owned();
    let mut v = o["version"].as_i64().unwrap();
    for to in ["paid", "preparing", "ready"] {
        v = app.transition(&id, to, v).await;
    }
    for rider in ["r/+/#", "", &"r".repeat(10_000), "r 1"] {
        let (status, e) = app
            .post(
                &format!("/v1/orders/{id}/assign"),
                &json!({"rider_id": rider, "version": v}),
            )
            .await;
        assert_eq!(status, 400, "{rider:.20}: {e}");
        assert!(e["message"].as_str().unwrap().contains("rider_id"), "{e}");
    }
    let (status, _, e) = app.read_as("/v1/orders?limit=0", &app.admin()).await;
    assert_eq!(status, 400, "{e}");
    let (status, _, e) = app.read_as("/v1/orders?limit=1", &app.admin()).await;
    assert_eq!(
        (status, e["orders"].as_array().map(Vec::len)),
        (200, Some(1))
    );

    // An empty order id on the WebSocket is a counted, rejected frame.
    let rejected = || async {
        let m = app.metrics_text().await;
        m.lines()
            .find(|l| l.starts_with("tracker_ws_frames_rejected_total{reason=\"bad_request\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = rejected().await;
    let mut ws = app.ws(&app.admin()).await;
    ws.sub("", None).await;
    assert_eq!(ws.next().await["code"], "bad_request");
    assert!(rejected().await > before);
}
