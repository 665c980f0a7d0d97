//! `cargo xtask simulate`: runs seeds of the deterministic simulation and reports.
//!
//! ```text
//! simulator [--seeds N] [--first S] [--seed S [--trace]] [--faults survivable|all|restore|squatter|expiry]
//!           [--mutant relaxed-strict|torn-commit] [--pushes] [--delete-after-read]
//!           [--threads T] [--expect-failures]
//! ```
//! `--pushes`: half the clients' polls read a subscription snapshot instead, a random part of
//! it in a random order (`Client::poll_pushed`). `--delete-after-read`: the clients delete
//! what they read in every seed, also with restored snapshots (by default, only without).
//! Exit status 1 if any seed violates an invariant (0 with `--expect-failures` only if some
//! seed does: a planted bug must be caught).

use std::process::ExitCode;
use std::time::Instant;

use simulator::{FaultSet, Figures, Mutant, Options, Struck, Summary, Wire, run_seed, run_seeds};

fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// The flags, for an argument the simulator does not know.
const USAGE: &str = "usage: simulator [--seeds N] [--first S] [--seed S [--trace]] \
    [--faults survivable|all|restore|squatter|expiry] [--mutant relaxed-strict|torn-commit] \
    [--pushes] [--delete-after-read] [--allow S,S] [--expect-failures] [--threads N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |name: &str, default: u64| -> Result<u64, String> {
        value(&args, name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name} takes a number, not `{v}`"))
        })
    };
    let parsed = (|| -> Result<_, String> {
        // Every argument is a known flag or the value of one that takes a value: a mistyped
        // flag (`--fault all`) must not run the default set and report it clean.
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--faults" | "--mutant" | "--seeds" | "--first" | "--seed" | "--threads"
                | "--allow" => {
                    rest.next().ok_or(format!("{arg} takes a value; {USAGE}"))?;
                }
                "--trace" | "--pushes" | "--delete-after-read" | "--expect-failures" => {}
                other => return Err(format!("unknown argument `{other}`; {USAGE}")),
            }
        }
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
    // Seeds named as known failures (`--allow 348,817`): each must still fail, and no other
    // seed may.
    let allowed: Result<Vec<u64>, String> = value(&args, "--allow").map_or(Ok(Vec::new()), |v| {
        v.split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|_| format!("--allow takes seeds separated by commas, not `{v}`"))
            })
            .collect()
    });
    let parsed = parsed.and_then(|p| allowed.map(|a| (p, a)));
    let ((set, mutant, seeds, first, one, threads), allowed) = match parsed {
        Ok(p) => p,
        Err(err) => {
            eprintln!("simulator: {err}");
            return ExitCode::from(2);
        }
    };
    let expect_failures = args.iter().any(|a| a == "--expect-failures");
    let options = Options {
        pushes: args.iter().any(|a| a == "--pushes"),
        delete_after_read: args.iter().any(|a| a == "--delete-after-read"),
    };
    if let Some(seed) = one {
        let outcome = run_seed(
            seed,
            set,
            mutant,
            options,
            args.iter().any(|a| a == "--trace"),
        );
        for line in &outcome.trace {
            println!("{line}");
        }
        println!(
            "seed {seed}: {} messages, {} delivered, {:.1} min simulated",
            outcome.messages,
            outcome.delivered,
            outcome.simulated_ms as f64 / 60_000.0
        );
        print_figures(
            outcome.messages,
            &outcome.struck,
            &outcome.wire,
            &outcome.figures,
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
    let summary = run_seeds(first, seeds, threads, set, mutant, options);
    let secs = started.elapsed().as_secs_f64();
    report(&summary, set, mutant, options, secs, threads);
    if !allowed.is_empty() {
        return allowed_failures(&summary, &allowed);
    }
    match (summary.failures.is_empty(), expect_failures) {
        (true, false) => ExitCode::SUCCESS,
        (false, true) => {
            println!(
                "simulator: violations found, as expected (a planted bug, or a documented known failure)"
            );
            ExitCode::SUCCESS
        }
        (true, true) => {
            println!("simulator: expected violations, found none: the simulator missed them");
            ExitCode::FAILURE
        }
        (false, false) => ExitCode::FAILURE,
    }
}

/// The verdict of a run with named known failures (`--allow`): success when the failing
/// seeds are exactly those named. A seed named that passes now fails the run too, so that the
/// list is updated (the fix moves the set to must-pass) rather than left to hide a new
/// failure later.
fn allowed_failures(summary: &Summary, allowed: &[u64]) -> ExitCode {
    let failing: Vec<u64> = summary.failures.iter().map(|(seed, _)| *seed).collect();
    let unexpected: Vec<u64> = failing
        .iter()
        .copied()
        .filter(|s| !allowed.contains(s))
        .collect();
    let fixed: Vec<u64> = allowed
        .iter()
        .copied()
        .filter(|s| !failing.contains(s))
        .collect();
    if !unexpected.is_empty() {
        println!("simulator: seeds failing that are not known failures: {unexpected:?}");
    }
    if !fixed.is_empty() {
        println!("simulator: known failures that pass now (take them off the list): {fixed:?}");
    }
    if unexpected.is_empty() && fixed.is_empty() {
        println!("simulator: only the known failures failed: {allowed:?}");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn report(
    summary: &Summary,
    set: FaultSet,
    mutant: Mutant,
    options: Options,
    secs: f64,
    threads: usize,
) {
    let pushes = options.flags();
    println!(
        "simulator: {} seeds ({}{pushes}, mutant {mutant:?}) in {secs:.1} s on {threads} threads: {:.0} seeds/s; {} messages, {} delivered; {:.0} h simulated",
        summary.seeds,
        set.name(),
        summary.seeds as f64 / secs.max(1e-9),
        summary.messages,
        summary.delivered,
        summary.simulated_ms as f64 / 3_600_000.0
    );
    print_figures(
        summary.messages,
        &summary.struck,
        &summary.wire,
        &summary.figures,
    );
    let at = |q: usize| {
        let v = &summary.recovery_ms;
        v.get((v.len().saturating_sub(1)) * q / 100)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "simulator: recovery after the faults stop (to the last message shown or marked delivered): median {:.0} s, 99th percentile {:.0} s, longest {:.0} s (heal phase {} s)",
        at(50),
        at(99),
        at(100),
        simulator::scenario::HEAL_MS / 1000
    );
    for (site, n) in &summary.crash_sites {
        println!("simulator: {n} crashes at await points: {site}");
    }
    let violations: u64 = summary.kinds.iter().map(|(_, n)| n).sum();
    println!(
        "simulator: {violations} violations in {} seeds",
        summary.failures.len()
    );
    for (kind, n) in &summary.kinds {
        println!("simulator: {n} violations of kind {kind}");
    }
    for (seed, v) in summary.failures.iter().take(10) {
        println!(
            "simulator: seed {seed} fails: {v}\n  replay: cargo xtask simulate --seed {seed} --faults {}{pushes}{} --trace",
            set.name(),
            match mutant {
                Mutant::None => "",
                Mutant::RelaxedStrict => " --mutant relaxed-strict",
                Mutant::TornCommit => " --mutant torn-commit",
            }
        );
    }
}

/// The figures of one run or many: faults that struck, how messages ended, the wire.
fn print_figures(messages: u64, struck: &Struck, wire: &Wire, figures: &Figures) {
    let struck: Vec<String> = struck
        .pairs()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    if !struck.is_empty() {
        println!("simulator: faults struck: {}", struck.join(", "));
    }
    println!(
        "simulator: messages: {} reached delivered at the sender, {} shown to the peer but not delivered at the sender, {} marked not delivered with a reason, {} not delivered because the invite was taken ({} joiners told), {} because the conversation ended when the other device went back to an older copy ({} conversations); {} received from a copy their sender lost to a restore, {} shown and then lost by the recipient's own restore, {} delivered to a copy of the recipient's device that a restore discarded before showing them (the conversation then ended, saying why); notices: {} rollback, {} interference",
        figures.delivered_status,
        figures.shown_not_acknowledged,
        figures.marked_undelivered,
        figures.invite_taken_messages,
        figures.invite_taken,
        figures.ended_messages,
        figures.ended_peer_restored,
        figures.lost_copy_messages,
        figures.lost_by_receiver_restore,
        figures.delivered_to_lost_copy,
        figures.rollback_notices,
        figures.interference_notices
    );
    let per = |n: u64| n as f64 / (messages.max(1) as f64);
    println!(
        "simulator: wire: {} PUTs ({} repeats of sent bytes; {} retransmissions reported by flushes, {} blobs stored again after they expired, {} messages sent again after a read that was lost), {} distinct blobs ({} acknowledgement-only), {} fetches, {} GETs, {} DELETEs; per message: {:.2} PUTs, {:.1} requests, {:.1} KiB on the wire ({:.2} KiB in PUTs)",
        wire.puts,
        wire.repeat_puts,
        figures.retransmitted,
        wire.restored_blobs,
        figures.resent_lost_reads,
        wire.blobs,
        figures.ack_blobs,
        wire.fetches,
        wire.gets,
        wire.deletes,
        per(wire.puts),
        per(wire.puts + wire.fetches + wire.gets + wire.deletes),
        per(wire.request_bytes + wire.answer_bytes) / 1024.0,
        per(wire.puts * protocol::BLOB_LEN as u64) / 1024.0
    );
    println!(
        "simulator: two different blobs of one client at one address: {} (each with its own hedge; equal hedges are key reuse)",
        wire.second_blobs_at_address
    );
}
