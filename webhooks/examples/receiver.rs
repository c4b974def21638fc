//! A webhook receiver for load runs (`bench/webhooks.sh`): checks each
//! call's signature, answers 204, and counts; `GET /count` answers
//! `<accepted> <bad signatures>`.
//!
//! usage: [RECEIVER_PRINT=1] receiver ADDR SECRET (with RECEIVER_PRINT, each body on a line of stdout)

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counts {
    secret: String,
    ok: AtomicU64,
    bad: AtomicU64,
}

async fn take(State(c): State<Arc<Counts>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers
        .get(tracker_webhooks::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if tracker_webhooks::verify(c.secret.as_bytes(), &body, sig) {
        c.ok.fetch_add(1, Ordering::Relaxed);
        if std::env::var_os("RECEIVER_PRINT").is_some() {
            println!("{}", String::from_utf8_lossy(&body));
        }
        StatusCode::NO_CONTENT
    } else {
        c.bad.fetch_add(1, Ordering::Relaxed);
        StatusCode::UNAUTHORIZED
    }
}

async fn count(State(c): State<Arc<Counts>>) -> String {
    format!(
        "{} {}\n",
        c.ok.load(Ordering::Relaxed),
        c.bad.load(Ordering::Relaxed)
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(secret)) = (args.next(), args.next()) else {
        eprintln!("usage: receiver ADDR SECRET");
        std::process::exit(2);
    };
    let counts = Arc::new(Counts {
        secret,
        ok: AtomicU64::new(0),
        bad: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/hook", post(take))
        .route("/count", get(count))
        .with_state(counts);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("binding {addr}: {e}"));
    axum::serve(listener, app).await.expect("serving");
}
