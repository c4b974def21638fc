//! What operators run the binary with: `/readyz` as a load balancer sees it
//! (backends frozen, a drain before the stop), the JSON error body on unknown
//! routes and methods, `tracker token` and `tracker --version`, and the pages
//! the binary carries.

use crate::helpers::{PATIENCE, spawn_app};
use crate::processes::{SECRET, node_env, private_redis_and_database, start};
use serde_json::Value;
use std::time::Duration;
use tracker_hub::{Auth, Role};

/// `GET path` on `base`: the status and the JSON body (`Null` when none).
async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls `/readyz` until it answers `want` (within PATIENCE); its body.
async fn ready_becomes(base: &str, want: u16) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = get(base, "/readyz").await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {status} {body}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readyz_is_false_while_redis_is_frozen_and_while_the_hub_drains() {
    let Some((redis, db)) = private_redis_and_database().await else {
        return;
    };
    let mut env = node_env(&redis.url, "tracker", &db.url, "1");
    env.push(("TRACKER_DRAIN_SECS", "3".into()));
    let hub = start("hub", &env).await;
    let body = ready_becomes(&hub.base, 200).await;
    assert_eq!(body["ready"], true);

    // A frozen Redis does not answer its PING: not ready, and it says why.
    redis.signal("-STOP");
    let body = ready_becomes(&hub.base, 503).await;
    assert_eq!(body["error"], "not_ready");
    assert!(
        body["message"].as_str().unwrap().contains("event log"),
        "{body}"
    );
    assert_eq!(get(&hub.base, "/healthz").await.0, 200, "still alive");
    redis.signal("-CONT");
    ready_becomes(&hub.base, 200).await;

    // SIGTERM: not ready at once, still serving through the drain, then gone.
    let pid = hub.child.id().unwrap().to_string();
    let stopped_at = tokio::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let body = ready_becomes(&hub.base, 503).await;
    assert!(
        body["message"].as_str().unwrap().contains("draining"),
        "{body}"
    );
    assert_eq!(
        get(&hub.base, "/healthz").await.0,
        200,
        "serves while draining"
    );
    let mut child = hub.child;
    tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits after the drain")
        .unwrap();
    assert!(
        stopped_at.elapsed() >= Duration::from_secs(2),
        "the drain of 3 s was kept: {:?}",
        stopped_at.elapsed()
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_the_json_error_body() {
    let app = spawn_app().await;
    let (status, body) = get(&app.base, "/v1/no-such-thing").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let r = reqwest::Client::new()
        .delete(format!("{}/v1/orders", app.base))
        .bearer_auth(app.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    assert!(body["message"].is_string());
    let (status, body) = get(&app.base, "/readyz").await;
    assert_eq!((status, body["ready"].as_bool()), (200, Some(true)));
}

/// Runs the tracker binary with `args` and only `env`; its exit status and output.
fn tracker(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracker"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn tracker_token_mints_what_the_hub_accepts_and_refuses_without_a_secret() {
    let (ok, out, err) = tracker(
        &[
            "token", "--role", "rider", "--sub", "r-7", "--ttl", "120", "--name", "Ana",
        ],
        &[("TRACKER_JWT_SECRET", SECRET)],
    );
    assert!(ok, "{err}");
    let claims = Auth::hs256(SECRET.as_bytes()).verify(out.trim()).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.role, claims.name.as_deref()),
        ("r-7", Role::Rider, Some("Ana"))
    );
    let (ok, out, err) = tracker(&["token", "--role", "admin", "--sub", "ops"], &[]);
    assert!(!ok && out.is_empty(), "no secret, no token: {out}");
    assert!(err.contains("TRACKER_JWT_SECRET"), "{err}");
}

#[test]
fn version_names_the_commit_and_run_help_lists_the_settings() {
    let (ok, out, _) = tracker(&["--version"], &[]);
    assert!(ok);
    assert!(
        out.starts_with(&format!("tracker {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let (ok, out, _) = tracker(&["run", "--help"], &[]);
    assert!(ok);
    for var in [
        "TRACKER_HTTP_ADDR",
        "TRACKER_REDIS_URL",
        "TRACKER_LOG_FORMAT",
        "TRACKER_DRAIN_SECS",
    ] {
        assert!(out.contains(var), "{var} missing from run --help");
    }
}

#[tokio::test]
async fn logs_are_json_lines_on_request_and_carry_no_colour_codes_off_a_terminal() {
    use tokio::io::AsyncBufReadExt;
    for (format, json) in [("json", true), ("text", false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tracker"))
            .arg("run")
            .env_clear()
            .env("RUST_LOG", "info")
            .env("TRACKER_LOG_FORMAT", format)
            .env("TRACKER_HTTP_ADDR", "127.0.0.1:0")
            .env("TRACKER_MQTT_ADDR", "127.0.0.1:0")
            .env("TRACKER_DATA_DIR", dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("hub listening") {
                    return line;
                }
            }
            panic!("the process ended without saying it listens");
        })
        .await
        .expect("the hub says it listens");
        assert!(!line.contains('\u{1b}'), "colour codes in {line:?}");
        assert_eq!(
            serde_json::from_str::<Value>(&line).is_ok(),
            json,
            "{format}: {line}"
        );
        child.kill().await.unwrap();
    }
}

#[tokio::test]
async fn the_pages_come_from_the_binary_whatever_the_working_directory() {
    // The tests run in cli/, where there is no web/ folder: what answers is
    // what the binary carries.
    assert!(!std::path::Path::new("web/pages").exists());
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    for (path, kind) in [
        ("/", "text/html"),
        ("/track/12345", "text/html"),
        ("/ops", "text/html"),
        ("/replay/12345", "text/html"),
        ("/assets/js/feed.js", "javascript"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let r = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let ct = r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.contains(kind), "{path}: {ct}");
        assert!(!r.bytes().await.unwrap().is_empty(), "{path}");
    }
    // Revalidation by ETag: the same file is not sent twice.
    let first = client
        .get(format!("{}/assets/js/feed.js", app.base))
        .send()
        .await
        .unwrap();
    let etag = first.headers()[reqwest::header::ETAG].clone();
    let again = client
        .get(format!("{}/assets/js/feed.js", app.base))
        .header(reqwest::header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    let (status, body) = get(&app.base, "/assets/js/no-such.js").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    // Leaflet is there whenever `npm ci` ran in web/ before the build (CI's does).
    if std::path::Path::new("../web/node_modules/leaflet/dist/leaflet.js").exists() {
        let (status, _) = get(&app.base, "/vendor/leaflet/leaflet.css").await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn tracker_ingest_is_ready_only_while_it_hears_the_broker() {
    let Some(mqtt) = crate::backends::backend_url("TRACKER_TEST_MQTT_URL") else {
        return;
    };
    let Some((redis, db)) = private_redis_and_database().await else {
        return;
    };
    let client_id = crate::helpers::unique("ready-ingest");
    let mut env = node_env(&redis.url, "tracker", &db.url, "1");
    env.push(("TRACKER_MQTT_URL", mqtt.clone()));
    env.push(("TRACKER_MQTT_SHARE_GROUP", "off".into()));
    env.push(("TRACKER_MQTT_CLIENT_ID", client_id.clone()));
    let ingest = start("ingest", &env).await;
    ready_becomes(&ingest.base, 200).await;
    ingest.terminate().await;
    let target = tracker_ingest::MqttTarget::parse(&mqtt).unwrap();
    crate::helpers::forget_mqtt_session(&target.host, target.port, &client_id).await;

    // A broker nobody listens on: up, and not ready, saying why.
    let mut env = node_env(&redis.url, "tracker", &db.url, "1");
    let port = crate::helpers::free_port();
    env.push(("TRACKER_MQTT_URL", format!("mqtt://127.0.0.1:{port}")));
    env.push(("TRACKER_MQTT_SHARE_GROUP", "off".into()));
    let ingest = start("ingest", &env).await;
    let body = ready_becomes(&ingest.base, 503).await;
    assert!(
        body["message"].as_str().unwrap().contains("broker"),
        "{body}"
    );
}
