//! Bakes the commit into the binary for `tracker --version`: `TRACKER_COMMIT`
//! from the build's environment when set (the Dockerfile passes it, having no
//! `.git`), else `git rev-parse` of the checkout, else `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TRACKER_COMMIT");
    let from_env = std::env::var("TRACKER_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let commit = from_env
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TRACKER_COMMIT={}", commit.trim());
    // A new commit moves HEAD or the branch it names: build the version again.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = Path::new(dir.trim());
        for file in ["HEAD", "logs/HEAD", "packed-refs"] {
            let path = dir.join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

/// What `git args` prints, when git is there and succeeds.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then_some(text)
}
