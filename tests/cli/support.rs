//! Running the `embedlog` binary and checking what it printed.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;

/// Held while a child process is started. Between `fork` and `exec` a
/// child holds copies of every file descriptor of this process, the
/// directory lock of a `Broker` some other test has open included; once
/// `exec` runs they close (`O_CLOEXEC`). `spawn` returns only after the
/// `exec`, so while starts are serialized no child can still hold a lock
/// its test has released when that test starts the next command.
static SPAWN: Mutex<()> = Mutex::new(());

/// Opens `dir` as its owner in this process. Taken under [`SPAWN`]: a
/// child another test is starting may still hold a copy of this
/// directory's lock from a `Broker` this test just closed, until its
/// `exec`; once no start is under way, none does.
pub fn open_broker(dir: impl AsRef<Path>) -> embedlog::Broker {
    let _one_at_a_time = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    embedlog::Broker::open(dir).expect("open the directory")
}

/// Starts `cmd` (see [`SPAWN`]).
pub fn spawn(cmd: &mut Command) -> Child {
    let _one_at_a_time = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
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
