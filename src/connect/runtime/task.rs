//! One task's life on its thread: start, run step after step, and on a
//! failure stop it, record why, and start a new instance after a backoff
//! that doubles up to a cap (and resets once an instance commits).

use super::super::error::{Error, Result};
use crate::worker::{Stop, Worker};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// Starting: reading its stored offsets, opening what it reads or
    /// writes.
    Starting,
    /// Polling or putting records.
    Running,
    /// Its last instance failed ([`TaskStatus::error`] says why); a new
    /// one starts after the backoff.
    Failed,
    /// Stopped on request.
    Stopped,
}

/// A task's state and counters, as [`Connect::status`](super::Connect::status)
/// reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskStatus {
    /// The task's number, from 0.
    pub task: usize,
    /// Where it is.
    pub state: TaskState,
    /// How many times a failed instance was replaced.
    pub restarts: u64,
    /// The last failure (kept after a restart), with its causes.
    pub error: Option<String>,
    /// Records sent (a source) or put (a sink) since the runtime started.
    pub records: u64,
    /// Records skipped by `errors.tolerance=all` (a sink's include those
    /// sent to its dead-letter topic).
    pub skipped: u64,
    /// Offset commits that succeeded: after each, everything the task
    /// handled before it is stored (a source's records and offsets, a
    /// sink's flushed records and the group's offsets).
    pub commits: u64,
}

impl TaskStatus {
    fn new(task: usize) -> Self {
        TaskStatus {
            task,
            state: TaskState::Starting,
            restarts: 0,
            error: None,
            records: 0,
            skipped: 0,
            commits: 0,
        }
    }
}

/// The status a task's thread updates and [`Connect`](super::Connect)
/// reads.
pub(super) type SharedStatus = Arc<Mutex<TaskStatus>>;

/// A started source or sink task instance, on its thread.
pub(super) trait Work {
    /// One round: a poll and what follows it.
    fn step(&mut self, stop: &Stop) -> Result<()>;
    /// Ends the instance: on a clean stop (`clean`) it stores what it can
    /// first; after a failure it only releases what it holds.
    fn finish(self: Box<Self>, clean: bool) -> Result<()>;
}

/// Starts an instance: `Ok(None)` if a stop came first. A start that
/// fails releases what it took itself.
pub(super) type Start = dyn FnMut(&Stop) -> Result<Option<Box<dyn Work>>> + Send;

/// Backoffs between instances of a failing task, and between retries of a
/// retriable call.
#[derive(Clone, Copy, Debug)]
pub(super) struct Backoff {
    pub(super) initial: Duration,
    pub(super) max: Duration,
}

impl Backoff {
    pub(super) fn next(&self, current: Duration) -> Duration {
        (current * 2).min(self.max).max(self.initial)
    }
}

/// The text of `error` and its causes, as a status shows it.
pub(super) fn describe(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Runs the instances `start` makes on thread `name` until stopped.
///
/// # Errors
/// The operating system's, when it cannot start the thread.
pub(super) fn spawn(
    name: &str,
    status: SharedStatus,
    backoff: Backoff,
    mut start: Box<Start>,
) -> std::io::Result<Worker> {
    let label = name.to_string();
    Worker::spawn_body(name, move |stop| {
        let mut wait = backoff.initial;
        while !stop.requested() {
            status.lock().state = TaskState::Starting;
            let commits_before = status.lock().commits;
            let failure = match guarded("start", || start(stop)) {
                Ok(None) => break,
                Err(e) => e,
                Ok(Some(mut work)) => {
                    status.lock().state = TaskState::Running;
                    let mut run = Ok(());
                    while run.is_ok() && !stop.requested() {
                        run = guarded("step", || work.step(stop));
                    }
                    match run {
                        Ok(()) => {
                            if let Err(e) = guarded("stop", || work.finish(true)) {
                                tracing::error!(task = %label, error = %e, "embedlog connect: stopping a task failed");
                                status.lock().error = Some(describe(&e));
                            }
                            break;
                        }
                        Err(e) => {
                            if let Err(f) = guarded("release", || work.finish(false)) {
                                tracing::warn!(task = %label, error = %f, "embedlog connect: releasing a failed task failed");
                            }
                            e
                        }
                    }
                }
            };
            if matches!(failure, Error::Log(crate::Error::Closed)) {
                // The broker closed under the runtime: nothing to restart on.
                tracing::warn!(task = %label, "embedlog connect: the broker is closed; the task stops");
                let mut s = status.lock();
                s.state = TaskState::Failed;
                s.error = Some(describe(&failure));
                return;
            }
            tracing::error!(task = %label, error = %failure, retry_in = ?wait, "embedlog connect: task failed; restarting after a backoff");
            {
                let mut s = status.lock();
                s.state = TaskState::Failed;
                s.error = Some(describe(&failure));
                // An instance that committed was healthy for a while: its
                // failure starts the backoff over.
                if s.commits > commits_before {
                    wait = backoff.initial;
                }
            }
            if !stop.sleep(wait) {
                break;
            }
            status.lock().restarts += 1;
            wait = backoff.next(wait);
        }
        status.lock().state = TaskState::Stopped;
    })
}

/// Runs `f`, turning a panic in it (connector code is the caller's) into
/// an error that fails the task like any other.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_string());
            Err(Error::External {
                system: "connector",
                reason: format!("panicked during {what}: {message}"),
                source: None,
            })
        }
    }
}

