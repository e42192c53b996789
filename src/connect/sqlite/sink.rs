//! [`SqliteSinkConnector`]: records into SQLite tables, as Kafka's JDBC
//! sink writes them into a database.

use super::{
    Access, BUSY_TIMEOUT_MS, CONNECTION_URL, Column, check_identifier, database_path, is_busy,
    open, quote, sql_error, sql_type, table_columns, to_sql,
};
use crate::connect::config::ConnectorConfig;
use crate::connect::error::{Error, Result};
use crate::connect::spi::{SinkConnector, SinkRecord, SinkTask, SinkTaskContext};
use crate::connect::value::Value;
use crate::{Offset, TopicPartition};
use rusqlite::Connection;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

const TABLE_NAME_FORMAT: &str = "table.name.format";
const PK_MODE: &str = "pk.mode";
const PK_FIELDS: &str = "pk.fields";
const INSERT_MODE: &str = "insert.mode";
const DELETE_ENABLED: &str = "delete.enabled";
const AUTO_CREATE: &str = "auto.create";
const AUTO_EVOLVE: &str = "auto.evolve";

/// `table.name.format`'s placeholder for the record's topic.
const TOPIC_PLACEHOLDER: &str = "${topic}";
/// The column of a primitive key or a primary-key value field when
/// `pk.fields` is unset.
const DEFAULT_PK_FIELD: &str = "id";
/// The column a value that is not a map goes to.
const VALUE_COLUMN: &str = "value";
/// `pk.mode=kafka`'s columns when `pk.fields` is unset (JDBC's names).
const KAFKA_PK_FIELDS: [&str; 3] = ["__connect_topic", "__connect_partition", "__connect_offset"];
/// The sink's default `busy.timeout.ms`: how long a write waits for
/// another connection's lock before the put is retried.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes records into tables of an SQLite database, with the semantics of
/// Kafka's JDBC sink connector. Class name `SqliteSink`.
///
/// Each record becomes a row of the table `table.name.format` names (by
/// default the topic's name): a map value gives one column per field, any
/// other value a single column `value`. By default (`pk.mode=record_key`,
/// `insert.mode=upsert`) the record key is the row's primary key and the
/// row is inserted or, if the key is there, replaced; a tombstone deletes
/// it. So after the records are applied the table holds the latest value
/// of each key, as a compacted topic does.
///
/// ```text
/// name=orders-to-sqlite
/// connector.class=SqliteSink
/// topics=orders
/// connection.url=jdbc:sqlite:/var/lib/app/orders.db
/// pk.fields=order_id
/// ```
///
/// # Configuration
///
/// | key | default | meaning |
/// |-----|---------|---------|
/// | `connection.url` | required | `jdbc:sqlite:<path>`, `sqlite:<path>` or a path; the file is created if missing |
/// | `table.name.format` | `${topic}` | the table, `${topic}` replaced by the record's topic |
/// | `pk.mode` | `record_key` | where the primary key comes from: `record_key`, `record_value`, `kafka` (topic, partition, offset) or `none` |
/// | `pk.fields` | see below | the primary-key columns, comma-separated |
/// | `insert.mode` | `upsert` | `upsert` (insert or replace by primary key) or `insert` |
/// | `delete.enabled` | `true` with `pk.mode=record_key`, else `false` | a tombstone deletes the key's row (else it is skipped); needs `pk.mode=record_key` |
/// | `auto.create` | `true` | create a missing table from the record |
/// | `auto.evolve` | `true` | add a missing column (`ALTER TABLE … ADD COLUMN`) |
/// | `busy.timeout.ms` | `5000` | how long a write waits for another connection's lock; then the put is retried |
///
/// `pk.fields` by `pk.mode`: `record_key` with a map key, the key's fields
/// to use (default all of them); with any other key, the one column that
/// holds it (default `id`). `record_value`: the value's fields that form
/// the key (default `id`). `kafka`: the three column names (default
/// `__connect_topic,__connect_partition,__connect_offset`). `none`: not
/// allowed. Under `record_key` a value field with a primary-key column's
/// name is not written (the key is).
///
/// Defaults set by the class: `key.converter=string` and
/// `value.converter=json`. JSON values give the columns; string keys make
/// plain text keys work, and read the keys [`SqliteSourceConnector`](crate::connect::SqliteSourceConnector)
/// writes with the same default. Set `key.converter=json` for a map key
/// (a composite primary key).
///
/// # Types
///
/// A column created for a value is declared `INTEGER` for an integer or
/// boolean (stored 0/1), `REAL` for a float, `TEXT` for a string, `BLOB`
/// for bytes, and `TEXT` for an array or map (its JSON). A null neither
/// creates nor adds a column. A primitive key's column takes the type of
/// the value's field of the same name when the value has one (a
/// [`SqliteSourceConnector`](crate::connect::SqliteSourceConnector) row carries its key column), else the key's
/// own: so the text key `"7"` of a row whose `id` is 7 lands in an
/// `INTEGER` column as 7, by SQLite's type affinity. Table and column
/// names are quoted, so any name (with `"`, spaces, `;`) is exactly that
/// name; SQLite compares them without ASCII case. A `.` in a table name is
/// part of the name, not a schema qualifier.
///
/// # Writing and durability
///
/// The first `put` after a flush opens a transaction (`BEGIN IMMEDIATE`,
/// taking SQLite's write lock); `flush` commits it. Each `put` is atomic:
/// a failure rolls back that put's records and leaves the earlier ones
/// pending. The database is put in WAL mode with `synchronous=FULL`, so
/// the commit is on disk when `flush` returns and the runtime commits
/// the offsets: with `NORMAL`, a power loss could drop the last commits
/// after their offsets were stored, losing those records for good. The
/// cost is one fsync per flush, not per record. Other writers to the same
/// database wait for the transaction (up to their busy timeout), so keep
/// `offset.flush.interval.ms` short when an application writes the file
/// too. The connector runs one task whatever `tasks.max` says: SQLite has
/// one writer at a time.
///
/// An upsert replaces the whole row: `INSERT … ON CONFLICT (pk) DO UPDATE
/// SET` every other column of the table to the record's value, or its
/// default (NULL unless declared otherwise) when the record has no such
/// field. Records are applied in order, so the last one of a key wins.
///
/// # Redelivery
///
/// After a crash the runtime delivers the records since the last commit
/// again. Upserts and deletes by key are idempotent: the table ends the
/// same. `insert.mode=insert` is not: with a primary key a repeated row
/// violates it (the put fails with SQLite's `UNIQUE constraint failed`,
/// naming the record; `errors.tolerance` decides), and with `pk.mode=none`
/// the row is inserted twice. `pk.mode=kafka` with `insert.mode=upsert`
/// appends every record exactly once.
///
/// # Errors for bad records
///
/// A record the configuration cannot place (no key under `record_key`, a
/// map key or value without a `pk.fields` field, a null key field, a value
/// that is not a map under `record_value`) fails the put with an
/// [`Error::External`] naming `topic/partition@offset` and what is
/// missing.
#[derive(Clone, Copy, Debug, Default)]
pub struct SqliteSinkConnector;

