//! `cargo xtask bench`: figures, printed, never asserted. The protocol's per-message cost
//! natively (criterion) and inside Chromium (wasm-bindgen-test's criterion port), each set
//! next to a baseline measured in the same run: the bare primitives ("floor") natively, and
//! the native figure for the browser. Then the client's unlock time, first-load bytes and
//! module sizes in Chromium (tests/bench/client-figures.mjs).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cargo, cargo_bin, step};

/// The wasm-bindgen test runner's time limits for the browser benchmarks, in seconds, as
/// (variable, value): the whole run (default 20 s, less than criterion's warm-up and
/// measurement of both workloads take on a busy machine) and chromedriver binding its port
/// (default 5 s). A value the caller set in the environment wins.
const BROWSER_BENCH_TIMEOUTS: [(&str, u32); 2] = [
    ("WASM_BINDGEN_TEST_TIMEOUT", 900),
    ("WASM_BINDGEN_TEST_DRIVER_TIMEOUT", 60),
];

/// The benchmarks compared, as (native id, browser id, floor id).
const PAIRS: [(&str, &str, &str); 2] = [
    (
        "protocol/one_direction",
        "browser/protocol/one_direction",
        "floor/one_direction",
    ),
    (
        "protocol/ping_pong",
        "browser/protocol/ping_pong",
        "floor/ping_pong",
    ),
];

pub fn run(root: &Path) -> Result<()> {
    let native = step("native protocol benchmarks (criterion)", || {
        capture(Command::new(cargo_bin()).args([
            "bench",
            "--package",
            "protocol",
            "--bench",
            "ratchet",
            "--",
            "--warm-up-time",
            "1",
            "--measurement-time",
            "3",
        ]))
    })?;
    let browser = step("protocol benchmarks in headless Chromium", || {
        // The shipped module's settings (the `wasm` profile), not the bench profile's.
        let mut cmd = crate::wasm::cargo_in_browser(
            root,
            &["bench", "--package", "wasm-client", "--bench", "session"],
        )?;
        cmd.env("CARGO_PROFILE_BENCH_OPT_LEVEL", "s")
            .env("CARGO_PROFILE_BENCH_LTO", "true")
            .env("CARGO_PROFILE_BENCH_CODEGEN_UNITS", "1");
        configure_browser_runner(&mut cmd, root);
        capture(&mut cmd)
    })?;
    step("client figures in headless Chromium", || {
        cargo(&["build", "--package", "mailbox-server"])?;
        crate::wasm::build_web(root)?;
        crate::run_cmd(
            Command::new("node")
                .arg(root.join("tests/bench/client-figures.mjs"))
                .env(
                    "HUSH_MAILBOX_SERVER_BIN",
                    crate::target_dir(root).join("debug/mailbox-server"),
                )
                .env("HUSH_WWW_DIR", root.join("www"))
                .env("HUSH_CHROMIUM", crate::prereqs::CHROMIUM),
        )
    })?;

    println!("\nxtask: per 256-byte message, encrypt + decrypt (median estimates):");
    for (native_id, browser_id, floor_id) in PAIRS {
        let n = estimate_ns(&native, native_id)
            .with_context(|| format!("no figure for {native_id}"))?;
        let f =
            estimate_ns(&native, floor_id).with_context(|| format!("no figure for {floor_id}"))?;
        let b = estimate_ns(&browser, browser_id)
            .with_context(|| format!("no figure for {browser_id}"))?;
        println!(
            "  {native_id:<24} native {:>8.2} µs = {:.2}× floor ({:.2} µs); Chromium {:>8.2} µs = {:.2}× native",
            n / 1e3,
            n / f,
            f / 1e3,
            b / 1e3,
            b / n
        );
    }
    Ok(())
}

/// The wasm-bindgen test runner's settings for benchmarks: time limits that hold on a busy
/// machine, and results kept out of the repository.
fn configure_browser_runner(cmd: &mut Command, root: &Path) {
    // The runner keeps each run's results as the next run's baseline; by default in
    // `<package>/target/wbg_benchmark.json`, inside the repository.
    cmd.env("WASM_BINDGEN_BENCH_RESULT", bench_result_path(root));
    for (variable, seconds) in BROWSER_BENCH_TIMEOUTS {
        if std::env::var_os(variable).is_none() {
            cmd.env(variable, seconds.to_string());
        }
    }
}

