//! The SQLite connectors (feature `sqlite`): Kafka's JDBC sink and source
//! semantics on an SQLite database file.
//!
//! [`SqliteSinkConnector`] (class `SqliteSink`) upserts each record into a
//! table per topic and deletes rows on tombstones; [`SqliteSourceConnector`]
//! (class `SqliteSource`) turns the new rows of one table into records, in
//! the `incrementing`, `timestamp`, `timestamp+incrementing` and `outbox`
//! modes. Both name the database by `connection.url`: `jdbc:sqlite:/path`,
//! `sqlite:/path` or a plain path.
//!
//! This module holds what both share: the URL, opening a connection,
//! identifier quoting and the mapping between [`Value`]s and SQLite's
//! storage classes.

mod sink;
mod source;

pub use sink::SqliteSinkConnector;
pub use source::SqliteSourceConnector;

use super::error::{Error, Result};
use super::value::Value;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::PathBuf;
use std::time::Duration;

/// `connection.url`, the database file (both connectors).
const CONNECTION_URL: &str = "connection.url";
/// `busy.timeout.ms`: how long a statement waits for another connection's
/// lock before SQLite reports `SQLITE_BUSY`.
const BUSY_TIMEOUT_MS: &str = "busy.timeout.ms";

/// Statements each connection keeps prepared (rusqlite's LRU cache): a sink
/// prepares one per table and column set.
const STATEMENT_CACHE: usize = 64;

/// The database file `url` names: `jdbc:sqlite:<path>`, `sqlite:<path>`
/// (`sqlite:///abs/path` too) or a plain path. An in-memory database
/// (`:memory:`, empty) is refused: nothing would outlive the task.
fn database_path(connector: &str, url: &str) -> Result<PathBuf> {
    let bad = |reason: String| Error::config(connector, CONNECTION_URL, reason);
    let url = url.trim();
    let path = if let Some(rest) = url.strip_prefix("jdbc:sqlite:") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        // `sqlite:///tmp/db` (an authority-less URL) as well as `sqlite:/tmp/db`.
        rest.strip_prefix("//").unwrap_or(rest)
    } else if url.starts_with("jdbc:") {
        return Err(bad(format!(
            "{url:?} is not an SQLite URL; expected jdbc:sqlite:<path>, sqlite:<path> or a path"
        )));
    } else {
        url
    };
    if path.is_empty() || path == ":memory:" || path.starts_with("file::memory:") {
        return Err(bad(format!(
            "{url:?} names no database file (an in-memory database would vanish with the task)"
        )));
    }
    if path.contains('\0') {
        return Err(bad("contains a NUL character".to_string()));
    }
    Ok(PathBuf::from(path))
}

/// How a connector opens its database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// Read and write, creating the file if missing (the sink).
    Create,
    /// Read and write an existing file (the outbox source deletes rows).
    ReadWrite,
    /// Read an existing file; no write can happen by mistake (the other
    /// source modes).
    ReadOnly,
}

