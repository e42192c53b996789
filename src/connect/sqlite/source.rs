//! [`SqliteSourceConnector`]: the new rows of an SQLite table as records,
//! as Kafka's JDBC source reads a database table.

use super::{
    Access, BUSY_TIMEOUT_MS, CONNECTION_URL, Column, check_identifier, database_path, from_sql,
    open, quote, sql_error, table_columns,
};
use crate::connect::config::ConnectorConfig;
use crate::connect::error::{Error, Result};
use crate::connect::spi::{SourceConnector, SourceRecord, SourceTask, SourceTaskContext};
use crate::connect::value::{Map, Value};
use rusqlite::Connection;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TABLE: &str = "table";
const TOPIC: &str = "topic";
const MODE: &str = "mode";
const INCREMENTING_COLUMN: &str = "incrementing.column.name";
const TIMESTAMP_COLUMN: &str = "timestamp.column.name";
const TIMESTAMP_DELAY: &str = "timestamp.delay.interval.ms";
const POLL_INTERVAL: &str = "poll.interval.ms";
const BATCH_MAX_ROWS: &str = "batch.max.rows";
const KEY_COLUMN: &str = "key.column";

/// The source partition's field (the table's name) and the offset's fields.
const PARTITION_TABLE: &str = "table";
const OFFSET_INCREMENTING: &str = "incrementing";
const OFFSET_TIMESTAMP: &str = "timestamp";

const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_BATCH_MAX_ROWS: usize = 100;
/// The source's default `busy.timeout.ms`: short, so that a poll returns
/// promptly (a busy database makes the poll [`Error::Retriable`]).
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest a poll waits before returning no records.
const MAX_POLL_WAIT: Duration = Duration::from_millis(100);

/// Reads the new rows of one SQLite table as records, with the modes of
/// Kafka's JDBC source connector. Class name `SqliteSource`.
///
/// ```text
/// name=orders-from-sqlite
/// connector.class=SqliteSource
/// connection.url=jdbc:sqlite:/var/lib/app/app.db
/// table=orders
/// mode=incrementing
/// ```
///
/// Each row becomes a record on `topic`: its value a map of every column
/// (INTEGER → `Int`, REAL → `Float`, TEXT → `String`, BLOB → `Bytes`,
/// NULL → `Null`), its key the `key.column`'s value (none if NULL), its
/// timestamp the `timestamp.column.name`'s value when that is set. The
/// source partition is `{"table": <table>}`; the offset, as JDBC's,
/// `{"incrementing": <last id>}`, `{"timestamp": <last ts>}` or both. A
/// restarted task resumes after the stored offset.
///
/// # Modes
///
/// - `incrementing`: rows whose incrementing column is above the last one
///   seen, in its order. Catches new rows, not updates. SQLite assigns
///   rowids one writer at a time, so an `INTEGER PRIMARY KEY` becomes
///   visible in increasing order; but without `AUTOINCREMENT` SQLite may
///   give a deleted newest row's id to the next insert, which this mode
///   then never reads.
/// - `timestamp`: rows whose timestamp column is above the last one seen
///   and below now minus `timestamp.delay.interval.ms`, by timestamp. Sees
///   updates that set the timestamp. Rows sharing a timestamp are read in
///   one poll (which may then exceed `batch.max.rows`), since the offset
///   cannot tell them apart. **Caveat** (JDBC's too): a row committed
///   after a row with a later timestamp was read — its timestamp taken
///   before a slow transaction committed — is never read; set the delay
///   above the longest such transaction.
/// - `timestamp+incrementing`: rows with a later timestamp, or the same
///   timestamp and a larger id, ordered by both: updates seen, no
///   duplicates; the same caveat.
/// - `outbox`: as `incrementing` (the column must only grow, so
///   `INTEGER PRIMARY KEY AUTOINCREMENT`, which is checked when it is the
///   rowid), and once the runtime has stored the offsets of the records
///   polled ([`SourceTask::commit`]) their rows are deleted. The
///   application inserts events into the table in the transaction that
///   changes its data (the transactional outbox pattern); a row is deleted
///   only after its record's offset is stored.
///
/// Timestamps are INTEGER milliseconds since the epoch. Incrementing and
/// timestamp columns must hold integers; a row whose column is NULL is not
/// read.
///
/// # Configuration
///
/// | key | default | meaning |
/// |-----|---------|---------|
/// | `connection.url` | required | `jdbc:sqlite:<path>`, `sqlite:<path>` or a path to an existing database |
/// | `table` | required | the table (or view, but not in `outbox` mode) |
/// | `mode` | required | `incrementing`, `timestamp`, `timestamp+incrementing` or `outbox` |
/// | `topic` | the table's name | the topic the records go to |
/// | `incrementing.column.name` | the table's `INTEGER PRIMARY KEY` | the strictly increasing column (not in `timestamp` mode) |
/// | `timestamp.column.name` | none | the timestamp column; required by the timestamp modes, else only the records' timestamp |
/// | `timestamp.delay.interval.ms` | `0` | how old a timestamp must be before its row is read |
/// | `poll.interval.ms` | `1000` | the time between queries (a query that fills a batch is followed at once by the next) |
/// | `batch.max.rows` | `100` | the most rows per query |
/// | `key.column` | the incrementing column, none in `timestamp` mode | the column whose value is the record key |
/// | `busy.timeout.ms` | `100` | how long a query waits for another connection's lock; then the poll is retried |
///
/// Defaults set by the class: `key.converter=string` (an integer id is
/// written as its digits, which [`SqliteSinkConnector`](crate::connect::SqliteSinkConnector)
/// reads back with the same default) and `value.converter=json`. Bytes
/// columns become base64 text in JSON.
///
/// The database is opened read-only except in `outbox` mode. Queries run
/// beside an application's writes: in WAL mode they never wait; in
/// rollback-journal mode a writer's lock makes them wait up to
/// `busy.timeout.ms`, then the poll returns [`Error::Retriable`]. One task
/// runs per connector.
#[derive(Clone, Copy, Debug, Default)]
pub struct SqliteSourceConnector;