/// Where the browser benchmarks' results (the baseline of the next run) are kept: under the
/// workspace's target directory, never in the repository.
fn bench_result_path(root: &Path) -> std::path::PathBuf {
    crate::target_dir(root).join("wbg_benchmark.json")
}

/// Runs a command, echoing and returning its standard output.
fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    Ok(stdout)
}

/// The middle estimate of criterion's `time: [low mid high]` report for `id`, in ns.
fn estimate_ns(output: &str, id: &str) -> Option<f64> {
    let mut current = false;
    for line in strip_ansi(output).lines() {
        if line.split_whitespace().next() == Some(id) {
            current = true;
        }
        if current && let Some(rest) = line.split("time:").nth(1) {
            let inner = rest.trim().trim_start_matches('[').trim_end_matches(']');
            let parts: Vec<&str> = inner.split_whitespace().collect();
            let (value, unit) = (parts.get(2)?, parts.get(3)?);
            let scale = match *unit {
                "ns" => 1.0,
                "µs" | "us" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                _ => return None,
            };
            return value.parse::<f64>().ok().map(|v| v * scale);
        }
    }
    None
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{BROWSER_BENCH_TIMEOUTS, configure_browser_runner, estimate_ns};
    use std::ffi::OsStr;
    use std::path::Path;
    use std::process::Command;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
    }

    #[test]
    fn browser_runner_waits_long_enough_and_writes_results_outside_the_repository() {
        let mut cmd = Command::new("true");
        configure_browser_runner(&mut cmd, root());
        let env = |name: &str| {
            cmd.get_envs()
                .find(|(k, _)| *k == OsStr::new(name))
                .and_then(|(_, v)| v)
                .map(|v| v.to_string_lossy().into_owned())
        };
        let result = env("WASM_BINDGEN_BENCH_RESULT").unwrap_or_default();
        assert!(
            Path::new(&result).starts_with(crate::target_dir(root())),
            "{result}"
        );
        for (variable, at_least) in BROWSER_BENCH_TIMEOUTS {
            // Unless the caller set it: then the runner reads the caller's value.
            if std::env::var_os(variable).is_none() {
                let seconds: u32 = env(variable).and_then(|v| v.parse().ok()).unwrap_or(0);
                assert!(seconds >= at_least, "{variable} = {seconds}");
            }
        }
        assert!(
            BROWSER_BENCH_TIMEOUTS[0].1 >= 600,
            "minutes, not the default 20 s"
        );
    }

    #[test]
    fn bench_outputs_are_neither_tracked_nor_left_unignored() {
        let git = |args: &[&str]| Command::new("git").args(args).current_dir(root()).output();
        let Ok(tracked) = git(&["ls-files", "--", "*wbg_benchmark.json", "*/target/*"]) else {
            return; // Not a git checkout.
        };
        if !tracked.status.success() {
            return;
        }
        assert_eq!(
            String::from_utf8_lossy(&tracked.stdout),
            "",
            "tracked outputs"
        );
        let ignored = git(&[
            "check-ignore",
            "-q",
            "wasm-client/target/wbg_benchmark.json",
        ]);
        assert!(ignored.is_ok_and(|o| o.status.success()), "not ignored");
    }

    #[test]
    fn parses_criterion_reports() {
        let native = "protocol/one_direction\n                        time:   [9.1000 µs 9.2500 µs 9.4000 µs]\n";
        assert_eq!(estimate_ns(native, "protocol/one_direction"), Some(9250.0));
        let browser = "browser/protocol/ping_pong    time:   [310.10 µs 312.00 µs 315.90 µs]";
        assert_eq!(
            estimate_ns(browser, "browser/protocol/ping_pong"),
            Some(312_000.0)
        );
        assert_eq!(estimate_ns(native, "protocol/ping_pong"), None);
        let coloured = "\u{1b}[32mbrowser/protocol/one_direction\u{1b}[0m\n\u{1b}[32m\u{1b}[0m   time:   [\u{1b}[2m12.354 µs\u{1b}[0m \u{1b}[1m12.425 µs\u{1b}[0m \u{1b}[2m12.488 µs\u{1b}[0m]";
        assert_eq!(
            estimate_ns(coloured, "browser/protocol/one_direction"),
            Some(12_425.0)
        );
    }
}