impl SqliteSinkConnector {
    /// The `connector.class` of this connector.
    pub const CLASS: &'static str = "SqliteSink";
}

impl SinkConnector for SqliteSinkConnector {
    fn validate(&self, config: &ConnectorConfig) -> Result<()> {
        SinkSettings::from_config(config).map(drop)
    }

    fn defaults(&self) -> Vec<(&'static str, &'static str)> {
        vec![("key.converter", "string"), ("value.converter", "json")]
    }

    /// One task, whatever `max_tasks`: SQLite has a single writer, so a
    /// second task would only wait for the first one's transaction.
    fn task_configs(
        &self,
        config: &ConnectorConfig,
        max_tasks: usize,
    ) -> Result<Vec<ConnectorConfig>> {
        let _ = max_tasks;
        self.validate(config)?;
        Ok(vec![config.clone()])
    }

    fn task(&self) -> Box<dyn SinkTask> {
        Box::new(SqliteSinkTask::default())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PkMode {
    RecordKey,
    RecordValue,
    Kafka,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InsertMode {
    Upsert,
    Insert,
}

/// The sink's configuration, checked.
#[derive(Clone, Debug)]
struct SinkSettings {
    path: PathBuf,
    table_format: String,
    pk_mode: PkMode,
    /// `pk.fields` as set; `None` for the mode's default.
    pk_fields: Option<Vec<String>>,
    insert_mode: InsertMode,
    delete_enabled: bool,
    auto_create: bool,
    auto_evolve: bool,
    busy_timeout: Duration,
}

/// A boolean configuration key (`true`/`false`, any case).
fn flag(config: &ConnectorConfig, key: &str, default: bool) -> Result<bool> {
    let default = if default { "true" } else { "false" };
    Ok(config.choice_or(key, &["true", "false"], default)? == "true")
}

impl SinkSettings {
    fn from_config(config: &ConnectorConfig) -> Result<Self> {
        let name = config.name();
        let bad = |key: &str, reason: String| Error::config(name, key, reason);
        let path = database_path(name, config.required(CONNECTION_URL)?)?;
        let table_format = config
            .get(TABLE_NAME_FORMAT)
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .unwrap_or(TOPIC_PLACEHOLDER)
            .to_string();
        if table_format.contains('\0') {
            return Err(bad(TABLE_NAME_FORMAT, "contains a NUL character".into()));
        }
        let pk_mode = match config.choice_or(
            PK_MODE,
            &["record_key", "record_value", "kafka", "none"],
            "record_key",
        )? {
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            "kafka" => PkMode::Kafka,
            _ => PkMode::None,
        };
        let pk_fields = config.get(PK_FIELDS).map(|_| config.list(PK_FIELDS));
        let pk_fields = pk_fields.filter(|f| !f.is_empty());
        if let Some(fields) = &pk_fields {
            let mut seen = HashSet::new();
            for f in fields {
                check_identifier(f).map_err(|r| bad(PK_FIELDS, r))?;
                if !seen.insert(f.to_ascii_lowercase()) {
                    return Err(bad(PK_FIELDS, format!("names {f:?} twice")));
                }
            }
            match pk_mode {
                PkMode::None => {
                    return Err(bad(
                        PK_FIELDS,
                        "pk.mode=none has no primary key; unset pk.fields or choose a pk.mode"
                            .into(),
                    ));
                }
                PkMode::Kafka if fields.len() != 3 => {
                    return Err(bad(
                        PK_FIELDS,
                        format!(
                            "pk.mode=kafka needs three names (topic, partition, offset columns), not {}",
                            fields.len()
                        ),
                    ));
                }
                _ => {}
            }
        }
        let insert_mode = match config.choice_or(INSERT_MODE, &["upsert", "insert"], "upsert")? {
            "upsert" => InsertMode::Upsert,
            _ => InsertMode::Insert,
        };
        if insert_mode == InsertMode::Upsert && pk_mode == PkMode::None {
            return Err(bad(
                INSERT_MODE,
                "upsert needs a primary key and pk.mode=none has none; set insert.mode=insert or a pk.mode"
                    .into(),
            ));
        }
        let delete_enabled = flag(config, DELETE_ENABLED, pk_mode == PkMode::RecordKey)?;
        if delete_enabled && pk_mode != PkMode::RecordKey {
            return Err(bad(
                DELETE_ENABLED,
                "deletes need pk.mode=record_key (a tombstone has only its key)".into(),
            ));
        }
        Ok(SinkSettings {
            path,
            table_format,
            pk_mode,
            pk_fields,
            insert_mode,
            delete_enabled,
            auto_create: flag(config, AUTO_CREATE, true)?,
            auto_evolve: flag(config, AUTO_EVOLVE, true)?,
            busy_timeout: config.duration_ms_or(BUSY_TIMEOUT_MS, DEFAULT_BUSY_TIMEOUT)?,
        })
    }

    /// The table a record of `topic` goes to.
    fn table(&self, topic: &str) -> String {
        self.table_format.replace(TOPIC_PLACEHOLDER, topic)
    }
}

/// An error about one record: what is wrong with it, and where it is.
fn bad_record(record: &SinkRecord, reason: impl std::fmt::Display) -> Error {
    Error::External {
        system: "sqlite",
        reason: format!(
            "record {}/{}@{}: {reason}",
            record.topic, record.partition, record.offset
        ),
        source: None,
    }
}

/// An SQLite failure while writing `record`.
fn write_error(record: &SinkRecord, table: &str, e: rusqlite::Error) -> Error {
    sql_error(
        &format!(
            "record {}/{}@{}: writing table {table:?}",
            record.topic, record.partition, record.offset
        ),
        e,
    )
}

/// A record laid out as a row: primary-key columns and other columns, each
/// with its value.
struct Row<'r> {
    pk: Vec<(Cow<'r, str>, Cow<'r, Value>)>,
    /// The declared type for each primary-key column, were it created.
    pk_types: Vec<Option<&'static str>>,
    data: Vec<(&'r str, &'r Value)>,
}

impl<'r> Row<'r> {
    /// The row `record` (whose value is `value`) makes under `settings`.
    fn new(
        settings: &'r SinkSettings,
        record: &'r SinkRecord,
        value: &'r Value,
    ) -> std::result::Result<Self, String> {
        let (pk, pk_types) = match settings.pk_mode {
            PkMode::RecordKey => key_columns(settings, record.key.as_ref(), Some(value))?,
            PkMode::RecordValue => {
                let Value::Map(fields) = value else {
                    return Err(format!(
                        "pk.mode=record_value needs a map value, not a {}",
                        value.kind()
                    ));
                };
                let names = field_names(settings, DEFAULT_PK_FIELD);
                let mut pk = Vec::with_capacity(names.len());
                let mut types = Vec::with_capacity(names.len());
                for name in names {
                    let v = match fields.get(name) {
                        None => return Err(format!("the value has no field {name:?} (pk.fields)")),
                        Some(Value::Null) => {
                            return Err(format!("the value's field {name:?} (pk.fields) is null"));
                        }
                        Some(v) => v,
                    };
                    types.push(sql_type(v));
                    pk.push((Cow::Borrowed(name), Cow::Borrowed(v)));
                }
                (pk, types)
            }
            PkMode::Kafka => {
                let names: Vec<&str> = match &settings.pk_fields {
                    Some(f) => f.iter().map(String::as_str).collect(),
                    None => KAFKA_PK_FIELDS.to_vec(),
                };
                let values = [
                    Value::from(record.topic.as_str()),
                    Value::Int(i64::from(record.partition)),
                    Value::from(record.offset),
                ];
                let types = values.iter().map(sql_type).collect();
                let pk = names
                    .into_iter()
                    .zip(values)
                    .map(|(n, v)| (Cow::Borrowed(n), Cow::Owned(v)))
                    .collect();
                (pk, types)
            }
            PkMode::None => (Vec::new(), Vec::new()),
        };
        let data: Vec<(&str, &Value)> = match value {
            // A field named as a key column is the key's (under
            // record_value it is the key already).
            Value::Map(fields) => fields
                .iter()
                .filter(|(name, _)| !pk.iter().any(|(p, _)| p.eq_ignore_ascii_case(name)))
                .map(|(name, v)| (name.as_str(), v))
                .collect(),
            other => vec![(VALUE_COLUMN, other)],
        };
        let row = Row { pk, pk_types, data };
        row.check_names()?;
        Ok(row)
    }

    /// Every column is a valid name and none repeats (SQLite compares
    /// names without ASCII case).
    fn check_names(&self) -> std::result::Result<(), String> {
        let mut seen = HashSet::new();
        let names = self.pk.iter().map(|(n, _)| n.as_ref());
        for name in names.chain(self.data.iter().map(|(n, _)| *n)) {
            check_identifier(name)?;
            if !seen.insert(name.to_ascii_lowercase()) {
                return Err(format!(
                    "two fields name column {name:?} (SQLite ignores ASCII case in names)"
                ));
            }
        }
        Ok(())
    }
}

/// `pk.fields`, or `default` alone when unset.
fn field_names<'s>(settings: &'s SinkSettings, default: &'s str) -> Vec<&'s str> {
    match &settings.pk_fields {
        Some(f) => f.iter().map(String::as_str).collect(),
        None => vec![default],
    }
}

type KeyColumns<'r> = (
    Vec<(Cow<'r, str>, Cow<'r, Value>)>,
    Vec<Option<&'static str>>,
);

/// The primary-key columns a record key gives under `pk.mode=record_key`.
/// `value`, when a map, lends a primitive key's column its type.
fn key_columns<'r>(
    settings: &'r SinkSettings,
    key: Option<&'r Value>,
    value: Option<&'r Value>,
) -> std::result::Result<KeyColumns<'r>, String> {
    match key {
        None | Some(Value::Null) => Err(
            "the record has no key; pk.mode=record_key takes the primary key from it".to_string(),
        ),
        Some(Value::Map(fields)) => {
            let names: Vec<&str> = match &settings.pk_fields {
                Some(f) => f.iter().map(String::as_str).collect(),
                None => fields.keys().map(String::as_str).collect(),
            };
            if names.is_empty() {
                return Err("the key is an empty map: no primary-key columns".to_string());
            }
            let mut pk = Vec::with_capacity(names.len());
            let mut types = Vec::with_capacity(names.len());
            for name in names {
                let v = match fields.get(name) {
                    None => return Err(format!("the key has no field {name:?} (pk.fields)")),
                    Some(Value::Null) => {
                        return Err(format!("the key's field {name:?} is null"));
                    }
                    Some(v) => v,
                };
                types.push(sql_type(v));
                pk.push((Cow::Borrowed(name), Cow::Borrowed(v)));
            }
            Ok((pk, types))
        }
        Some(key) => {
            let names = field_names(settings, DEFAULT_PK_FIELD);
            let [name] = names[..] else {
                return Err(format!(
                    "a {} key fills one column, but pk.fields names {}",
                    key.kind(),
                    names.len()
                ));
            };
            let typed_by_value = value
                .and_then(|v| v.get(name))
                .and_then(sql_type)
                .or_else(|| sql_type(key));
            Ok((
                vec![(Cow::Borrowed(name), Cow::Borrowed(key))],
                vec![typed_by_value],
            ))
        }
    }
}