impl SqliteSourceConnector {
    /// The `connector.class` of this connector.
    pub const CLASS: &'static str = "SqliteSource";
}

impl SourceConnector for SqliteSourceConnector {
    fn validate(&self, config: &ConnectorConfig) -> Result<()> {
        SourceSettings::from_config(config).map(drop)
    }

    fn defaults(&self) -> Vec<(&'static str, &'static str)> {
        vec![("key.converter", "string"), ("value.converter", "json")]
    }

    fn task_configs(
        &self,
        config: &ConnectorConfig,
        max_tasks: usize,
    ) -> Result<Vec<ConnectorConfig>> {
        let _ = max_tasks;
        self.validate(config)?;
        Ok(vec![config.clone()])
    }

    fn task(&self) -> Box<dyn SourceTask> {
        Box::new(SqliteSourceTask::new(Box::new(SystemClock::new())))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Incrementing,
    Timestamp,
    TimestampIncrementing,
    Outbox,
}

impl Mode {
    fn incrementing(self) -> bool {
        self != Mode::Timestamp
    }

    fn timestamped(self) -> bool {
        matches!(self, Mode::Timestamp | Mode::TimestampIncrementing)
    }
}

/// The source's configuration, checked.
#[derive(Clone, Debug)]
struct SourceSettings {
    path: PathBuf,
    table: String,
    topic: String,
    mode: Mode,
    incrementing: Option<String>,
    timestamp: Option<String>,
    delay_ms: i64,
    poll_interval: Duration,
    batch_max_rows: usize,
    key_column: Option<String>,
    busy_timeout: Duration,
}

impl SourceSettings {
    fn from_config(config: &ConnectorConfig) -> Result<Self> {
        let name = config.name();
        let bad = |key: &str, reason: &str| Error::config(name, key, reason);
        let column = |key: &str| -> Result<Option<String>> {
            match config.get(key).map(str::trim).filter(|c| !c.is_empty()) {
                None => Ok(None),
                Some(c) => {
                    check_identifier(c).map_err(|r| bad(key, &r))?;
                    Ok(Some(c.to_string()))
                }
            }
        };
        let path = database_path(name, config.required(CONNECTION_URL)?)?;
        let table = config.required(TABLE)?.to_string();
        check_identifier(&table).map_err(|r| bad(TABLE, &r))?;
        let topic = config
            .get(TOPIC)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or(&table)
            .to_string();
        config.required(MODE)?;
        let mode = match config.choice_or(
            MODE,
            &[
                "incrementing",
                "timestamp",
                "timestamp+incrementing",
                "outbox",
            ],
            "incrementing",
        )? {
            "incrementing" => Mode::Incrementing,
            "timestamp" => Mode::Timestamp,
            "timestamp+incrementing" => Mode::TimestampIncrementing,
            _ => Mode::Outbox,
        };
        let incrementing = column(INCREMENTING_COLUMN)?;
        let timestamp = column(TIMESTAMP_COLUMN)?;
        if mode.timestamped() && timestamp.is_none() {
            return Err(bad(
                TIMESTAMP_COLUMN,
                "is required by the timestamp modes: the INTEGER column of epoch milliseconds",
            ));
        }
        if mode == Mode::Timestamp && incrementing.is_some() {
            return Err(bad(
                INCREMENTING_COLUMN,
                "is not used by mode=timestamp; choose mode=timestamp+incrementing, or key.column for the key",
            ));
        }
        let delay = config.duration_ms_or(TIMESTAMP_DELAY, Duration::ZERO)?;
        let delay_ms =
            i64::try_from(delay.as_millis()).map_err(|_| bad(TIMESTAMP_DELAY, "is too large"))?;
        let batch_max_rows = config.parse_or(BATCH_MAX_ROWS, DEFAULT_BATCH_MAX_ROWS)?;
        if batch_max_rows == 0 || i64::try_from(batch_max_rows).is_err() {
            return Err(bad(BATCH_MAX_ROWS, "must be at least 1 (and fit an i64)"));
        }
        Ok(SourceSettings {
            path,
            table,
            topic,
            mode,
            incrementing,
            timestamp,
            delay_ms,
            poll_interval: config.duration_ms_or(POLL_INTERVAL, DEFAULT_POLL_INTERVAL)?,
            batch_max_rows,
            key_column: column(KEY_COLUMN)?,
            busy_timeout: config.duration_ms_or(BUSY_TIMEOUT_MS, DEFAULT_BUSY_TIMEOUT)?,
        })
    }
}

/// The time a source task reads: wall-clock milliseconds for the
/// timestamp modes' upper bound, a monotonic clock for the poll interval,
/// and a sleep. Tests drive their own.
trait Clock: Send {
    /// Milliseconds since the Unix epoch.
    fn wall_ms(&self) -> i64;
    /// A monotonic time (from any origin).
    fn monotonic(&self) -> Duration;
    /// Waits `duration`.
    fn sleep(&self, duration: Duration);
}

/// The system's clocks.
#[derive(Debug)]
struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// The position in the table: the last incrementing value and timestamp
/// read (`None`: from the start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Position {
    incrementing: Option<i64>,
    timestamp: Option<i64>,
}

