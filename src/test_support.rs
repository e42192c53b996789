//! Helpers for the crate's unit tests.

use parking_lot::Mutex;
use std::fmt::Write as _;
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};

/// Runs `f` with a `tracing` subscriber on this thread that keeps each
/// event as `LEVEL name=value name=value ` (every field followed by a
/// space, strings unquoted; the message is the field `message`). Returns
/// `f`'s result and the events. The library installs no subscriber: this
/// is how a test sees what it reports.
pub(crate) fn capture_events<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let r = tracing::subscriber::with_default(Capture(events.clone()), f);
    let events = events.lock().clone();
    (r, events)
}

/// The events of every thread of this test process, from the moment the
/// first caller installed the process-wide capture. Other tests' events are
/// in it too: look for the ones that name what the test owns (a path, a
/// topic).
pub(crate) fn global_events() -> Arc<Mutex<Vec<String>>> {
    static EVENTS: std::sync::OnceLock<Arc<Mutex<Vec<String>>>> = std::sync::OnceLock::new();
    EVENTS
        .get_or_init(|| {
            let events = Arc::new(Mutex::new(Vec::new()));
            // Fails only if another subscriber was set process-wide first:
            // no test of this crate does that.
            let _ = tracing::subscriber::set_global_default(Capture(events.clone()));
            events
        })
        .clone()
}

struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, "{}={value} ", field.name());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line(format!("{} ", event.metadata().level()));
        event.record(&mut line);
        self.0.lock().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// A waker that counts its wakes (`.0`), for tests of futures.
#[cfg(feature = "async")]
#[derive(Default)]
pub(crate) struct CountingWaker(pub(crate) std::sync::atomic::AtomicUsize);

#[cfg(feature = "async")]
impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
