//! Helpers shared by the tests that drive the `radlab` binary (each test file uses some).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The binary with nothing taken from the environment: no catalog, store or key.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_radlab"));
    c.env_remove("RADLAB_DB")
        .env_remove("RADLAB_STORE")
        .env_remove("RADLAB_DEID_KEY_FILE");
    c
}

/// `radlab ARGS --data-dir DATA`.
pub fn radlab(args: &[&str], data: &Path) -> Output {
    command()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run radlab")
}

/// What the command printed, both streams.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
