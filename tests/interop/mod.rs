//! Interop harness: the switch on its shipped configuration, driven by real
//! user agents (baresip, PJSIP's pjsua2, Kamailio as an edge proxy, JsSIP
//! in headless Chromium over WebSocket).
//!
//! Each peer has one file here; the test binaries `tests/interop_*.rs` pull
//! this folder in with `#[path]`. A peer that is not installed fails the test
//! with a message naming what is missing: `bash scripts/test` installs them.

#![allow(dead_code)]

pub mod baresip;
pub mod jssip;
pub mod kamailio;
pub mod pjsua;
pub mod shipped;

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The interpreter of the interop virtual environment that can run
/// `import <modules>`: `SWITCHBACK_PJSUA_PYTHON` (set by `scripts/test`),
/// then `.venv-interop/bin/python`. `Err` says what is missing and what was
/// tried, so that the test fails with it (a missing peer is never a skip).
pub fn venv_python(modules: &str, missing: &str) -> Result<PathBuf, String> {
    let mut tried = Vec::new();
    let candidates = std::env::var_os("SWITCHBACK_PJSUA_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::iter::once(crate::common::repo_path(
            ".venv-interop/bin/python",
        )));
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", &format!("import {modules}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(py);
        }
        tried.push(py.display().to_string());
    }
    Err(format!("{missing} (tried: {})", tried.join(", ")))
}
