//! `cargo xtask simulate`: the deterministic simulator (`simulator/`), built with
//! optimisations (it runs thousands of seeds), and the simulation checks of `cargo xtask test`.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::{cargo, run_cmd};

/// Seeds of the survivable fault mix that every `cargo xtask test` runs.
pub const CI_SEEDS: &str = "10000";

fn build() -> Result<()> {
    cargo(&["build", "--release", "--package", "simulator"])
}

fn simulator(root: &Path, args: &[&str]) -> Result<()> {
    run_cmd(Command::new(crate::target_dir(root).join("release/simulator")).args(args))
}

/// `cargo xtask simulate [ARGS…]`: passes the arguments to the simulator.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    build()?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    simulator(root, &args)
}

/// What `cargo xtask test` checks: the survivable fault mix on [`CI_SEEDS`] seeds with zero
/// violations; each planted bug caught; each fault that protocol v1 cannot survive shown to
/// be found (these flip to must-pass when protocol v2 lands, `docs/SIMULATION.md`).
pub fn test(root: &Path) -> Result<()> {
    build()?;
    simulator(root, &["--seeds", CI_SEEDS, "--faults", "survivable"])?;
    for mutant in ["relaxed-strict", "torn-commit"] {
        simulator(
            root,
            &["--seeds", "300", "--mutant", mutant, "--expect-failures"],
        )?;
    }
    for faults in ["restore", "squatter", "expiry"] {
        simulator(
            root,
            &["--seeds", "100", "--faults", faults, "--expect-failures"],
        )?;
    }
    Ok(())
}
