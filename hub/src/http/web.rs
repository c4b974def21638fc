//! The pages people use, served from `web/`: the customer's live map
//! (`/track/{order}`), the operator view (`/ops`), trip replay
//! (`/replay/{order}`) and a start page (`/`) that takes a token.
//!
//! Pages are static files; everything they show comes from the same API and
//! watcher protocol as any other client, with the caller's token, so views by
//! role are enforced by the hub and not by the page. Leaflet comes from npm
//! (`web/node_modules/leaflet/dist`, installed by `npm ci` in `web/`).

use axum::Json;
use axum::Router;
use axum::routing::get;
use std::path::PathBuf;
use tower_http::services::{ServeDir, ServeFile};

/// OpenStreetMap's standard tiles, the default base map.
pub const OSM_TILES: &str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";

/// Where the pages live and which base map they draw.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// The `web/` folder (pages in `pages/`, scripts and styles in `assets/`).
    pub dir: PathBuf,
    /// Tile URL template (`{z}/{x}/{y}`); `None` draws on a plain background.
    pub tile_url: Option<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            dir: PathBuf::from("web"),
            tile_url: Some(OSM_TILES.to_owned()),
        }
    }
}

/// The pages' routes, the static files under them, and `GET /v1/config`
/// (the base map the pages should draw).
pub fn router(cfg: &WebConfig) -> Router {
    let pages = cfg.dir.join("pages");
    if !pages.join("track.html").is_file() {
        tracing::warn!(dir = %cfg.dir.display(), "no pages in TRACKER_WEB_DIR; the web pages answer 404");
    } else if !cfg
        .dir
        .join("node_modules/leaflet/dist/leaflet.js")
        .is_file()
    {
        tracing::warn!(
            dir = %cfg.dir.display(),
            "Leaflet is not installed: run `npm ci` in the web folder (scripts/run does)"
        );
    }
    let page = |name: &str| ServeFile::new(pages.join(name));
    let client = serde_json::json!({
        "tile_url": cfg.tile_url,
        "attribution": match &cfg.tile_url {
            Some(url) if url == OSM_TILES => "© OpenStreetMap contributors",
            _ => "",
        },
    });
    Router::new()
        .route_service("/", page("index.html"))
        .route_service("/track/{order}", page("track.html"))
        .route_service("/ops", page("ops.html"))
        .route_service("/replay/{order}", page("replay.html"))
        .nest_service("/assets", ServeDir::new(cfg.dir.join("assets")))
        .nest_service(
            "/vendor/leaflet",
            ServeDir::new(cfg.dir.join("node_modules/leaflet/dist")),
        )
        .route("/v1/config", get(move || async move { Json(client) }))
}