/// What the task knows of a table within the current transaction.
#[derive(Clone, Debug)]
struct Table {
    columns: Vec<Column>,
    /// Lower-cased column names.
    names: HashSet<String>,
    /// The last write statement: the columns it sets, in order, how many
    /// of them are the primary key, and its SQL. Records of one topic
    /// mostly have the same fields, so the SQL is built once, not per
    /// record. Cleared when a column is added (an upsert's SET names every
    /// column).
    last_write: Option<(Vec<String>, usize, String)>,
}

impl Table {
    fn new(columns: Vec<Column>) -> Self {
        let names = columns
            .iter()
            .map(|c| c.name.to_ascii_lowercase())
            .collect();
        Table {
            columns,
            names,
            last_write: None,
        }
    }

    fn has(&self, name: &str) -> bool {
        // A few columns: compare in place rather than lower-case a copy
        // and hash it.
        if self.columns.len() <= 16 {
            return self
                .columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(name));
        }
        self.names.contains(&name.to_ascii_lowercase())
    }
}

/// A running sink task.
#[derive(Default)]
struct SqliteSinkTask {
    settings: Option<SinkSettings>,
    conn: Option<Connection>,
    /// Tables as loaded in the current transaction (emptied when one
    /// begins or rolls back: another connection, or the rollback, may have
    /// changed them).
    tables: HashMap<String, Table>,
    /// Records were put since the last flush: a transaction holds them.
    pending: bool,
    /// SQLite rolled back the transaction holding pending records (after an
    /// I/O error, a full disk): they are gone, so every call fails until
    /// the runtime restarts the task and delivers them again.
    lost: Option<String>,
}

impl SqliteSinkTask {
    fn parts(&mut self) -> Result<(&SinkSettings, &Connection, &mut HashMap<String, Table>)> {
        match (&self.settings, &self.conn) {
            (Some(s), Some(c)) => Ok((s, c, &mut self.tables)),
            _ => Err(Error::External {
                system: "sqlite",
                reason: "the sink task was used before start".to_string(),
                source: None,
            }),
        }
    }

    /// Fails if SQLite dropped records put since the last flush.
    fn check_not_lost(&mut self) -> Result<()> {
        if self.lost.is_none()
            && self.pending
            && self.conn.as_ref().is_some_and(Connection::is_autocommit)
        {
            self.lost = Some("SQLite ended the transaction on its own".to_string());
        }
        match &self.lost {
            None => Ok(()),
            Some(why) => Err(Error::External {
                system: "sqlite",
                reason: format!(
                    "the transaction holding the records put since the last flush was rolled back ({why}); \
                     failing so the runtime restarts the task and delivers them again"
                ),
                source: None,
            }),
        }
    }
}

