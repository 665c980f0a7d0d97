//! A seed replays byte for byte, and the simulator finds what it claims to.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use simulator::{FaultSet, Mutant, run_seed};

#[test]
fn a_seed_replays_byte_for_byte() {
    let first = run_seed(3, FaultSet::Restore, Mutant::None, true);
    let again = run_seed(3, FaultSet::Restore, Mutant::None, true);
    assert!(!first.trace.is_empty());
    assert_eq!(first.trace, again.trace, "the same story");
    assert_eq!(first.violations, again.violations, "the same verdict");
}

#[test]
fn different_seeds_tell_different_stories() {
    let a = run_seed(1, FaultSet::Survivable, Mutant::None, true);
    let b = run_seed(2, FaultSet::Survivable, Mutant::None, true);
    assert_ne!(a.trace, b.trace);
}

#[test]
fn a_restored_snapshot_is_caught_reusing_a_key() {
    // Seed 3 restores a client from an older backup; protocol v1 then encrypts new text under
    // message keys it already used (docs/SIMULATION.md, "What it found").
    let outcome = run_seed(3, FaultSet::Restore, Mutant::None, false);
    assert!(
        outcome.violations.iter().any(|v| v.kind() == "key-reuse"),
        "{:?}",
        outcome.violations
    );
}