/// A started task's state.
struct Running {
    settings: SourceSettings,
    conn: Connection,
    /// The incrementing column's declared name, in the incrementing modes.
    incrementing: Option<String>,
    /// The timestamp column's declared name, if set.
    timestamp: Option<String>,
    /// The key column's declared name, if any.
    key: Option<String>,
    partition: Map,
    /// Where the next query starts.
    position: Position,
    /// When the last query ran (monotonic), `None` before the first.
    last_query: Option<Duration>,
    /// The last query filled its batch: query again without waiting.
    more: bool,
    /// Outbox: rows up to here are stored (after `commit`) and to delete.
    committed: Option<i64>,
    /// Outbox: rows up to here were deleted.
    deleted: Option<i64>,
}

/// A running source task.
struct SqliteSourceTask {
    clock: Box<dyn Clock>,
    running: Option<Running>,
}

impl SqliteSourceTask {
    fn new(clock: Box<dyn Clock>) -> Self {
        SqliteSourceTask {
            clock,
            running: None,
        }
    }

    fn running(&mut self) -> Result<&mut Running> {
        self.running.as_mut().ok_or_else(|| Error::External {
            system: "sqlite",
            reason: "the source task was used before start".to_string(),
            source: None,
        })
    }
}

/// The declared spelling of `wanted` among `columns` (SQLite ignores ASCII
/// case), or a configuration error for `key`.
fn find_column(
    connector: &str,
    key: &str,
    table: &str,
    columns: &[Column],
    wanted: &str,
) -> Result<String> {
    columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(wanted))
        .map(|c| c.name.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            Error::config(
                connector,
                key,
                format!(
                    "table {table:?} has no column {wanted:?}; its columns: {}",
                    names.join(", ")
                ),
            )
        })
}

/// What kind of object `table` is: (`"table"`/`"view"`, WITHOUT ROWID).
fn table_kind(conn: &Connection, table: &str) -> rusqlite::Result<(String, bool)> {
    conn.query_row(
        "SELECT type, wr FROM pragma_table_list(?1) WHERE schema = 'main'",
        [table],
        |row| Ok((row.get(0)?, row.get::<_, i64>(1)? != 0)),
    )
}

