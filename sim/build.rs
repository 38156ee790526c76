//! Records the commit this build came from, for the `build` section of failure artifacts
//! (`sim::artifact`). `DETCD_GIT_HASH` in the environment wins (CI may build from a tarball);
//! otherwise `git rev-parse` is asked, and a build outside a checkout says `unknown`.

use std::process::Command;

fn git(arguments: &[&str]) -> Option<String> {
    let output = Command::new("git").args(arguments).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Asks cargo to rebuild when `file` changes; a missing file is skipped, since cargo would
/// then rerun this script on every build.
fn watch(file: &str) {
    if std::path::Path::new(file).exists() {
        println!("cargo:rerun-if-changed={file}");
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "a build script reads the build's environment; no run ever sees it"
)]
fn main() {
    println!("cargo:rerun-if-env-changed=DETCD_GIT_HASH");
    let hash = std::env::var("DETCD_GIT_HASH")
        .ok()
        .filter(|hash| !hash.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // A new commit must rebuild this crate's stamp: watch HEAD and the branch it points at.
    for path in ["HEAD", "packed-refs"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            watch(&file);
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(file) = git(&["rev-parse", "--git-path", &branch]) {
            watch(&file);
        }
    }
    println!("cargo:rustc-env=DETCD_GIT_HASH={hash}");
}
