//! Installs what a fresh machine lacks, or stops with one line naming the command to run.
//!
//! A fresh machine has the Rust toolchain, Node.js/npm and python3. We add the wasm32 target
//! (rustup), the npm packages pinned by the repo's package-lock.json (`npm ci`), and, for the
//! browser tests, Debian's `chromium` and `chromium-driver` (apt, when running as root).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run_cmd;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's ChromeDriver (drives the wasm-bindgen-test runner).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// What every build needs: the wasm32 target and the npm packages.
pub fn ensure_build(root: &Path) -> Result<()> {
    ensure_wasm_target()?;
    ensure_npm_packages(root)
}

fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(WASM_TARGET) => Ok(()),
        Ok(_) => {
            println!("xtask: installing the {WASM_TARGET} target (rustup)");
            run_cmd(Command::new("rustup").args(["target", "add", WASM_TARGET]))
        }
        Err(_) => bail!("rustup not found: install the {WASM_TARGET} target for your toolchain"),
    }
}

fn ensure_npm_packages(root: &Path) -> Result<()> {
    let lock = root.join("package-lock.json");
    let installed = root.join("node_modules/.package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = match (modified(&lock), modified(&installed)) {
        (Some(lock), Some(installed)) => installed >= lock,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    println!("xtask: installing npm packages from package-lock.json (npm ci)");
    run_cmd(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(root),
    )
    .context("npm ci failed: is Node.js >= 20 with npm installed? (`apt-get install nodejs npm`)")
}

/// What the browser tests need: Debian's Chromium and ChromeDriver.
pub fn ensure_browser() -> Result<()> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root_user {
        bail!(
            "Chromium is missing: run `sudo apt-get update && sudo apt-get install -y chromium chromium-driver`"
        );
    }
    println!("xtask: installing Debian's chromium and chromium-driver (apt-get)");
    run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// What the fuzz step needs: a nightly toolchain (on the machine) and cargo-fuzz.
pub fn ensure_fuzz() -> Result<()> {
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        println!("xtask: installing a minimal nightly toolchain (rustup) for cargo-fuzz");
        run_cmd(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        println!("xtask: installing cargo-fuzz (cargo install)");
        run_cmd(Command::new("cargo").args([
            "install",
            "cargo-fuzz",
            "--version",
            "0.13.2",
            "--locked",
        ]))
        .context("cargo install cargo-fuzz failed")?;
    }
    Ok(())
}