/// The column that is `table`'s rowid (`INTEGER PRIMARY KEY`), if any.
fn rowid_column(columns: &[Column], without_rowid: bool) -> Option<&Column> {
    let mut pk = columns.iter().filter(|c| c.pk > 0);
    match (pk.next(), pk.next()) {
        (Some(c), None) if !without_rowid && c.declared_type.eq_ignore_ascii_case("INTEGER") => {
            Some(c)
        }
        _ => None,
    }
}

/// Whether a `CREATE TABLE` statement has the AUTOINCREMENT keyword
/// (outside quoted names, strings and comments).
fn declares_autoincrement(sql: &str) -> bool {
    let mut chars = sql.chars().peekable();
    let mut word = String::new();
    let mut found = false;
    let mut end_word = |word: &mut String| {
        found |= word.eq_ignore_ascii_case("AUTOINCREMENT");
        word.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' | '[' => {
                end_word(&mut word);
                let close = if c == '[' { ']' } else { c };
                for d in chars.by_ref() {
                    if d == close {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                end_word(&mut word);
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                end_word(&mut word);
                chars.next();
                let mut star = false;
                for d in chars.by_ref() {
                    if star && d == '/' {
                        break;
                    }
                    star = d == '*';
                }
            }
            c if c.is_alphanumeric() || c == '_' => word.push(c),
            _ => end_word(&mut word),
        }
    }
    end_word(&mut word);
    found
}

/// An integer field of a stored offset; `None` if absent.
fn offset_field(connector: &str, offset: &Map, field: &str) -> Result<Option<i64>> {
    match offset.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(other) => Err(Error::External {
            system: "sqlite",
            reason: format!(
                "connector {connector:?}: the stored source offset's {field:?} is a {}, not an integer",
                other.kind()
            ),
            source: None,
        }),
    }
}

impl SourceTask for SqliteSourceTask {
    fn start(&mut self, context: &SourceTaskContext) -> Result<()> {
        let settings = SourceSettings::from_config(&context.config)?;
        let name = context.config.name();
        let access = if settings.mode == Mode::Outbox {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        let conn = open(&settings.path, access, settings.busy_timeout)?;
        let table = &settings.table;
        let what = format!("read table {table:?} in {}", settings.path.display());
        let columns = table_columns(&conn, table)
            .map_err(|e| sql_error(&what, e))?
            .ok_or_else(|| Error::External {
                system: "sqlite",
                reason: format!("{} has no table {table:?}", settings.path.display()),
                source: None,
            })?;
        let (kind, without_rowid) = table_kind(&conn, table).map_err(|e| sql_error(&what, e))?;

        let incrementing = if settings.mode.incrementing() {
            Some(match &settings.incrementing {
                Some(c) => find_column(name, INCREMENTING_COLUMN, table, &columns, c)?,
                None => rowid_column(&columns, without_rowid)
                    .map(|c| c.name.clone())
                    .ok_or_else(|| {
                        Error::config(
                            name,
                            INCREMENTING_COLUMN,
                            format!(
                                "table {table:?} has no INTEGER PRIMARY KEY to use; name its increasing column"
                            ),
                        )
                    })?,
            })
        } else {
            None
        };
        if settings.mode == Mode::Outbox {
            if kind != "table" {
                return Err(Error::config(
                    name,
                    TABLE,
                    format!("{table:?} is a {kind}; the outbox mode deletes rows from a table"),
                ));
            }
            let is_rowid = rowid_column(&columns, without_rowid)
                .is_some_and(|c| Some(&c.name) == incrementing.as_ref());
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |row| row.get(0),
                )
                .map_err(|e| sql_error(&what, e))?;
            if is_rowid && !declares_autoincrement(&sql) {
                return Err(Error::config(
                    name,
                    TABLE,
                    format!(
                        "outbox table {table:?} must declare its id INTEGER PRIMARY KEY AUTOINCREMENT: \
                         without it SQLite reuses the ids of deleted rows, and a reused id at or below \
                         the stored offset would never be sent"
                    ),
                ));
            }
        }
        let timestamp = match &settings.timestamp {
            Some(c) => Some(find_column(name, TIMESTAMP_COLUMN, table, &columns, c)?),
            None => None,
        };
        let key = match &settings.key_column {
            Some(c) => Some(find_column(name, KEY_COLUMN, table, &columns, c)?),
            None => incrementing.clone(),
        };

        let partition: Map = [(PARTITION_TABLE.to_string(), Value::from(table.as_str()))].into();
        let position = match context.offsets.offset(&partition) {
            None => Position::default(),
            Some(offset) => Position {
                incrementing: offset_field(name, offset, OFFSET_INCREMENTING)?,
                timestamp: offset_field(name, offset, OFFSET_TIMESTAMP)?,
            },
        };
        let mut running = Running {
            incrementing,
            timestamp,
            key,
            partition,
            position,
            last_query: None,
            more: false,
            committed: None,
            deleted: None,
            settings,
            conn,
        };
        if running.settings.mode == Mode::Outbox {
            // The stored offset's rows were sent; a crash may have come
            // before they were deleted.
            running.committed = running.position.incrementing;
            running.delete_committed();
        }
        self.running = Some(running);
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let now = self.clock.monotonic();
        let wait = self.running()?.wait(now);
        if let Some(wait) = wait {
            self.clock.sleep(wait.min(MAX_POLL_WAIT));
            let now = self.clock.monotonic();
            if self.running()?.wait(now).is_some() {
                return Ok(Vec::new());
            }
        }
        let now = self.clock.monotonic();
        let wall = self.clock.wall_ms();
        let running = self.running()?;
        running.last_query = Some(now);
        if running.settings.mode == Mode::Outbox {
            running.delete_committed();
        }
        running.query(wall)
    }

