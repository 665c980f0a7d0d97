//! `cargo xtask simulate`: runs seeds of the deterministic simulation and reports.
//!
//! ```text
//! simulator [--seeds N] [--first S] [--seed S [--trace]] [--faults survivable|all|restore|squatter|expiry]
//!           [--mutant relaxed-strict|torn-commit] [--threads T] [--expect-failures]
//! ```
//! Exit status 1 if any seed violates an invariant (0 with `--expect-failures` only if some
//! seed does: a planted bug must be caught).

use std::process::ExitCode;
use std::time::Instant;

use simulator::{FaultSet, Mutant, run_seed, run_seeds};

fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |name: &str, default: u64| -> Result<u64, String> {
        value(&args, name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name} takes a number, not `{v}`"))
        })
    };
    let parsed = (|| -> Result<_, String> {
        let set = match value(&args, "--faults") {
            None => FaultSet::Survivable,
            Some(v) => FaultSet::parse(v).ok_or(format!("unknown --faults `{v}`"))?,
        };
        let mutant = match value(&args, "--mutant") {
            None => Mutant::None,
            Some("relaxed-strict") => Mutant::RelaxedStrict,
            Some("torn-commit") => Mutant::TornCommit,
            Some(v) => return Err(format!("unknown --mutant `{v}`")),
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as u64;
        Ok((
            set,
            mutant,
            number("--seeds", 10_000)?,
            number("--first", 0)?,
            value(&args, "--seed")
                .map(str::parse::<u64>)
                .transpose()
                .map_err(|e| e.to_string())?,
            number("--threads", cores)? as usize,
        ))
    })();
    let (set, mutant, seeds, first, one, threads) = match parsed {
        Ok(p) => p,
        Err(err) => {
            eprintln!("simulator: {err}");
            return ExitCode::from(2);
        }
    };
    let expect_failures = args.iter().any(|a| a == "--expect-failures");
    if let Some(seed) = one {
        let outcome = run_seed(seed, set, mutant, args.iter().any(|a| a == "--trace"));
        for line in &outcome.trace {
            println!("{line}");
        }
        println!(
            "seed {seed}: {} messages, {} delivered, {:.1} min simulated",
            outcome.messages,
            outcome.delivered,
            outcome.simulated_ms as f64 / 60_000.0
        );
        for v in &outcome.violations {
            println!("VIOLATION: {v}");
        }
        return if outcome.violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    // Real time, only to report seeds per second; nothing simulated reads it.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let summary = run_seeds(first, seeds, threads, set, mutant);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "simulator: {} seeds ({set:?}, mutant {mutant:?}) in {secs:.1} s on {threads} threads: {:.0} seeds/s; {} messages, {} delivered; {:.0} h simulated",
        summary.seeds,
        summary.seeds as f64 / secs.max(1e-9),
        summary.messages,
        summary.delivered,
        summary.simulated_ms as f64 / 3_600_000.0
    );
    for (site, n) in &summary.crash_sites {
        println!("simulator: {n} crashes at await points: {site}");
    }
    for (kind, n) in &summary.kinds {
        println!("simulator: {n} violations of kind {kind}");
    }
    for (seed, v) in summary.failures.iter().take(10) {
        println!(
            "simulator: seed {seed} fails: {v}\n  replay: cargo xtask simulate --seed {seed} --faults {} --trace",
            match set {
                FaultSet::Survivable => "survivable",
                FaultSet::All => "all",
                FaultSet::Restore => "restore",
                FaultSet::Squatter => "squatter",
                FaultSet::Expiry => "expiry",
            }
        );
    }
    match (summary.failures.is_empty(), expect_failures) {
        (true, false) => ExitCode::SUCCESS,
        (false, true) => {
            println!("simulator: the planted faults were caught, as expected");
            ExitCode::SUCCESS
        }
        (true, true) => {
            println!("simulator: expected violations, found none: the simulator missed them");
            ExitCode::FAILURE
        }
        (false, false) => ExitCode::FAILURE,
    }
}