/// Calls `f` until it succeeds, fails for good, or a stop comes (then
/// `Ok(None)`): a retriable error is retried after a backoff that doubles
/// up to `backoff.max`, for at most `limit` (then it is returned).
pub(super) fn retrying<T>(
    stop: &Stop,
    backoff: Backoff,
    limit: Option<Duration>,
    what: &str,
    mut f: impl FnMut() -> Result<T>,
) -> Result<Option<T>> {
    let deadline = limit.map(|l| std::time::Instant::now() + l);
    let mut wait = backoff.initial;
    loop {
        match f() {
            Ok(v) => return Ok(Some(v)),
            Err(e)
                if e.is_retriable() && deadline.is_none_or(|d| std::time::Instant::now() < d) =>
            {
                tracing::warn!(call = what, error = %e, retry_in = ?wait, "embedlog connect: retrying");
                if !stop.sleep(wait) {
                    return Ok(None);
                }
                wait = backoff.next(wait);
            }
            Err(e) => return Err(e),
        }
    }
}

pub(super) fn new_status(task: usize) -> SharedStatus {
    Arc::new(Mutex::new(TaskStatus::new(task)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Runs until stopped, counting its steps.
    struct Steady {
        steps: Arc<AtomicUsize>,
    }

    impl Work for Steady {
        fn step(&mut self, stop: &Stop) -> Result<()> {
            self.steps.fetch_add(1, Ordering::SeqCst);
            stop.sleep(Duration::from_millis(1));
            Ok(())
        }
        fn finish(self: Box<Self>, _clean: bool) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_instance_is_replaced_after_a_backoff_and_its_error_kept() {
        let status = new_status(0);
        let failures = Arc::new(AtomicUsize::new(3));
        let steps = Arc::new(AtomicUsize::new(0));
        let (f, s) = (failures.clone(), steps.clone());
        let backoff = Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(4),
        };
        // Its first three instances fail to start.
        let start = move |_: &Stop| -> Result<Option<Box<dyn Work>>> {
            if f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(Error::External {
                    system: "test",
                    reason: "down".into(),
                    source: None,
                });
            }
            Ok(Some(Box::new(Steady { steps: s.clone() })))
        };
        let worker = spawn("test-task", status.clone(), backoff, Box::new(start)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while steps.load(Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline, "never ran");
            std::thread::yield_now();
        }
        {
            let s = status.lock();
            assert_eq!(s.state, TaskState::Running);
            assert_eq!(s.restarts, 3);
            assert_eq!(s.error.as_deref(), Some("test: down"));
        }
        worker.stop();
        assert_eq!(status.lock().state, TaskState::Stopped);
    }

    #[test]
    fn retriable_calls_are_retried_and_others_returned() {
        let stop = Stop::default();
        let backoff = Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
        };
        let mut n = 0;
        let r = retrying(&stop, backoff, None, "t", || {
            n += 1;
            if n < 3 {
                Err(Error::Retriable("busy".into()))
            } else {
                Ok(n)
            }
        });
        assert_eq!(r.unwrap(), Some(3));
        let r: Result<Option<()>> = retrying(&stop, backoff, None, "t", || {
            Err(Error::UnknownConnector("x".into()))
        });
        assert!(r.is_err());
        let r: Result<Option<()>> = retrying(&stop, backoff, Some(Duration::ZERO), "t", || {
            Err(Error::Retriable("still busy".into()))
        });
        assert!(r.is_err());
        stop.request();
        let r: Result<Option<()>> = retrying(&stop, backoff, None, "t", || {
            Err(Error::Retriable("x".into()))
        });
        assert_eq!(r.unwrap(), None, "a stop ends the retries");
    }
}