/// Opens the database at `path` with the legacy double-quoted string
/// literals turned off (so a quoted identifier that names no column is an
/// error, not a string) and `busy_timeout` for other connections' locks.
fn open(path: &std::path::Path, access: Access, busy_timeout: Duration) -> Result<Connection> {
    let flags = match access {
        Access::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let what = format!("open {}", path.display());
    let conn = Connection::open_with_flags(path, flags).map_err(|e| sql_error(&what, e))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| sql_error(&what, e))?;
    for dqs in [
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML,
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DDL,
    ] {
        conn.set_db_config(dqs, false)
            .map_err(|e| sql_error(&what, e))?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// An SQLite error as a Connect error: `SQLITE_BUSY`/`SQLITE_LOCKED` (another
/// connection holds the lock longer than `busy.timeout.ms`) are
/// [`Error::Retriable`]; anything else is [`Error::External`].
fn sql_error(what: &str, e: rusqlite::Error) -> Error {
    if is_busy(&e) {
        Error::Retriable(format!("sqlite: {what}: {e}"))
    } else {
        Error::external("sqlite", what, e)
    }
}

/// Whether `e` is SQLite's "another connection holds the lock".
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// `name` as an SQL identifier: in double quotes, with each `"` doubled, so
/// any text (from a topic, a map key) names exactly that table or column.
/// NUL, which SQLite would take as the end of the statement, is refused
/// before this is called (see [`check_identifier`]).
fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Why `name` cannot be an SQLite table or column name, if it cannot: it is
/// empty or holds a NUL.
fn check_identifier(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        Err("an empty name cannot be a table or column".to_string())
    } else if name.contains('\0') {
        Err(format!(
            "{name:?} holds a NUL character, which SQLite names cannot"
        ))
    } else {
        Ok(())
    }
}

/// A value bound as an SQL parameter: integers, reals, text and blobs as
/// they are, booleans as 0/1, arrays and maps as their JSON text.
fn to_sql(value: &Value) -> ToSqlOutput<'_> {
    match value {
        Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
        Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
        Value::Float(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
        Value::String(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        Value::Array(_) | Value::Map(_) => {
            ToSqlOutput::Owned(rusqlite::types::Value::Text(value.to_json_string()))
        }
    }
}

/// The declared type of a column created for `value` (its affinity), `None`
/// for a null, which says nothing about the column.
fn sql_type(value: &Value) -> Option<&'static str> {
    match value {
        Value::Null => None,
        Value::Bool(_) | Value::Int(_) => Some("INTEGER"),
        Value::Float(_) => Some("REAL"),
        Value::String(_) | Value::Array(_) | Value::Map(_) => Some("TEXT"),
        Value::Bytes(_) => Some("BLOB"),
    }
}

/// A column's value as a [`Value`]: INTEGER → `Int`, REAL → `Float`, TEXT →
/// `String` (invalid UTF-8 replaced), BLOB → `Bytes`, NULL → `Null`.
fn from_sql(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(bytes::Bytes::copy_from_slice(b)),
    }
}

/// One column of a table, from `pragma_table_info`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Column {
    name: String,
    /// The declared type, as written (may be empty).
    declared_type: String,
    /// Its position in the primary key, from 1; 0 if not part of it.
    pk: u32,
}

