//! The pages people use: the customer's live map (`/track/{order}`), the
//! operator view (`/ops`), trip replay (`/replay/{order}`) and a start page
//! (`/`) that takes a token.
//!
//! Pages are static files; everything they show comes from the same API and
//! watcher protocol as any other client, with the caller's token, so views by
//! role are enforced by the hub and not by the page. They are built into the
//! binary from `web/` (and Leaflet from npm, `web/node_modules/leaflet/dist`,
//! installed by `npm ci` in `web/` before the build), so `tracker` serves them
//! from any working directory; `TRACKER_WEB_DIR` serves a folder instead.

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;
use std::path::PathBuf;
use tower_http::services::{ServeDir, ServeFile};

/// `web/pages`, built in.
#[derive(RustEmbed)]
#[folder = "../web/pages"]
struct Pages;

/// `web/assets`, built in.
#[derive(RustEmbed)]
#[folder = "../web/assets"]
struct Assets;

/// Leaflet's `dist` folder, built in when `npm ci` ran in `web/` before the
/// build (else the pages say the map library is missing).
#[derive(RustEmbed)]
#[folder = "../web/node_modules/leaflet/dist"]
#[allow_missing = true]
struct Leaflet;

/// OpenStreetMap's standard tiles, the default base map.
pub const OSM_TILES: &str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";

/// Where the pages live and which base map they draw.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// A `web/` folder to serve instead of the pages built in (pages in
    /// `pages/`, scripts and styles in `assets/`, Leaflet in `node_modules/`).
    pub dir: Option<PathBuf>,
    /// Tile URL template (`{z}/{x}/{y}`); `None` draws on a plain background.
    pub tile_url: Option<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            dir: None,
            tile_url: Some(OSM_TILES.to_owned()),
        }
    }
}

/// The pages' routes, the static files under them, and `GET /v1/config`
/// (the base map the pages should draw).
pub fn router(cfg: &WebConfig) -> Router {
    let client = serde_json::json!({
        "tile_url": cfg.tile_url,
        "attribution": match &cfg.tile_url {
            Some(url) if url == OSM_TILES => "© OpenStreetMap contributors",
            _ => "",
        },
    });
    let files = match &cfg.dir {
        Some(dir) => from_folder(dir),
        None => built_in(),
    };
    files.route("/v1/config", get(move || async move { Json(client) }))
}

/// Each page's route and its file in `pages/`, served the same way built in
/// or from a folder.
const PAGES: [(&str, &str); 4] = [
    ("/", "index.html"),
    ("/track/{order}", "track.html"),
    ("/ops", "ops.html"),
    ("/replay/{order}", "replay.html"),
];

/// The pages as the binary carries them.
fn built_in() -> Router {
    if Leaflet::get("leaflet.js").is_none() {
        tracing::warn!(
            "this binary was built without Leaflet: run `npm ci` in web/ before building (scripts/run does); the maps cannot draw"
        );
    }
    PAGES
        .into_iter()
        .fold(Router::new(), |r, (route, file)| {
            r.route(
                route,
                get(move || async move { embedded::<Pages>(file, None) }),
            )
        })
        .route("/favicon.ico", get(favicon))
        .route(
            "/assets/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                embedded::<Assets>(&path, Some(&headers))
            }),
        )
        .route(
            "/vendor/leaflet/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                embedded::<Leaflet>(&path, Some(&headers))
            }),
        )
}

/// `path` of the files `E` carries, with its type and an ETag (its SHA-256),
/// 304 when `headers` already name it; 404 when it carries no such file.
fn embedded<E: RustEmbed>(path: &str, headers: Option<&HeaderMap>) -> Response {
    let Some(file) = E::get(path) else {
        return super::error::ApiError::not_found_named("no such file").into_response();
    };
    let hash = file.metadata.sha256_hash();
    let etag = format!(
        "\"{}\"",
        hash[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let fresh = headers
        .and_then(|h| h.get(header::IF_NONE_MATCH))
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        file.data.into_owned().into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every load: a new binary's pages are never stale.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The tab icon: a small map pin, so browsers' request for it is not a 404.
async fn favicon() -> Response {
    const PIN: &str = concat!(
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>",
        "<path d='M8 1a5 5 0 0 0-5 5c0 4 5 9 5 9s5-5 5-9a5 5 0 0 0-5-5z' fill='#2563eb'/>",
        "<circle cx='8' cy='6' r='2' fill='#fff'/></svg>"
    );
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        PIN,
    )
        .into_response()
}

/// The pages from a folder on disk (`TRACKER_WEB_DIR`).
fn from_folder(dir: &std::path::Path) -> Router {
    let pages = dir.join("pages");
    if !pages.join("track.html").is_file() {
        tracing::warn!(dir = %dir.display(), "no pages in TRACKER_WEB_DIR; the web pages answer 404");
    } else if !dir.join("node_modules/leaflet/dist/leaflet.js").is_file() {
        tracing::warn!(
            dir = %dir.display(),
            "Leaflet is not installed: run `npm ci` in the web folder (scripts/run does)"
        );
    }
    PAGES
        .into_iter()
        .fold(Router::new(), |r, (route, file)| {
            r.route_service(route, ServeFile::new(pages.join(file)))
        })
        .route("/favicon.ico", get(favicon))
        .nest_service("/assets", ServeDir::new(dir.join("assets")))
        .nest_service(
            "/vendor/leaflet",
            ServeDir::new(dir.join("node_modules/leaflet/dist")),
        )
}
