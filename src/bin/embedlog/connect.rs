//! `embedlog connect`: Kafka's `connect-standalone.sh`, running connectors
//! from properties files on the data directory until interrupted.

use crate::Outcome;
use crate::common::{Fail, open_or_create_owner};
use embedlog::connect::{Connect, ConnectConfig, ConnectorConfig, ConnectorKind, TaskState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Run connectors until interrupted (SIGINT or SIGTERM stop them
    /// cleanly: sources store their offsets, sinks flush and commit).
    Standalone(Standalone),
    /// List the connector classes this build has.
    Plugins,
}

#[derive(Debug, clap::Args)]
pub struct Standalone {
    /// The worker properties file (`offset.storage.topic`,
    /// `offset.flush.interval.ms`, `exactly.once.source.support`,
    /// `key.converter`, `value.converter`), as Kafka's
    /// `connect-standalone.sh` takes first, then one properties file per
    /// connector.
    #[arg(value_name = "WORKER.properties")]
    pub worker: PathBuf,
    /// The connectors' properties files (`name`, `connector.class`, ...).
    #[arg(value_name = "CONNECTOR.properties", required = true)]
    pub connectors: Vec<PathBuf>,
}

pub fn run(dir: &Path, cmd: Cmd) -> Outcome {
    match cmd {
        Cmd::Plugins => plugins(),
        Cmd::Standalone(args) => standalone(dir, args),
    }
}

fn plugins() -> Outcome {
    for (kind, class) in Connect::builtin_classes() {
        let kind = match kind {
            ConnectorKind::Source => "source",
            _ => "sink",
        };
        println!("{kind:<7} {class}");
    }
    Ok(ExitCode::SUCCESS)
}

fn fail(e: embedlog::connect::Error) -> Fail {
    Fail::new(e.to_string())
}

fn standalone(dir: &Path, args: Standalone) -> Outcome {
    let worker = ConnectorConfig::from_properties_file(&args.worker).map_err(fail)?;
    let config = ConnectConfig::from_worker_properties(&worker).map_err(fail)?;
    let connectors = args
        .connectors
        .iter()
        .map(|p| {
            let c = ConnectorConfig::from_properties_file(p).map_err(fail)?;
            if c.name().is_empty() {
                return Err(Fail::new(format!("{}: no name=...", p.display()))
                    .hint("each connector's properties file names it: name=my-connector"));
            }
            Ok(c)
        })
        .collect::<Result<Vec<_>, Fail>>()?;
    // Signals are taken by this thread alone: block them before any other
    // thread starts, so the threads started below inherit the mask.
    let signals = Signals::block();
    let broker = open_or_create_owner(dir)?;
    let connect = Connect::with_config(&broker, config).map_err(fail)?;
    for c in connectors {
        let name = c.name().to_string();
        connect.start(c).map_err(fail)?;
        let tasks = connect.status(&name).map_err(fail)?.tasks.len();
        eprintln!("Started connector {name} ({tasks} task{}).", plural(tasks));
    }
    // Report each task's state changes until a signal comes.
    let mut seen: BTreeMap<(String, usize), (TaskState, u64)> = BTreeMap::new();
    let signal = loop {
        for name in connect.connectors() {
            let Ok(status) = connect.status(&name) else {
                continue;
            };
            for t in status.tasks {
                let now = (t.state, t.restarts);
                if seen.insert((name.clone(), t.task), now) != Some(now) {
                    match t.state {
                        TaskState::Failed => eprintln!(
                            "{name}-{}: failed (restart {} follows): {}",
                            t.task,
                            t.restarts + 1,
                            t.error.as_deref().unwrap_or("")
                        ),
                        state => eprintln!("{name}-{}: {state:?}", t.task),
                    }
                }
            }
        }
        if let Some(signal) = signals.wait(Duration::from_secs(1)) {
            break signal;
        }
    };
    eprintln!("Stopping on signal {signal}.");
    let mut summary = Vec::new();
    for name in connect.connectors() {
        if let Ok(status) = connect.status(&name) {
            let records: u64 = status.tasks.iter().map(|t| t.records).sum();
            let skipped: u64 = status.tasks.iter().map(|t| t.skipped).sum();
            summary.push(format!("{name}: {records} records, {skipped} skipped"));
        }
    }
    connect.close();
    broker.close().map_err(|e| Fail::new(e.to_string()))?;
    for line in summary {
        eprintln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// SIGINT and SIGTERM, blocked in every thread and taken synchronously.
struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    fn block() -> Signals {
        // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we
        // own; pthread_sigmask changes only this thread's mask (threads
        // started afterwards inherit it). No other thread exists yet.
        #[allow(unsafe_code)]
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Signals { set }
        }
    }

    /// The signal that came within `timeout`, if any.
    fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: the set was initialised in `block`; a null siginfo
        // pointer is allowed; the timespec lives across the call.
        #[allow(unsafe_code)]
        let n = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        (n > 0).then_some(n)
    }
}