impl SinkTask for SqliteSinkTask {
    fn start(&mut self, context: &SinkTaskContext) -> Result<()> {
        let settings = SinkSettings::from_config(&context.config)?;
        let conn = open(&settings.path, Access::Create, settings.busy_timeout)?;
        let what = format!("set up {}", settings.path.display());
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(|e| sql_error(&what, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                path = %settings.path.display(),
                journal_mode = %mode,
                "SQLite sink: the database is not in WAL mode; readers and the sink will block each other"
            );
        }
        conn.execute_batch("PRAGMA synchronous=FULL")
            .map_err(|e| sql_error(&what, e))?;
        self.settings = Some(settings);
        self.conn = Some(conn);
        self.tables.clear();
        self.pending = false;
        self.lost = None;
        Ok(())
    }

    fn put(&mut self, records: &[SinkRecord]) -> Result<()> {
        self.check_not_lost()?;
        let pending = self.pending;
        let (settings, conn, tables) = self.parts()?;
        if records.is_empty() {
            return Ok(());
        }
        if conn.is_autocommit() {
            // BEGIN IMMEDIATE takes the write lock now, so no statement of
            // the transaction waits for it later; busy → Retriable with
            // nothing applied.
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| sql_error("begin a transaction", e))?;
            tables.clear();
        }
        conn.execute_batch("SAVEPOINT embedlog_put")
            .map_err(|e| sql_error("begin a put", e))?;
        let applied = records
            .iter()
            .try_for_each(|r| apply(settings, conn, tables, r));
        match applied {
            Ok(()) => {
                conn.execute_batch("RELEASE embedlog_put")
                    .map_err(|e| sql_error("end a put", e))?;
                self.pending = true;
                Ok(())
            }
            Err(e) => {
                // Undo this put only (its tables and columns too).
                let _ = conn.execute_batch("ROLLBACK TO embedlog_put; RELEASE embedlog_put");
                tables.clear();
                if !pending && !conn.is_autocommit() {
                    // Nothing else in the transaction: free the write lock.
                    let _ = conn.execute_batch("ROLLBACK");
                }
                if pending && conn.is_autocommit() {
                    self.lost = Some(e.to_string());
                    return Err(self.check_not_lost().err().unwrap_or(e));
                }
                Err(e)
            }
        }
    }

    fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, Offset>) -> Result<()> {
        self.check_not_lost()?;
        let (_, conn, tables) = self.parts()?;
        if !conn.is_autocommit()
            && let Err(e) = conn.execute_batch("COMMIT")
        {
            if is_busy(&e) && !conn.is_autocommit() {
                // Readers held the file longer than busy.timeout.ms (in
                // rollback-journal mode): the transaction is intact, so a
                // later flush can commit it.
                return Err(sql_error("commit", e));
            }
            let _ = conn.execute_batch("ROLLBACK");
            tables.clear();
            self.pending = false;
            self.lost = Some(format!("COMMIT failed: {e}"));
            return Err(sql_error("commit", e));
        }
        self.pending = false;
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !conn.is_autocommit()
        {
            // Not flushed, so not committed: the runtime delivers these
            // records again.
            let _ = conn.execute_batch("ROLLBACK");
        }
        self.tables.clear();
        self.pending = false;
    }
}

/// Applies one record inside the open transaction.
fn apply(
    settings: &SinkSettings,
    conn: &Connection,
    tables: &mut HashMap<String, Table>,
    record: &SinkRecord,
) -> Result<()> {
    let table = settings.table(&record.topic);
    check_identifier(&table).map_err(|r| bad_record(record, format!("table name: {r}")))?;
    match &record.value {
        None | Some(Value::Null) => {
            if settings.delete_enabled {
                delete(settings, conn, tables, record, &table)
            } else {
                Ok(())
            }
        }
        Some(value) => {
            let row = Row::new(settings, record, value).map_err(|r| bad_record(record, r))?;
            write(settings, conn, tables, record, &table, &row)
        }
    }
}

/// Deletes the row of a tombstone's key (nothing if there is no table).
fn delete(
    settings: &SinkSettings,
    conn: &Connection,
    tables: &mut HashMap<String, Table>,
    record: &SinkRecord,
    table: &str,
) -> Result<()> {
    let (pk, _) = key_columns(settings, record.key.as_ref(), None)
        .map_err(|r| bad_record(record, format!("tombstone: {r}")))?;
    let Some(info) = load_table(conn, tables, record, table)? else {
        return Ok(());
    };
    if let Some((missing, _)) = pk.iter().find(|(c, _)| !info.has(c)) {
        return Err(bad_record(
            record,
            format!("tombstone: table {table:?} has no primary-key column {missing:?}"),
        ));
    }
    let condition: Vec<String> = pk
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{} = ?{}", quote(c), i + 1))
        .collect();
    let sql = format!(
        "DELETE FROM {} WHERE {}",
        quote(table),
        condition.join(" AND ")
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(|e| write_error(record, table, e))?;
    stmt.execute(rusqlite::params_from_iter(
        pk.iter().map(|(_, v)| to_sql(v)),
    ))
    .map_err(|e| write_error(record, table, e))?;
    Ok(())
}

/// The table's columns, from the cache or the database; `None` if it does
/// not exist.
fn load_table<'t>(
    conn: &Connection,
    tables: &'t mut HashMap<String, Table>,
    record: &SinkRecord,
    table: &str,
) -> Result<Option<&'t mut Table>> {
    if !tables.contains_key(table) {
        match table_columns(conn, table).map_err(|e| write_error(record, table, e))? {
            Some(columns) => {
                tables.insert(table.to_string(), Table::new(columns));
            }
            None => return Ok(None),
        }
    }
    Ok(tables.get_mut(table))
}

