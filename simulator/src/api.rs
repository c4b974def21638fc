//! The orders API as the simulator uses it (an upstream system with an admin
//! token), and tokens minted with the hub's HS256 secret.

use crate::route::LatLon;
use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Signs a token for `sub` with `role`, valid for a day.
pub fn mint(secret: &str, sub: &str, role: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 24 * 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "role": role, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// An orders-API client.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    admin: String,
}

/// An order as the simulator tracks it.
#[derive(Debug, Clone)]
pub struct SimOrder {
    /// Its id.
    pub id: String,
    /// Its status version after the last change the simulator made: the
    /// simulator changes only the status, so it does not collide with the
    /// order's other edits (the trip watcher's arrivals and alerts).
    pub status_version: i64,
}

impl Api {
    /// A client of the hub at `base` (`http://host:port`) acting as `admin`.
    pub fn new(base: &str, admin: String) -> Self {
        Api {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("a plain HTTP client builds"),
            base: base.trim_end_matches('/').to_owned(),
            admin,
        }
    }

    /// POSTs `body`; a request the hub shed or rate-limited (503 `overloaded`,
    /// 429: refused before anything ran) is sent again after its
    /// `Retry-After`, as a well-behaved client does, up to five times.
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let mut tries = 0;
        loop {
            let r = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.admin)
                .json(&body)
                .send()
                .await
                .with_context(|| format!("POST {path}"))?;
            let status = r.status();
            let retry_after = r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let v: Value = r.json().await.unwrap_or(Value::Null);
            let refused_before_running = status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || (status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                    && v["error"] == "overloaded");
            if refused_before_running && tries < 5 {
                tries += 1;
                let wait = retry_after.unwrap_or(1).clamp(1, 10);
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                continue;
            }
            if !status.is_success() {
                bail!("POST {path}: {status} {v}");
            }
            return Ok(v);
        }
    }

    /// Creates an order of `customer` from `pickup` to `dropoff`, with the
    /// planned `route` between them (the streets the rider will take).
    pub async fn create(
        &self,
        key: &str,
        customer: &str,
        route: &[LatLon],
        promised_at: i64,
    ) -> anyhow::Result<SimOrder> {
        let (pickup, dropoff) = (route[0], route[route.len() - 1]);
        let points: Vec<Value> = route
            .iter()
            .map(|p| json!({"lat": p.lat, "lon": p.lon}))
            .collect();
        let v = self
            .post(
                "/v1/orders",
                json!({
                    "biz_order_no": key, "biz_type": "sim", "customer_id": customer,
                    "pickup": {"lat": pickup.lat, "lon": pickup.lon},
                    "dropoff": {"lat": dropoff.lat, "lon": dropoff.lon},
                    "promised_at": promised_at,
                    "route": points,
                }),
            )
            .await?;
        order_of(&v)
    }

    /// One status transition.
    pub async fn status(&self, o: &mut SimOrder, to: &str) -> anyhow::Result<()> {
        let v = self
            .post(
                &format!("/v1/orders/{}/status", o.id),
                json!({"to": to, "status_version": o.status_version}),
            )
            .await?;
        *o = order_of(&v)?;
        Ok(())
    }

    /// Gives the order to `rider`.
    pub async fn assign(&self, o: &mut SimOrder, rider: &str, name: &str) -> anyhow::Result<()> {
        let v = self
            .post(
                &format!("/v1/orders/{}/assign", o.id),
                json!({"rider_id": rider, "rider_name": name, "status_version": o.status_version}),
            )
            .await?;
        *o = order_of(&v)?;
        Ok(())
    }
}

fn order_of(v: &Value) -> anyhow::Result<SimOrder> {
    Ok(SimOrder {
        id: v["id"].as_str().context("an order id")?.to_owned(),
        status_version: v["status_version"]
            .as_i64()
            .context("an order status version")?,
    })
}
