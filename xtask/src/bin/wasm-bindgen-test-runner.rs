//! `wasm-bindgen-test-runner`, built from the workspace at the exact wasm-bindgen version in
//! Cargo.lock. `cargo xtask test` points `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER` here.

fn main() -> anyhow::Result<()> {
    wasm_bindgen_cli::wasm_bindgen_test_runner::run_cli_with_args(std::env::args_os())
}
