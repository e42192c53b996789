//! Connect's error type.

use std::path::PathBuf;

/// A `Result` whose error is a Connect [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong running connectors.
///
/// A task that returns an error other than [`Error::Retriable`] is failed:
/// the runtime stops it, records the error in its status and starts a new
/// instance after a backoff. [`Error::Retriable`] asks for the same call to
/// be made again (the same records to `put`, another `poll`) without a
/// restart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A connector's configuration is missing a key or holds a bad value.
    #[error("connector {connector:?}: invalid configuration {key:?}: {reason}")]
    Config {
        /// The connector's name.
        connector: String,
        /// The configuration key.
        key: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },

    /// A configuration file could not be parsed.
    #[error("{path}:{line}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },

    /// `connector.class` names no registered connector.
    #[error("connector {connector:?}: unknown connector.class {class:?}; registered: {known}")]
    UnknownClass {
        /// The connector's name.
        connector: String,
        /// The class asked for.
        class: String,
        /// The classes this runtime knows, comma-separated.
        known: String,
    },

    /// A connector of this name is already running.
    #[error("connector {0:?} is already running; stop it first")]
    AlreadyRunning(String),

    /// No connector of this name is running.
    #[error("no connector named {0:?} is running")]
    UnknownConnector(String),

    /// A converter could not turn bytes into a value, or a value into
    /// bytes.
    #[error("{converter} converter: {reason}")]
    Conversion {
        /// The converter ("json", "string", ...).
        converter: &'static str,
        /// What it could not handle.
        reason: String,
    },

    /// A transform could not apply to a record.
    #[error("transform {transform:?}: {reason}")]
    Transform {
        /// The transform's alias in `transforms`.
        transform: String,
        /// Why.
        reason: String,
    },

    /// The log underneath failed.
    #[error(transparent)]
    Log(#[from] crate::Error),

    /// A file operation failed.
    #[error("I/O error while trying to {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A temporary failure: the runtime makes the same call again after a
    /// backoff, without restarting the task.
    #[error("retriable: {0}")]
    Retriable(String),

    /// A connector's external system failed (a database, a remote
    /// cluster).
    #[error("{system}: {reason}")]
    External {
        /// The system ("sqlite", "kafka", ...).
        system: &'static str,
        /// What it reported.
        reason: String,
        /// The client library's error, where there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// A [`Error::Config`] for `key` of `connector`.
    pub fn config(connector: &str, key: &str, reason: impl Into<String>) -> Error {
        Error::Config {
            connector: connector.to_string(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// An [`Error::External`] with the client library's error as its source.
    pub fn external<E>(system: &'static str, what: &str, source: E) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::External {
            system,
            reason: format!("{what}: {source}"),
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether the runtime retries the call rather than failing the task:
    /// [`Error::Retriable`], and log errors that say so
    /// ([`crate::Error::is_retriable`]).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Retriable(_) => true,
            Error::Log(e) => e.is_retriable(),
            _ => false,
        }
    }
}