/// The columns of `table`, in table order; `None` if there is no such
/// table (or view).
fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Option<Vec<Column>>> {
    let mut stmt = conn.prepare_cached("SELECT name, type, pk FROM pragma_table_info(?1)")?;
    let columns = stmt
        .query_map([table], |row| {
            Ok(Column {
                name: row.get(0)?,
                declared_type: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                pk: row.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((!columns.is_empty()).then_some(columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file() {
        for (url, path) in [
            ("jdbc:sqlite:/tmp/a.db", "/tmp/a.db"),
            ("sqlite:/tmp/a.db", "/tmp/a.db"),
            ("sqlite:///tmp/a.db", "/tmp/a.db"),
            (" /tmp/a.db ", "/tmp/a.db"),
            ("rel/a.db", "rel/a.db"),
        ] {
            assert_eq!(
                database_path("c", url).unwrap(),
                PathBuf::from(path),
                "{url}"
            );
        }
        for url in [
            "",
            "jdbc:sqlite:",
            "jdbc:sqlite::memory:",
            ":memory:",
            "jdbc:postgresql://h/db",
        ] {
            let e = database_path("c", url).unwrap_err().to_string();
            assert!(e.contains("connection.url"), "{url}: {e}");
        }
    }

    #[test]
    fn quoting_keeps_any_name_one_identifier() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("q.db"), Access::Create, Duration::ZERO).unwrap();
        let evil = "x\"; DROP TABLE victim; --";
        conn.execute_batch("CREATE TABLE victim (a)").unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE {} ({} TEXT)",
            quote(evil),
            quote(evil)
        ))
        .unwrap();
        let cols = table_columns(&conn, evil).unwrap().unwrap();
        assert_eq!(cols[0].name, evil);
        assert!(table_columns(&conn, "victim").unwrap().is_some());
        assert!(check_identifier("a\0b").is_err() && check_identifier("").is_err());
    }

    #[test]
    fn double_quoted_strings_are_identifiers_only() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("q.db"), Access::Create, Duration::ZERO).unwrap();
        conn.execute_batch("CREATE TABLE t (a)").unwrap();
        // With the legacy misfeature on, "nope" would be the string 'nope'.
        assert!(conn.execute_batch("SELECT \"nope\" FROM t").is_err());
    }

    /// SqliteSource → topic bytes → SqliteSink with every default: the
    /// copy has the same rows, the key column as INTEGER again.
    #[test]
    fn a_table_round_trips_through_the_default_converters() {
        use crate::connect::{
            ConnectorConfig, OffsetStorageReader, SinkConnector, SinkRecord, SinkTaskContext,
            SourceConnector, SourceTaskContext, converter_named,
        };
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from.db"), dir.path().join("to.db"));
        let app = Connection::open(&from).unwrap();
        app.execute_batch(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT, qty INTEGER, price REAL, note TEXT);
             INSERT INTO orders (item, qty, price, note) VALUES ('tea', 2, 3.5, NULL), ('\"quoted\"', 1, 0.25, 'x');",
        )
        .unwrap();
        let converter = |defaults: &[(&str, &str)], key: &str| {
            let name = defaults.iter().find(|(k, _)| *k == key).unwrap().1;
            converter_named("c", key, name).unwrap()
        };

        let source = SqliteSourceConnector;
        let config = ConnectorConfig::new("src", SqliteSourceConnector::CLASS)
            .set("connection.url", format!("jdbc:sqlite:{}", from.display()))
            .set("table", "orders")
            .set("mode", "incrementing");
        let mut task = source.task();
        task.start(&SourceTaskContext {
            config,
            task: 0,
            offsets: OffsetStorageReader::default(),
            admin: None,
        })
        .unwrap();
        let records = task.poll().unwrap();
        assert_eq!(records.len(), 2);
        let (key_out, value_out) = (
            converter(&source.defaults(), "key.converter"),
            converter(&source.defaults(), "value.converter"),
        );
        let stored: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    key_out.to_bytes(r.record.key.as_ref()).unwrap(),
                    value_out.to_bytes(r.record.value.as_ref()).unwrap(),
                )
            })
            .collect();

        let sink = SqliteSinkConnector;
        let (key_in, value_in) = (
            converter(&sink.defaults(), "key.converter"),
            converter(&sink.defaults(), "value.converter"),
        );
        let config = ConnectorConfig::new("sink", SqliteSinkConnector::CLASS)
            .set("connection.url", to.display());
        let mut task = sink.task();
        task.start(&SinkTaskContext {
            config,
            task: 0,
            admin: None,
        })
        .unwrap();
        let sink_records: Vec<SinkRecord> = stored
            .iter()
            .enumerate()
            .map(|(i, (k, v))| SinkRecord {
                topic: "orders".to_string(),
                partition: 0,
                offset: i as u64,
                timestamp: 0,
                key: key_in.to_value(k.as_ref()).unwrap(),
                value: value_in.to_value(v.as_ref()).unwrap(),
                headers: Vec::new(),
            })
            .collect();
        task.put(&sink_records).unwrap();
        task.flush(&Default::default()).unwrap();
        task.stop();

        let dump = |db: &std::path::Path| -> Vec<Vec<rusqlite::types::Value>> {
            let conn = Connection::open(db).unwrap();
            let mut stmt = conn
                .prepare("SELECT id, item, qty, price, note, typeof(id) FROM orders ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| (0..6).map(|i| r.get(i)).collect())
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        assert_eq!(dump(&to), dump(&from));
    }
}
