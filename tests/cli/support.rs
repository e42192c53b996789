//! Running the `embedlog` binary and checking what it printed.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Opens `dir` as its owner in this process.
pub fn open_broker(dir: impl AsRef<Path>) -> embedlog::Broker {
    embedlog::Broker::open(dir).expect("open the directory")
}

/// Starts `cmd`. (Children started while a test holds a `Broker` do not
/// inherit its directory lock: it is a POSIX record lock, see
/// `tests/broker_lock_process.rs`.)
pub fn spawn(cmd: &mut Command) -> Child {
    cmd.spawn().expect("spawn embedlog")
}

/// The binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_embedlog");

/// What one run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the exit status is 0.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "failed: {self:#?}");
        self
    }

    /// Panics unless the exit status is `code`.
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "wrong exit status: {self:#?}");
        self
    }

    /// stdout's lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// stdout parsed as one JSON value.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }
}

/// Runs `embedlog --dir DIR ARGS...` with no stdin.
pub fn run(dir: &Path, args: &[&str]) -> Run {
    run_with_stdin(dir, args, "")
}

/// Runs `embedlog --dir DIR ARGS...` feeding `stdin`.
pub fn run_with_stdin(dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = spawn(
        Command::new(BIN)
            .arg("--dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    Run::from(child.wait_with_output().expect("wait for embedlog"))
}

/// Runs `embedlog ARGS...` without `--dir`.
pub fn run_bare(args: &[&str]) -> Run {
    let child = spawn(
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    Run::from(child.wait_with_output().expect("wait for embedlog"))
}
