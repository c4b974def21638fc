//! Tokens and per-order access: 401 at the handshake, `forbidden` frames per order.

use crate::helpers::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;
use tracker_hub::Role;

const SECRET: &str = "test-secret-0123456789";

async fn handshake_status(app: &App, query: &str) -> u16 {
    match tokio_tungstenite::connect_async(format!("{}{query}", app.ws_url)).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("unexpected handshake error {e}"),
    }
}

fn token(secret: &str, sub: &str, role: &str, exp_from_now_s: i64) -> String {
    let claims = json!({"sub": sub, "role": role, "exp": now_ms() / 1000 + exp_from_now_s});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_tokens_are_refused_at_the_handshake_and_by_the_api() {
    let app = spawn_app().await;
    let good = token(SECRET, "c1", "customer", 3600);
    let expired = token(SECRET, "c1", "customer", -3600);
    let foreign = token("someone-elses-secret-key", "c1", "admin", 3600);
    // Forged: admin claims (signed elsewhere) carrying a valid customer token's signature.
    let (head_and_claims, _) = foreign.rsplit_once('.').unwrap();
    let (_, good_sig) = good.rsplit_once('.').unwrap();
    let forged = format!("{head_and_claims}.{good_sig}");
    let unknown_role = token(SECRET, "c1", "superuser", 3600);

    assert_eq!(handshake_status(&app, "").await, 401, "no token");
    for (bad, why) in [
        ("garbage", "malformed"),
        (expired.as_str(), "expired"),
        (forged.as_str(), "forged signature"),
        (foreign.as_str(), "signed with another key"),
        (unknown_role.as_str(), "unknown role"),
    ] {
        assert_eq!(
            handshake_status(&app, &format!("?token={bad}")).await,
            401,
            "{why}"
        );
        let r = app
            .http
            .get(format!("{}/v1/orders/1", app.base))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{why}");
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "unauthorized"
        );
    }
    assert_eq!(
        handshake_status(&app, &format!("?token={good}")).await,
        101,
        "a good token passes"
    );

    // The header form works too.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        app.ws_url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {good}").parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}

#[tokio::test]
async fn customers_watch_only_their_orders_and_riders_only_assigned_ones() {
    let app = spawn_app().await;
    let rider = unique("r");
    let (mine, _) = app.picked_up_order("alice", &rider).await;
    let (theirs, _) = app.assigned_order("bob", &unique("r")).await;

    let mut ws = app.watch(&app.token("alice", Role::Customer), &mine).await;
    ws.sub(&theirs, None).await;
    let err = ws.next().await;
    assert_eq!(
        (err["t"].as_str(), err["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{err}"
    );
    assert_eq!(err["order"], theirs.as_str());

    // The refused sub left the allowed one untouched.
    let phone = app.mqtt_client().await;
    publish_fix(&phone, &rider, 1.0, 2.0, now_ms()).await;
    let pos = ws.next().await;
    assert_eq!(
        (pos["t"].as_str(), pos["order"].as_str()),
        (Some("pos"), Some(mine.as_str()))
    );

    let mut stranger = app.ws(&app.token("not-the-rider", Role::Rider)).await;
    stranger.sub(&mine, None).await;
    assert_eq!(stranger.next().await["code"], "forbidden");
    // The assigned rider may watch it: `watch` asserts the snapshot.
    app.watch(&app.token(&rider, Role::Rider), &mine).await;

    // The orders API: customers read their own order and write nothing.
    let status_of = |r: reqwest::Response| r.status().as_u16();
    let alice = app.token("alice", Role::Customer);
    let get = |id: &str| {
        app.http
            .get(format!("{}/v1/orders/{id}", app.base))
            .bearer_auth(&alice)
            .send()
    };
    assert_eq!(status_of(get(&mine).await.unwrap()), 200);
    assert_eq!(status_of(get(&theirs).await.unwrap()), 403);
    let post = app
        .http
        .post(format!("{}/v1/orders", app.base))
        .bearer_auth(&alice)
        .json(&json!({}));
    assert_eq!(status_of(post.send().await.unwrap()), 403);
    let anonymous = app
        .http
        .post(format!("{}/v1/orders", app.base))
        .json(&json!({}));
    assert_eq!(status_of(anonymous.send().await.unwrap()), 401);
}

/// Runs `tracker run` with `env` on fresh ports until /healthz answers, then
/// `poke`s it; returns everything it printed on stdout and stderr.
async fn output_of_run(env: &[(&str, &str)], poke: impl AsyncFnOnce(&str)) -> String {
    use tokio::io::AsyncReadExt;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tracker"));
    cmd.arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TRACKER_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("TRACKER_MQTT_ADDR", "127.0.0.1:0")
        .env("TRACKER_DATA_DIR", dir.path())
        .env("TRACKER_TILE_URL", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for_port(port, "tracker run").await;
    poke(&base).await;
    // The banner comes once every service is up, a little after the port
    // opens: read until its last part (the tokens, or why there are none).
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    let banner = async {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        while stdout.read_line(&mut line).await.unwrap_or(0) > 0 {
            out.push_str(&line);
            if line.starts_with("tokens:") || line.starts_with("ready tokens") {
                break;
            }
            line.clear();
        }
    };
    let _ = tokio::time::timeout(PATIENCE, banner).await;
    child.start_kill().unwrap();
    let mut err = String::new();
    stdout.read_to_string(&mut out).await.unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    let _ = child.wait().await;
    out + &err
}

#[tokio::test]
async fn tokens_are_printed_only_for_a_made_up_secret_and_never_logged() {
    let secret = "a-configured-secret-0123456789";
    let printed = output_of_run(&[("TRACKER_JWT_SECRET", secret)], async |_| {}).await;
    assert!(!printed.contains("ready tokens"), "{printed}");
    assert!(!printed.contains("#token=ey"), "{printed}");
    assert!(!printed.contains(secret), "{printed}");

    let demo = output_of_run(&[], async |_| {}).await;
    assert!(
        demo.contains("ready tokens"),
        "a demo secret comes with tokens: {demo}"
    );

    // Debug logs of requests carrying a token in the query and the header.
    let token = token(secret, "c1", "customer", 600);
    let logged = output_of_run(
        &[("TRACKER_JWT_SECRET", secret), ("RUST_LOG", "debug")],
        async |base: &str| {
            let http = reqwest::Client::new();
            for (path, more) in [
                ("/v1/orders/nope", "?"),
                ("/v1/orders/nope/events?since=0&wait=0", "&"),
            ] {
                let in_query = format!("{base}{path}{more}token={token}");
                let _ = http.get(in_query).send().await;
                let _ = http
                    .get(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await;
            }
            let ws = base.replace("http://", "ws://");
            let _ = tokio_tungstenite::connect_async(format!("{ws}/v1/ws?token={token}")).await;
        },
    )
    .await;
    assert!(
        logged.contains("token=<redacted>"),
        "the requests were logged: {logged:.2000}"
    );
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !logged.contains(signature),
        "a token reached the logs: {logged}"
    );
}