/// Inserts or upserts `row`, creating the table and adding columns first
/// as configured.
fn write(
    settings: &SinkSettings,
    conn: &Connection,
    tables: &mut HashMap<String, Table>,
    record: &SinkRecord,
    table: &str,
    row: &Row<'_>,
) -> Result<()> {
    if load_table(conn, tables, record, table)?.is_none() {
        if !settings.auto_create {
            return Err(bad_record(
                record,
                format!("table {table:?} does not exist and auto.create=false"),
            ));
        }
        create_table(conn, record, table, row)?;
    }
    let Some(info) = load_table(conn, tables, record, table)? else {
        return Err(bad_record(
            record,
            format!("table {table:?} is missing right after its creation"),
        ));
    };
    for (name, _) in &row.pk {
        if !info.has(name) {
            return Err(bad_record(
                record,
                format!("table {table:?} has no primary-key column {name:?}"),
            ));
        }
    }
    for (name, value) in &row.data {
        if info.has(name) {
            continue;
        }
        let Some(ty) = sql_type(value) else { continue };
        if !settings.auto_evolve {
            return Err(bad_record(
                record,
                format!("table {table:?} has no column {name:?} and auto.evolve=false"),
            ));
        }
        let sql = format!(
            "ALTER TABLE {} ADD COLUMN {} {ty}",
            quote(table),
            quote(name)
        );
        conn.execute_batch(&sql)
            .map_err(|e| write_error(record, table, e))?;
        info.names.insert(name.to_ascii_lowercase());
        info.last_write = None;
        info.columns.push(Column {
            name: (*name).to_string(),
            declared_type: ty.to_string(),
            pk: 0,
        });
    }

    // The columns this record sets: its key and every field that has a
    // column (a null field without one has nothing to set).
    let mut names: Vec<&str> = row.pk.iter().map(|(n, _)| n.as_ref()).collect();
    let mut values: Vec<&Value> = row.pk.iter().map(|(_, v)| v.as_ref()).collect();
    for (name, value) in &row.data {
        if info.has(name) {
            names.push(name);
            values.push(value);
        }
    }
    let same = info.last_write.as_ref().is_some_and(|(cols, pk, _)| {
        *pk == row.pk.len()
            && cols.len() == names.len()
            && cols.iter().zip(&names).all(|(a, b)| a == b)
    });
    if !same {
        let sql = write_sql(settings, info, table, row, &names);
        let cols = names.iter().map(|n| (*n).to_string()).collect();
        info.last_write = Some((cols, row.pk.len(), sql));
    }
    let sql = info
        .last_write
        .as_ref()
        .map_or("", |(_, _, sql)| sql.as_str());
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(|e| write_error(record, table, e))?;
    stmt.execute(rusqlite::params_from_iter(values.into_iter().map(to_sql)))
        .map_err(|e| write_error(record, table, e))?;
    Ok(())
}

/// The INSERT (or upsert) of `names` into `table`.
fn write_sql(
    settings: &SinkSettings,
    info: &Table,
    table: &str,
    row: &Row<'_>,
    names: &[&str],
) -> String {
    let mut sql = format!("INSERT INTO {}", quote(table));
    if names.is_empty() {
        sql.push_str(" DEFAULT VALUES");
    } else {
        let columns: Vec<String> = names.iter().map(|n| quote(n)).collect();
        let params: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        sql.push_str(&format!(
            " ({}) VALUES ({})",
            columns.join(", "),
            params.join(", ")
        ));
    }
    if settings.insert_mode == InsertMode::Upsert && !row.pk.is_empty() {
        let pk: Vec<String> = row.pk.iter().map(|(n, _)| quote(n)).collect();
        let is_pk = |c: &str| row.pk.iter().any(|(p, _)| p.eq_ignore_ascii_case(c));
        // Every other column of the table takes the record's value, or
        // its default when the record lacks it: the row becomes the record.
        let set: Vec<String> = info
            .columns
            .iter()
            .filter(|c| !is_pk(&c.name))
            .map(|c| format!("{0} = excluded.{0}", quote(&c.name)))
            .collect();
        sql.push_str(&format!(" ON CONFLICT ({}) DO ", pk.join(", ")));
        if set.is_empty() {
            sql.push_str("NOTHING");
        } else {
            sql.push_str(&format!("UPDATE SET {}", set.join(", ")));
        }
    }
    sql
}

