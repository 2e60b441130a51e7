//! Helpers shared by the tests that drive the `radlab` binary (each test file uses some).
#![allow(dead_code)]

use std::io::BufRead;
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

/// The server's address from its "radlab serving on" line, and what it printed before.
pub fn serving_address(server: &mut std::process::Child) -> (std::net::SocketAddr, String) {
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut before = String::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the server said: {before}"
        );
        if let Some(rest) = line.trim().strip_prefix("radlab serving on http://") {
            let addr = rest
                .strip_suffix("/api/v1/health")
                .unwrap_or_else(|| panic!("{line}"))
                .parse()
                .unwrap();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return (addr, before);
        }
        before.push_str(&line);
    }
}