    fn commit(&mut self) -> Result<()> {
        let running = self.running()?;
        if running.settings.mode == Mode::Outbox {
            // Every record polled so far is stored: its row can go.
            running.committed = running.position.incrementing;
            running.delete_committed();
        }
        Ok(())
    }

    fn stop(&mut self) {
        self.running = None;
    }
}

impl Running {
    /// How long until the next query is due at `now`; `None` if due.
    fn wait(&self, now: Duration) -> Option<Duration> {
        if self.more {
            return None;
        }
        let last = self.last_query?;
        let due = last.saturating_add(self.settings.poll_interval);
        (now < due).then(|| due - now)
    }

    /// Outbox: deletes the rows up to the committed id. A busy database
    /// leaves them for the next try (poll or commit); the delete is
    /// idempotent.
    fn delete_committed(&mut self) {
        let Some(committed) = self.committed else {
            return;
        };
        if self.deleted.is_some_and(|d| d >= committed) {
            return;
        }
        let Some(column) = &self.incrementing else {
            return;
        };
        let sql = format!(
            "DELETE FROM {} WHERE {} <= ?1",
            quote(&self.settings.table),
            quote(column)
        );
        let deleted = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.execute([committed]));
        match deleted {
            Ok(rows) => {
                tracing::debug!(table = %self.settings.table, up_to = committed, rows, "SQLite outbox: deleted sent rows");
                self.deleted = Some(committed);
            }
            Err(e) => tracing::warn!(
                table = %self.settings.table,
                up_to = committed,
                error = %e,
                "SQLite outbox: could not delete sent rows; will retry"
            ),
        }
    }

    /// The WHERE/ORDER BY of the next query and its parameters, for the
    /// wall-clock time `wall_ms`.
    fn next_query(&self, wall_ms: i64) -> (String, Vec<i64>) {
        let inc = self.incrementing.as_deref().map(quote);
        let ts = self.timestamp.as_deref().map(quote);
        let upper = wall_ms.saturating_sub(self.settings.delay_ms);
        let limit = i64::try_from(self.settings.batch_max_rows).unwrap_or(i64::MAX);
        let p = self.position;
        match (self.settings.mode, inc, ts) {
            (Mode::Timestamp, _, Some(ts)) => match p.timestamp {
                None => (
                    format!("{ts} IS NOT NULL AND {ts} < ?1 ORDER BY {ts} LIMIT ?2"),
                    vec![upper, limit],
                ),
                Some(last) => (
                    format!("{ts} > ?1 AND {ts} < ?2 ORDER BY {ts} LIMIT ?3"),
                    vec![last, upper, limit],
                ),
            },
            (Mode::TimestampIncrementing, Some(inc), Some(ts)) => match p.timestamp {
                None => (
                    format!(
                        "{ts} IS NOT NULL AND {inc} IS NOT NULL AND {ts} < ?1 ORDER BY {ts}, {inc} LIMIT ?2"
                    ),
                    vec![upper, limit],
                ),
                Some(last_ts) => (
                    format!(
                        "{inc} IS NOT NULL AND {ts} < ?1 AND ({ts} > ?2 OR ({ts} = ?2 AND {inc} > ?3)) \
                         ORDER BY {ts}, {inc} LIMIT ?4"
                    ),
                    vec![upper, last_ts, p.incrementing.unwrap_or(i64::MIN), limit],
                ),
            },
            (_, Some(inc), _) => match p.incrementing {
                None => (
                    format!("{inc} IS NOT NULL ORDER BY {inc} LIMIT ?1"),
                    vec![limit],
                ),
                Some(last) => (
                    format!("{inc} > ?1 ORDER BY {inc} LIMIT ?2"),
                    vec![last, limit],
                ),
            },
            // from_config and start make the columns each mode needs.
            _ => ("0".to_string(), Vec::new()),
        }
    }

    /// Runs `SELECT * FROM table WHERE <condition>`: the rows as maps.
    fn select(&self, condition: &str, params: &[i64]) -> Result<Vec<Map>> {
        let table = &self.settings.table;
        let sql = format!("SELECT * FROM {} WHERE {condition}", quote(table));
        let what = format!("query table {table:?}");
        let fail = |e| sql_error(&what, e);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(fail)?;
        let names: Vec<String> = stmt.column_names().map(String::from).collect();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(fail)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            let mut map = Map::new();
            for (i, name) in names.iter().enumerate() {
                map.insert(name.clone(), from_sql(row.get_ref(i).map_err(fail)?));
            }
            out.push(map);
        }
        Ok(out)
    }

    /// Queries the rows after the position and turns them into records,
    /// advancing the position.
    fn query(&mut self, wall_ms: i64) -> Result<Vec<SourceRecord>> {
        let (condition, params) = self.next_query(wall_ms);
        let mut rows = self.select(&condition, &params)?;
        let full = rows.len() >= self.settings.batch_max_rows;
        self.more = full;
        if full && self.settings.mode == Mode::Timestamp {
            // The offset holds a timestamp only: never end a batch inside
            // a group of rows sharing one.
            let ts_of = |row: &Map| self.integer(row, self.timestamp.as_deref());
            let last = rows.last().map(ts_of).transpose()?.flatten();
            let first = rows.first().map(ts_of).transpose()?.flatten();
            if let Some(last) = last {
                if first == Some(last) {
                    let column = self.timestamp.as_deref().map(quote).unwrap_or_default();
                    rows = self.select(&format!("{column} = ?1"), &[last])?;
                } else {
                    while rows
                        .last()
                        .map(ts_of)
                        .transpose()?
                        .flatten()
                        .is_some_and(|t| t == last)
                    {
                        rows.pop();
                    }
                }
            }
        }
        rows.into_iter().map(|row| self.record(row)).collect()
    }

    /// The integer in `row`'s `column`; an error if it holds anything else
    /// (`None` for NULL or no column).
    fn integer(&self, row: &Map, column: Option<&str>) -> Result<Option<i64>> {
        let Some(column) = column else {
            return Ok(None);
        };
        match row.get(column) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(other) => Err(Error::External {
                system: "sqlite",
                reason: format!(
                    "table {:?}: column {column:?} holds a {}; it must hold integers",
                    self.settings.table,
                    other.kind()
                ),
                source: None,
            }),
        }
    }

    /// The record for `row`, advancing the position past it.
    fn record(&mut self, row: Map) -> Result<SourceRecord> {
        let inc = self.integer(&row, self.incrementing.as_deref())?;
        let ts = self.integer(&row, self.timestamp.as_deref())?;
        let mut offset = Map::new();
        if self.settings.mode.incrementing() {
            self.position.incrementing = inc.or(self.position.incrementing);
            if let Some(i) = self.position.incrementing {
                offset.insert(OFFSET_INCREMENTING.to_string(), Value::Int(i));
            }
        }
        if self.settings.mode.timestamped() {
            self.position.timestamp = ts.or(self.position.timestamp);
            if let Some(t) = self.position.timestamp {
                offset.insert(OFFSET_TIMESTAMP.to_string(), Value::Int(t));
            }
        }
        let key = self
            .key
            .as_ref()
            .and_then(|k| row.get(k))
            .filter(|v| **v != Value::Null)
            .cloned();
        let mut record = SourceRecord::new(self.settings.topic.clone(), Value::Map(row));
        record.source_partition = self.partition.clone();
        record.source_offset = offset;
        record.record.key = key;
        record.record.timestamp = ts;
        Ok(record)
    }
}