/// `CREATE TABLE` for `row`: its key columns (the primary key) and its
/// non-null fields.
fn create_table(conn: &Connection, record: &SinkRecord, table: &str, row: &Row<'_>) -> Result<()> {
    let mut columns = Vec::new();
    for ((name, _), ty) in row.pk.iter().zip(&row.pk_types) {
        // NOT NULL: SQLite lets a NULL into a primary key that is not an
        // INTEGER PRIMARY KEY, where ON CONFLICT would never match it.
        columns.push(format!("{} {} NOT NULL", quote(name), ty.unwrap_or("")));
    }
    for (name, value) in &row.data {
        if let Some(ty) = sql_type(value) {
            columns.push(format!("{} {ty}", quote(name)));
        }
    }
    if columns.is_empty() {
        return Err(bad_record(
            record,
            format!("cannot create table {table:?}: the record has no key and no non-null field"),
        ));
    }
    if !row.pk.is_empty() {
        let pk: Vec<String> = row.pk.iter().map(|(n, _)| quote(n)).collect();
        columns.push(format!("PRIMARY KEY ({})", pk.join(", ")));
    }
    let sql = format!("CREATE TABLE {} ({})", quote(table), columns.join(", "));
    conn.execute_batch(&sql)
        .map_err(|e| write_error(record, table, e))?;
    tracing::info!(table, "SQLite sink: created table");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rusqlite::types::Value as Sql;
    use std::path::Path;

    type Row = BTreeMap<String, Sql>;

    fn config(db: &Path) -> ConnectorConfig {
        ConnectorConfig::new("sink", SqliteSinkConnector::CLASS)
            .set(CONNECTION_URL, format!("jdbc:sqlite:{}", db.display()))
    }

    fn started(config: ConnectorConfig) -> SqliteSinkTask {
        let mut task = SqliteSinkTask::default();
        task.start(&SinkTaskContext {
            config,
            task: 0,
            admin: None,
        })
        .unwrap();
        task
    }

    fn record(topic: &str, offset: Offset, key: Option<Value>, value: Option<Value>) -> SinkRecord {
        SinkRecord {
            topic: topic.to_string(),
            partition: 0,
            offset,
            timestamp: 0,
            key,
            value,
            headers: Vec::new(),
        }
    }

    fn kv(offset: Offset, key: &str, value: Option<Value>) -> SinkRecord {
        record("t", offset, Some(Value::from(key)), value)
    }

    fn flush(task: &mut SqliteSinkTask) {
        task.flush(&BTreeMap::new()).unwrap();
    }

    /// Every row of `table` as seen by another connection, ordered by its
    /// first column.
    fn rows(db: &Path, table: &str) -> Vec<Row> {
        let conn = Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {} ORDER BY 1", quote(table)))
            .unwrap();
        let names: Vec<String> = stmt.column_names().map(String::from).collect();
        stmt.query_map([], |row| {
            Ok(names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), row.get::<_, Sql>(i).unwrap()))
                .collect())
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }

    fn row(fields: &[(&str, Sql)]) -> Row {
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    fn declared_types(db: &Path, table: &str) -> Vec<(String, String)> {
        let conn = Connection::open(db).unwrap();
        table_columns(&conn, table)
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|c| (c.name, c.declared_type))
            .collect()
    }

    fn text(s: &str) -> Sql {
        Sql::Text(s.to_string())
    }

    #[test]
    fn upserts_replace_rows_and_tombstones_delete_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut task = started(config(&db));
        let ab = |a: i64, b: &str| Some(Value::map([("a", Value::Int(a)), ("b", Value::from(b))]));
        task.put(&[
            kv(0, "k1", ab(1, "x")),
            kv(1, "k2", ab(2, "y")),
            kv(2, "k1", Some(Value::map([("a", Value::Int(3))]))),
        ])
        .unwrap();
        assert!(
            table_columns(&Connection::open(&db).unwrap(), "t")
                .unwrap()
                .is_none(),
            "nothing is visible before flush"
        );
        flush(&mut task);
        assert_eq!(
            rows(&db, "t"),
            [
                // The row became the last record: b, which it lacks, is NULL.
                row(&[("id", text("k1")), ("a", Sql::Integer(3)), ("b", Sql::Null)]),
                row(&[("id", text("k2")), ("a", Sql::Integer(2)), ("b", text("y"))]),
            ]
        );
        task.put(&[kv(3, "k2", None), kv(4, "gone", None)]).unwrap();
        flush(&mut task);
        assert_eq!(rows(&db, "t").len(), 1);

        // With deletes off a tombstone changes nothing.
        task.stop();
        let mut task = started(config(&db).set(DELETE_ENABLED, "false"));
        task.put(&[kv(5, "k1", None), kv(6, "k1", Some(Value::Null))])
            .unwrap();
        flush(&mut task);
        assert_eq!(rows(&db, "t").len(), 1);
    }

    #[test]
    fn insert_mode_refuses_a_second_row_for_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut task = started(config(&db).set(INSERT_MODE, "insert"));
        let v = Some(Value::map([("a", Value::Int(1))]));
        task.put(&[kv(0, "k", v.clone())]).unwrap();
        let e = task.put(&[kv(1, "k", v.clone())]).unwrap_err().to_string();
        assert!(e.contains("t/0@1") && e.contains("UNIQUE"), "{e}");
        flush(&mut task);
        assert_eq!(rows(&db, "t").len(), 1);

        // Without a key, every record is a row (a redelivery repeats them).
        let mut task = started(
            config(&db)
                .set(INSERT_MODE, "insert")
                .set(PK_MODE, "none")
                .set(TABLE_NAME_FORMAT, "log"),
        );
        task.put(&[kv(0, "k", v.clone()), kv(0, "k", v.clone())])
            .unwrap();
        flush(&mut task);
        assert_eq!(rows(&db, "log"), vec![row(&[("a", Sql::Integer(1))]); 2]);
    }

    #[test]
    fn tables_are_created_and_grow_columns_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut task = started(config(&db).set(AUTO_CREATE, "false"));
        let e = task
            .put(&[kv(0, "k", Some(Value::map([("a", Value::Int(1))])))])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("auto.create=false") && e.contains("\"t\""),
            "{e}"
        );

        let mut task = started(config(&db));
        task.put(&[kv(
            0,
            "k",
            Some(Value::map([("a", Value::Int(1)), ("n", Value::Null)])),
        )])
        .unwrap();
        task.put(&[kv(
            1,
            "k",
            Some(Value::map([
                ("a", Value::Int(2)),
                ("b", Value::from("new")),
            ])),
        )])
        .unwrap();
        flush(&mut task);
        // A null field added no column; b was added when it had a value.
        assert_eq!(
            declared_types(&db, "t"),
            [
                ("id".to_string(), "TEXT".to_string()),
                ("a".to_string(), "INTEGER".to_string()),
                ("b".to_string(), "TEXT".to_string()),
            ]
        );
        assert_eq!(
            rows(&db, "t"),
            [row(&[
                ("id", text("k")),
                ("a", Sql::Integer(2)),
                ("b", text("new"))
            ])]
        );

        let mut task = started(config(&db).set(AUTO_EVOLVE, "false"));
        let e = task
            .put(&[kv(2, "k", Some(Value::map([("c", Value::Int(1))])))])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("auto.evolve=false") && e.contains("\"c\""),
            "{e}"
        );
        // A field whose column exists, in another case, is that column.
        task.put(&[kv(3, "k", Some(Value::map([("A", Value::Int(9))])))])
            .unwrap();
        flush(&mut task);
        assert_eq!(rows(&db, "t")[0]["a"], Sql::Integer(9));
    }

    #[test]
    fn values_map_to_columns_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut task = started(config(&db));
        let nested = Value::map([("x", Value::Array(vec![Value::Int(1), Value::Null]))]);
        task.put(&[
            kv(
                0,
                "k",
                Some(Value::map([
                    ("i", Value::Int(-5)),
                    ("f", Value::Float(2.5)),
                    ("s", Value::from("s")),
                    ("y", Value::from(vec![0u8, 255])),
                    ("b", Value::Bool(true)),
                    ("m", nested.clone()),
                ])),
            ),
            record(
                "plain",
                1,
                Some(Value::from("p")),
                Some(Value::from("hello")),
            ),
            record("plain", 2, Some(Value::from("q")), Some(Value::Int(7))),
        ])
        .unwrap();
        flush(&mut task);
        assert_eq!(
            rows(&db, "t"),
            [row(&[
                ("id", text("k")),
                ("b", Sql::Integer(1)),
                ("f", Sql::Real(2.5)),
                ("i", Sql::Integer(-5)),
                ("m", text(r#"{"x":[1,null]}"#)),
                ("s", text("s")),
                ("y", Sql::Blob(vec![0, 255])),
            ])]
        );
        assert_eq!(
            declared_types(&db, "t")
                .into_iter()
                .map(|(_, t)| t)
                .collect::<Vec<_>>(),
            ["TEXT", "INTEGER", "REAL", "INTEGER", "TEXT", "TEXT", "BLOB"]
        );
        // A value that is not a map goes to the column `value` (its type
        // from the first one; SQLite's affinity stores 7 as text there).
        assert_eq!(
            rows(&db, "plain"),
            [
                row(&[("id", text("p")), ("value", text("hello"))]),
                row(&[("id", text("q")), ("value", text("7"))]),
            ]
        );
    }

    #[test]
    fn names_with_quotes_are_quoted_not_executed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let evil_topic = "t\"; DROP TABLE keep; --";
        let evil_field = "a\" = 1; DELETE FROM keep; --";
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE keep (x); INSERT INTO keep VALUES (1)")
            .unwrap();
        let mut task = started(config(&db).set(PK_FIELDS, "my \"id\""));
        task.put(&[record(
            evil_topic,
            0,
            Some(Value::from("k")),
            Some(Value::map([(evil_field, Value::Int(1))])),
        )])
        .unwrap();
        task.put(&[record(
            evil_topic,
            1,
            Some(Value::from("k")),
            Some(Value::map([(evil_field, Value::Int(2))])),
        )])
        .unwrap();
        flush(&mut task);
        assert_eq!(
            rows(&db, evil_topic),
            [row(&[
                ("my \"id\"", text("k")),
                (evil_field, Sql::Integer(2))
            ])]
        );
        assert_eq!(rows(&db, "keep").len(), 1);
        task.put(&[record(evil_topic, 2, Some(Value::from("k")), None)])
            .unwrap();
        flush(&mut task);
        assert!(rows(&db, evil_topic).is_empty());

        let e = task
            .put(&[kv(
                3,
                "k",
                Some(Value::map([("Dup", Value::Int(1)), ("dup", Value::Int(2))])),
            )])
            .unwrap_err()
            .to_string();
        assert!(e.contains("t/0@3") && e.contains("\"dup\""), "{e}");
        let e = task
            .put(&[kv(4, "k", Some(Value::map([("a\0b", Value::Int(1))])))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("NUL"), "{e}");
    }

    #[test]
    fn redelivered_records_leave_the_same_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let batch = || {
            vec![
                kv(0, "a", Some(Value::map([("n", Value::Int(1))]))),
                kv(1, "b", Some(Value::map([("n", Value::Int(2))]))),
                kv(2, "a", None),
                kv(3, "c", Some(Value::map([("n", Value::Int(3))]))),
                kv(4, "b", Some(Value::map([("n", Value::Int(4))]))),
            ]
        };
        let mut task = started(config(&db));
        task.put(&batch()).unwrap();
        flush(&mut task);
        let once = rows(&db, "t");
        // A crash after the commit but before the offsets: all again.
        task.stop();
        let mut task = started(config(&db));
        task.put(&batch()).unwrap();
        flush(&mut task);
        assert_eq!(rows(&db, "t"), once);
        // A crash before the flush: the transaction is gone, then all again.
        task.put(&[kv(5, "z", Some(Value::map([("n", Value::Int(5))])))])
            .unwrap();
        task.stop();
        assert_eq!(rows(&db, "t"), once);
        let mut task = started(config(&db));
        task.put(&batch()).unwrap();
        flush(&mut task);
        assert_eq!(rows(&db, "t"), once);
        assert_eq!(once.len(), 2);
    }

    #[test]
    fn records_without_their_key_fail_the_put_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut task = started(config(&db));
        let v = || Some(Value::map([("a", Value::Int(1))]));
        task.put(&[kv(0, "kept", v())]).unwrap();
        let e = task
            .put(&[kv(1, "undone", v()), record("t", 2, None, v())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("t/0@2") && e.contains("no key"), "{e}");
        // The failed put is undone whole; the earlier one stays pending.
        flush(&mut task);
        assert_eq!(rows(&db, "t").len(), 1);
        assert_eq!(rows(&db, "t")[0]["id"], text("kept"));

        let mut task = started(
            config(&db)
                .set(PK_FIELDS, "x, y")
                .set(TABLE_NAME_FORMAT, "m"),
        );
        let key = Value::map([("x", Value::Int(1))]);
        let e = task
            .put(&[record("t", 7, Some(key), v())])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t/0@7") && e.contains("\"y\"") && e.contains("pk.fields"),
            "{e}"
        );
        let e = task
            .put(&[record("t", 8, Some(Value::Int(1)), v())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("t/0@8") && e.contains("one column"), "{e}");
        let e = task
            .put(&[record("t", 9, None, None)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("t/0@9") && e.contains("tombstone"), "{e}");

        let mut task = started(
            config(&db)
                .set(PK_MODE, "record_value")
                .set(TABLE_NAME_FORMAT, "rv"),
        );
        for (value, wanted) in [
            (Value::Int(1), "map value"),
            (Value::map([("a", Value::Int(1))]), "no field \"id\""),
            (Value::map([("id", Value::Null)]), "is null"),
        ] {
            let e = task
                .put(&[record("t", 3, None, Some(value))])
                .unwrap_err()
                .to_string();
            assert!(e.contains("t/0@3") && e.contains(wanted), "{e}");
        }
    }

    #[test]
    fn a_source_rows_string_key_lands_in_an_integer_column() {
        // What SqliteSource writes with the default converters: the key as
        // text, the row (with its id) as a JSON map.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut task = started(config(&db));
        let row_of = |id: i64, name: &str| {
            Some(Value::map([
                ("id", Value::Int(id)),
                ("name", Value::from(name)),
            ]))
        };
        task.put(&[
            kv(0, "7", row_of(7, "a")),
            kv(1, "10", row_of(10, "b")),
            kv(2, "7", row_of(7, "c")),
        ])
        .unwrap();
        flush(&mut task);
        assert_eq!(
            declared_types(&db, "t")[0],
            ("id".to_string(), "INTEGER".to_string())
        );
        assert_eq!(
            rows(&db, "t"),
            [
                row(&[("id", Sql::Integer(7)), ("name", text("c"))]),
                row(&[("id", Sql::Integer(10)), ("name", text("b"))]),
            ]
        );
        task.put(&[kv(3, "10", None)]).unwrap();
        flush(&mut task);
        assert_eq!(rows(&db, "t").len(), 1);
    }

    #[test]
    fn composite_value_and_kafka_keys() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut task = started(
            config(&db)
                .set(PK_MODE, "record_value")
                .set(PK_FIELDS, "x,y"),
        );
        let v = |x: i64, y: &str, n: i64| {
            Some(Value::map([
                ("x", Value::Int(x)),
                ("y", Value::from(y)),
                ("n", Value::Int(n)),
            ]))
        };
        task.put(&[
            record("t", 0, None, v(1, "a", 1)),
            record("t", 1, None, v(1, "b", 2)),
            record("t", 2, None, v(1, "a", 3)),
        ])
        .unwrap();
        flush(&mut task);
        assert_eq!(rows(&db, "t").len(), 2);

        let mut task = started(
            config(&db)
                .set(PK_MODE, "kafka")
                .set(TABLE_NAME_FORMAT, "events"),
        );
        let batch = || {
            vec![
                record("t", 0, None, Some(Value::from("e0"))),
                record("t", 1, None, Some(Value::from("e1"))),
            ]
        };
        task.put(&batch()).unwrap();
        task.put(&batch()).unwrap();
        flush(&mut task);
        assert_eq!(
            rows(&db, "events"),
            [0, 1].map(|o| row(&[
                ("__connect_topic", text("t")),
                ("__connect_partition", Sql::Integer(0)),
                ("__connect_offset", Sql::Integer(o)),
                ("value", text(&format!("e{o}"))),
            ]))
        );
    }

    #[test]
    fn a_busy_database_makes_the_put_retriable_with_nothing_applied() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut task = started(config(&db).set(BUSY_TIMEOUT_MS, "0"));
        let other = Connection::open(&db).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let records = vec![kv(0, "k", Some(Value::Int(1)))];
        let e = task.put(&records).unwrap_err();
        assert!(e.is_retriable(), "{e}");
        other.execute_batch("COMMIT").unwrap();
        task.put(&records).unwrap();
        flush(&mut task);
        assert_eq!(rows(&db, "t").len(), 1);
    }

    #[test]
    fn a_transaction_sqlite_dropped_fails_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut task = started(config(&db));
        task.put(&[kv(0, "k", Some(Value::Int(1)))]).unwrap();
        // As SQLite does after an I/O error or a full disk.
        task.conn
            .as_ref()
            .unwrap()
            .execute_batch("ROLLBACK")
            .unwrap();
        let e = task.flush(&BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("delivers them again"), "{e}");
        assert!(task.put(&[kv(1, "k", Some(Value::Int(2)))]).is_err());
    }

    #[test]
    fn durability_settings_and_one_task() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let task = started(config(&db));
        let conn = task.conn.as_ref().unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2));
        let c = SqliteSinkConnector;
        assert_eq!(c.task_configs(&config(&db), 4).unwrap().len(), 1);
        assert!(c.defaults().contains(&("key.converter", "string")));
        assert!(c.defaults().contains(&("value.converter", "json")));
    }

    #[test]
    fn bad_configurations_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let c = SqliteSinkConnector;
        assert!(c.validate(&config(&db)).is_ok());
        for (config, key) in [
            (ConnectorConfig::new("sink", "SqliteSink"), CONNECTION_URL),
            (config(&db).set(PK_MODE, "none"), INSERT_MODE),
            (
                config(&db)
                    .set(PK_MODE, "record_value")
                    .set(DELETE_ENABLED, "true"),
                DELETE_ENABLED,
            ),
            (
                config(&db).set(PK_MODE, "kafka").set(PK_FIELDS, "a,b"),
                PK_FIELDS,
            ),
            (
                config(&db)
                    .set(PK_MODE, "none")
                    .set(INSERT_MODE, "insert")
                    .set(PK_FIELDS, "a"),
                PK_FIELDS,
            ),
            (config(&db).set(PK_FIELDS, "a,A"), PK_FIELDS),
            (config(&db).set(PK_MODE, "primary"), PK_MODE),
            (config(&db).set(INSERT_MODE, "update"), INSERT_MODE),
            (config(&db).set(AUTO_CREATE, "yes"), AUTO_CREATE),
            (config(&db).set(BUSY_TIMEOUT_MS, "-1"), BUSY_TIMEOUT_MS),
        ] {
            let e = c.validate(&config).unwrap_err().to_string();
            assert!(e.contains(&format!("{key:?}")), "{key}: {e}");
        }
        // delete.enabled follows pk.mode unless set.
        let s = SinkSettings::from_config(&config(&db).set(PK_MODE, "record_value")).unwrap();
        assert!(!s.delete_enabled);
        let s = SinkSettings::from_config(&config(&db).set(AUTO_EVOLVE, "FALSE")).unwrap();
        assert!(s.delete_enabled && !s.auto_evolve);
    }

    /// A field's value, kept to one kind per field as real records are.
    fn field_value(field: usize) -> BoxedStrategy<Value> {
        let value = match field {
            0 => any::<i64>().prop_map(Value::Int).boxed(),
            1 => "[a-z\"' ]{0,6}".prop_map(Value::from).boxed(),
            2 => (-1e6f64..1e6).prop_map(Value::Float).boxed(),
            3 => any::<bool>().prop_map(Value::Bool).boxed(),
            4 => proptest::collection::vec(any::<u8>(), 0..4)
                .prop_map(Value::from)
                .boxed(),
            _ => any::<i8>()
                .prop_map(|i| Value::Array(vec![Value::Int(i.into())]))
                .boxed(),
        };
        prop_oneof![1 => Just(Value::Null), 4 => value].boxed()
    }

    const FIELDS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

    fn value_map() -> impl Strategy<Value = Value> {
        let fields: Vec<_> = (0..FIELDS.len())
            .map(|i| proptest::option::of(field_value(i)))
            .collect();
        fields.prop_map(|values| {
            Value::Map(
                FIELDS
                    .iter()
                    .zip(values)
                    .filter_map(|(n, v)| v.map(|v| (n.to_string(), v)))
                    .collect(),
            )
        })
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// Put the next records (their count).
        Put(usize),
        /// Flush: commit the transaction, then the offsets.
        Flush,
        /// Flush, then crash before the offsets are committed: the records
        /// since the previous commit come again.
        FlushThenCrash,
        /// Crash without a flush: the transaction is lost.
        Crash,
    }

    fn expected_cell(value: Option<&Value>) -> Sql {
        match value {
            None | Some(Value::Null) => Sql::Null,
            Some(Value::Int(i)) => Sql::Integer(*i),
            Some(Value::Bool(b)) => Sql::Integer(i64::from(*b)),
            Some(Value::Float(f)) => Sql::Real(*f),
            Some(Value::String(s)) => Sql::Text(s.clone()),
            Some(Value::Bytes(b)) => Sql::Blob(b.to_vec()),
            Some(v) => Sql::Text(v.to_json_string()),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the flushes, crashes and redeliveries, the table ends
        /// as the latest value of each key.
        #[test]
        fn table_holds_the_latest_value_per_key(
            ops in proptest::collection::vec(
                (0..5u8, proptest::option::weighted(0.8, value_map())),
                1..40,
            ),
            steps in proptest::collection::vec(
                prop_oneof![
                    6 => (1..6usize).prop_map(Step::Put),
                    2 => Just(Step::Flush),
                    1 => Just(Step::FlushThenCrash),
                    1 => Just(Step::Crash),
                ],
                0..30,
            ),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("p.db");
            let records: Vec<SinkRecord> = ops
                .iter()
                .enumerate()
                .map(|(i, (k, v))| kv(i as Offset, &format!("k{k}"), v.clone()))
                .collect();
            let mut task = started(config(&db));
            // The runtime: the next record to put and the committed offset.
            let (mut next, mut committed) = (0usize, 0usize);
            let steps = steps.into_iter().chain(std::iter::once(Step::Put(usize::MAX)));
            for step in steps {
                match step {
                    Step::Put(n) => {
                        let end = next.saturating_add(n).min(records.len());
                        task.put(&records[next..end]).unwrap();
                        next = end;
                    }
                    Step::Flush => {
                        flush(&mut task);
                        committed = next;
                    }
                    Step::FlushThenCrash => {
                        flush(&mut task);
                        task.stop();
                        task = started(config(&db));
                        next = committed;
                    }
                    Step::Crash => {
                        task.stop();
                        task = started(config(&db));
                        next = committed;
                    }
                }
            }
            flush(&mut task);

            let mut model: BTreeMap<String, Value> = BTreeMap::new();
            for (k, v) in &ops {
                match v {
                    Some(v) => model.insert(format!("k{k}"), v.clone()),
                    None => model.remove(&format!("k{k}")),
                };
            }
            let exists = table_columns(&Connection::open(&db).unwrap(), "t").unwrap().is_some();
            let table = if exists { rows(&db, "t") } else { Vec::new() };
            prop_assert_eq!(table.len(), model.len());
            for (row, (key, value)) in table.iter().zip(&model) {
                prop_assert_eq!(&row["id"], &Sql::Text(key.clone()));
                for (column, cell) in row.iter().filter(|(c, _)| *c != "id") {
                    prop_assert_eq!(cell, &expected_cell(value.get(column)), "{} {}", key, column);
                }
                for (field, v) in value_fields(value) {
                    if *v != Value::Null {
                        prop_assert!(row.contains_key(field), "{} lacks column {}", key, field);
                    }
                }
            }
        }
    }

    fn value_fields(value: &Value) -> impl Iterator<Item = (&String, &Value)> {
        match value {
            Value::Map(m) => Some(m.iter()),
            _ => None,
        }
        .into_iter()
        .flatten()
    }
}
