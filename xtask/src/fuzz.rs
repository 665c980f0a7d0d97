//! The fuzz targets (`fuzz/`, cargo-fuzz on the nightly toolchain): built, then each run
//! briefly from a scratch copy of its committed corpus (`protocol/tests/fuzz-corpus/`), so
//! libFuzzer's new inputs never land in the repository. Longer runs are done by hand
//! (fuzz/README.md).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::run_cmd;

/// Seconds each target runs in `cargo xtask test`.
const SECONDS_PER_TARGET: u32 = 10;

/// Builds every target and runs each for [`SECONDS_PER_TARGET`].
pub fn build_and_run(root: &Path) -> Result<()> {
    let fuzz = root.join("fuzz");
    run_cmd(
        Command::new("cargo")
            .args(["+nightly", "fuzz", "build"])
            .current_dir(&fuzz),
    )
    .context("cargo +nightly fuzz build")?;
    let corpora = root.join("protocol/tests/fuzz-corpus");
    for entry in
        std::fs::read_dir(&corpora).with_context(|| format!("reading {}", corpora.display()))?
    {
        let seeds = entry?.path();
        let Some(target) = seeds
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
        else {
            continue;
        };
        let scratch = fuzz.join("corpus").join(&target);
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)?;
        for seed in std::fs::read_dir(&seeds)? {
            let seed = seed?.path();
            if let Some(name) = seed.file_name() {
                std::fs::copy(&seed, scratch.join(name))?;
            }
        }
        run_cmd(
            Command::new("cargo")
                .args(["+nightly", "fuzz", "run", &target])
                .arg(&scratch)
                .arg("--")
                .arg(format!("-max_total_time={SECONDS_PER_TARGET}"))
                .current_dir(&fuzz),
        )
        .with_context(|| {
            format!("fuzz target `{target}` found a crash (see fuzz/artifacts/{target})")
        })?;
    }
    Ok(())
}
