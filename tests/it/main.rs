//! The integration tests, as one test binary (one link, one run).
//!
//! Every test starts its own servers on 127.0.0.1 and works in its own
//! temporary folders. Tests that need a Docker daemon and the local test
//! image, or python3 with venv, are `#[ignore]`d with the reason, so that a
//! plain `cargo test` reports them as ignored rather than passed;
//! `cargo test -- --include-ignored` (what `.ci/run` runs, after setting
//! those up) runs them. Tests against the live package index are compiled
//! only with `--features live-tests`.

mod common;

mod arm64;
mod build;
mod cli_snapshots;
mod docker;
mod docs;
mod fuzz;
mod install_py;
mod integrity;
#[cfg(feature = "live-tests")]
mod live;
mod npm;
mod pypi;
mod release;
mod remote;
mod sandbox_install;
mod schemas;
mod verify;
mod verify_reach;
