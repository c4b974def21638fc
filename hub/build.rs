//! The pages are built into the binary (`hub/src/http/web.rs`), Leaflet only
//! when `npm ci` ran in `web/` first. A build without it tracks no Leaflet
//! file, so this tells cargo to build again once Leaflet is installed (or,
//! with it, when it changes).

use std::path::Path;

fn main() {
    let leaflet = "../web/node_modules/leaflet/dist";
    if Path::new(leaflet).is_dir() {
        println!("cargo:rerun-if-changed={leaflet}");
    } else {
        // Installing it changes the folder's contents.
        println!("cargo:rerun-if-changed=../web/package-lock.json");
        println!("cargo:rerun-if-changed=../web");
    }
}
