//! Build, serve and test orchestration for Hush.
//!
//! `cargo xtask serve` builds the browser client and the site, then runs `mailbox-server` on
//! 127.0.0.1:8787 serving both the site and the mailbox API from an embedded store.
//! `cargo xtask test` runs every test there is: native unit and property tests, the wasm
//! tests in headless Chromium, the mailbox conformance suite against the native server and the
//! edge worker in workerd, and the end-to-end tests in Chromium.
//!
//! Nothing here downloads a binary at run time: bindgen and its test runner are linked from the
//! workspace at the exact `wasm-bindgen` version in Cargo.lock; Chromium comes from Debian,
//! workerd and wasm-opt from the npm registry through the repo's own package-lock.json.

mod bench;
mod fuzz;
mod mailbox;
mod prereqs;
mod simulate;
mod wasm;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

  serve [--listen ADDR] [--data DIR]   build the client and site, run the mailbox + site (default 127.0.0.1:8787)
  test [--no-browser] [--no-fuzz]      run every test (lints, native, simulation, fuzz, wasm in Chromium, workerd, end to end)
  simulate [--seeds N] [--seed S --trace] [--faults survivable|all|restore|squatter|expiry] [--mutant M]
                                       run the deterministic simulation (docs/SIMULATION.md)
  bench                                print benchmark figures (protocol native and in Chromium, client)
  build-web                            build the wasm client into www/pkg
  build-worker                         build the edge worker into edge-worker/build
  setup                                install what is missing (wasm target, npm packages, Chromium)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => {
            eprint!("{USAGE}");
            bail!("no command given");
        }
    };
    match cmd {
        "serve" => serve(&root, rest),
        "test" => test(&root, rest),
        "simulate" => simulate::run(&root, rest),
        "bench" => {
            prereqs::ensure_build(&root)?;
            prereqs::ensure_browser()?;
            bench::run(&root)
        }
        "build-web" => {
            prereqs::ensure_build(&root)?;
            wasm::build_web(&root).map(|_| ())
        }
        "build-worker" => {
            prereqs::ensure_build(&root)?;
            wasm::build_worker(&root).map(|_| ())
        }
        "setup" => {
            prereqs::ensure_build(&root)?;
            prereqs::ensure_browser()
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown command `{other}`")
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory, as `cargo run` gives it
/// at run time (so that two checkouts sharing one `CARGO_TARGET_DIR`, whose `xtask` binary is
/// whichever was built last, each work on their own tree), else as it was at build time.
fn workspace_root() -> Result<PathBuf> {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set, else `target/` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"))
}

/// Value of `--name VALUE` in `args`, if present.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn serve(root: &Path, args: &[String]) -> Result<()> {
    let listen = flag(args, "--listen").unwrap_or("127.0.0.1:8787");
    let data = flag(args, "--data").unwrap_or("data");
    prereqs::ensure_build(root)?;
    wasm::build_web(root)?;
    cargo(&["build", "--release", "--package", "mailbox-server"])?;
    let bin = crate::target_dir(root).join("release/mailbox-server");
    println!("Hush: open http://{listen}/ (Ctrl-C to stop; messages kept in {data})");
    let status = Command::new(bin)
        .args(["--listen", listen, "--data", data, "--www", "www"])
        .status()
        .context("starting mailbox-server")?;
    if !status.success() {
        bail!("mailbox-server exited with {status}");
    }
    Ok(())
}

fn test(root: &Path, args: &[String]) -> Result<()> {
    let browser = !args.iter().any(|a| a == "--no-browser");
    let fuzz = !args.iter().any(|a| a == "--no-fuzz");
    let started = Instant::now();
    prereqs::ensure_build(root)?;
    if browser {
        prereqs::ensure_browser()?;
    }

    step("lints: rustfmt, clippy (native and wasm32)", lints)?;
    step("native unit and property tests", || {
        cargo(&["test", "--workspace", "--all-targets"])
    })?;
    // Alone: beside the browser suites it slowed them badly (docs/SIMULATION.md).
    step("deterministic simulation", || simulate::test(root))?;
    if fuzz {
        prereqs::ensure_fuzz()?;
        step("fuzz targets: build, run each briefly", || {
            fuzz::build_and_run(root)
        })?;
    }
    // The wasm tests and the Node suites run against a real mailbox-server.
    step("build mailbox-server", || {
        cargo(&["build", "--package", "mailbox-server"])
    })?;
    if browser {
        step("wasm tests in headless Chromium", || {
            wasm::test_in_browser(root)
        })?;
    }

    step("build wasm client and site", || {
        wasm::build_web(root).map(|_| ())
    })?;
    // A lint of the site, run once the build wrote the client's types (www/pkg/hush.d.ts).
    step("lints: type check of the site (tsc)", || type_check(root))?;
    step("build edge worker", || wasm::build_worker(root).map(|_| ()))?;

    step("mailbox conformance, workerd and end-to-end suites", || {
        node_tests(root, browser)
    })?;
    println!(
        "xtask: every test passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo fmt --check`, then clippy with warnings denied on every target natively, and for
/// wasm32 on the crates that run there: the browser client, the QR decoder and the edge worker
/// (all targets), and the pure crates beneath them (libraries: their dev-dependencies are
/// native-only).
fn lints() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    let wasm32 = ["clippy", "--target", "wasm32-unknown-unknown"];
    let deny = ["--", "-D", "warnings"];
    let adapters = [
        "-p",
        "wasm-client",
        "-p",
        "qr-scan",
        "-p",
        "edge-worker",
        "--all-targets",
    ];
    cargo(&[&wasm32[..], &adapters[..], &deny[..]].concat())?;
    let pure = [
        "-p",
        "client-core",
        "-p",
        "protocol",
        "-p",
        "mailbox",
        "--lib",
    ];
    cargo(&[&wasm32[..], &pure[..], &deny[..]].concat())
}

/// The site's type check: `tsc` (npm `typescript`) over `www/` with `tsconfig.json`, the sync
/// engine strictly with `tsconfig.engine.json`, the unlock worker with `tsconfig.worker.json`,
/// the service worker with `tsconfig.sw.json`. Any type error fails it.
fn type_check(root: &Path) -> Result<()> {
    let tsc = root.join("node_modules/typescript/bin/tsc");
    for config in [
        "tsconfig.json",
        "tsconfig.engine.json",
        "tsconfig.worker.json",
        "tsconfig.sw.json",
    ] {
        run_cmd(
            Command::new("node")
                .arg(&tsc)
                .args(["--project", config, "--pretty", "false"])
                .current_dir(root),
        )
        .with_context(|| format!("type check with {config}"))?;
    }
    Ok(())
}

/// Runs the `*.test.mjs` files under `tests/` with Node's test runner: first those of
/// [`RUN_ALONE`], one at a time, then the others [`NODE_CONCURRENCY`] at a time.
fn node_tests(root: &Path, browser: bool) -> Result<()> {
    let mut files = Vec::new();
    collect_tests(&root.join("tests"), &mut files)?;
    files.sort();
    if files.is_empty() {
        bail!("no *.test.mjs files under tests/");
    }
    let alone = |f: &PathBuf| {
        f.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| RUN_ALONE.contains(&n))
    };
    let (first, rest): (Vec<PathBuf>, Vec<PathBuf>) = files.into_iter().partition(alone);
    for (batch, concurrency) in [(first, 1), (rest, NODE_CONCURRENCY)] {
        if batch.is_empty() {
            continue;
        }
        let mut cmd = Command::new("node");
        cmd.arg("--test")
            .arg(format!("--test-concurrency={concurrency}"))
            .args(&batch)
            .env(
                "HUSH_MAILBOX_SERVER_BIN",
                crate::target_dir(root).join("debug/mailbox-server"),
            )
            .env("HUSH_EDGE_WORKER_DIR", root.join("edge-worker/build"))
            .env("HUSH_WWW_DIR", root.join("www"))
            .env("HUSH_ARTIFACTS_DIR", root.join("tests/artifacts"))
            .env("HUSH_CHROMIUM", prereqs::CHROMIUM);
        if !browser {
            cmd.env("HUSH_NO_BROWSER", "1");
        }
        let status = cmd
            .status()
            .context("running node (is Node.js installed?)")?;
        if !status.success() {
            bail!("node test suites failed ({status})");
        }
    }
    Ok(())
}

/// Test files that run before the others, one at a time: `serve.test.mjs` runs the README's
/// `cargo xtask serve`, which builds the site again (it deletes and rewrites `www/pkg`, which
/// every browser suite loads) and compiles the release mailbox-server on a fresh clone (both
/// cores for a minute and a half).
const RUN_ALONE: &[&str] = &["serve.test.mjs"];

/// How many of the other test files run side by side: 3. They mostly wait (for timers, polls
/// and the browser): together 600 s of CPU (Node, Chromium, the servers) in 1,512 s of wall
/// time, one file at a time (`/usr/bin/time` per file on a 2-core machine), so two nearly
/// halved the wall time. Measured on this machine (stop 42, every file but `serve.test.mjs`,
/// fresh clone): 577 s at 2 and 483 s at 4 (each test about 1.65 times slower: the machine is
/// busy by then); with the suites' cheap Argon2id parameters (`tests/support/browser.mjs`)
/// 481 s at 2 and 419 s at 3. An earlier
/// try at two failed on a fresh clone only, where `serve.test.mjs` rebuilt `www/pkg` and
/// compiled beside the app suites ([`RUN_ALONE`] since); and the path proxy of
/// `app-everyday` met a keep-alive race under load (`tests/support/paths.mjs`).
const NODE_CONCURRENCY: usize = 3;

fn collect_tests(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() && name != "artifacts" && name != "node_modules" {
            collect_tests(&path, out)?;
        } else if name.ends_with(".test.mjs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Runs one named step, printing its wall time.
fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("xtask: == {name}");
    let started = Instant::now();
    let result = f().with_context(|| format!("step `{name}` failed"));
    println!(
        "xtask: == {name}: {} in {:.1} s",
        if result.is_ok() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    result
}

/// Runs `cargo` (the one that runs us) with `args`.
fn cargo(args: &[&str]) -> Result<()> {
    run_cmd(Command::new(cargo_bin()).args(args))
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Runs a command to completion; a non-zero exit is an error naming the command.
fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
