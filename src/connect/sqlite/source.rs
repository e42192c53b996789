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
        let before = self.position;
        let records: Result<Vec<_>> = rows.into_iter().map(|row| self.record(row)).collect();
        if records.is_err() {
            // None of these rows was returned: read them again next time.
            self.position = before;
        }
        records
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::spi::OffsetStorageReader;
    use proptest::prelude::*;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Default)]
    struct ClockState {
        wall_ms: i64,
        monotonic: Duration,
        sleeps: Vec<Duration>,
    }

    /// A clock that moves only when told, or when the task sleeps.
    #[derive(Clone, Debug, Default)]
    struct ManualClock(Arc<Mutex<ClockState>>);

    impl ManualClock {
        fn at(wall_ms: i64) -> Self {
            let clock = ManualClock::default();
            clock.0.lock().unwrap().wall_ms = wall_ms;
            clock
        }

        fn advance(&self, by: Duration) {
            let mut s = self.0.lock().unwrap();
            s.monotonic += by;
            s.wall_ms += i64::try_from(by.as_millis()).unwrap();
        }

        fn sleeps(&self) -> Vec<Duration> {
            std::mem::take(&mut self.0.lock().unwrap().sleeps)
        }
    }

    impl Clock for ManualClock {
        fn wall_ms(&self) -> i64 {
            self.0.lock().unwrap().wall_ms
        }
        fn monotonic(&self) -> Duration {
            self.0.lock().unwrap().monotonic
        }
        fn sleep(&self, duration: Duration) {
            self.advance(duration);
            self.0.lock().unwrap().sleeps.push(duration);
        }
    }

    /// The application's database: a table `events` with an
    /// AUTOINCREMENT id, a timestamp and a body.
    fn app(db: &Path) -> Connection {
        let conn = Connection::open(db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER, body TEXT);",
        )
        .unwrap();
        conn
    }

    fn insert(conn: &Connection, rows: &[(i64, &str)]) {
        for (ts, body) in rows {
            conn.execute("INSERT INTO events (ts, body) VALUES (?1, ?2)", (ts, body))
                .unwrap();
        }
    }

    fn config(db: &Path, mode: &str) -> ConnectorConfig {
        ConnectorConfig::new("source", SqliteSourceConnector::CLASS)
            .set(CONNECTION_URL, format!("sqlite:{}", db.display()))
            .set(TABLE, "events")
            .set(MODE, mode)
    }

    fn start_at(
        config: ConnectorConfig,
        clock: &ManualClock,
        stored: Option<&SourceRecord>,
    ) -> Result<SqliteSourceTask> {
        let mut task = SqliteSourceTask::new(Box::new(clock.clone()));
        let offsets = OffsetStorageReader::from_offsets(
            stored.map(|r| (r.source_partition.clone(), r.source_offset.clone())),
        );
        task.start(&SourceTaskContext {
            config,
            task: 0,
            offsets,
            admin: None,
        })?;
        Ok(task)
    }

    /// Polls, letting the poll interval pass before each poll, until a
    /// query finds nothing.
    fn drain(task: &mut SqliteSourceTask, clock: &ManualClock) -> Vec<SourceRecord> {
        let mut out = Vec::new();
        loop {
            clock.advance(Duration::from_secs(3600));
            let batch = task.poll().unwrap();
            if batch.is_empty() {
                return out;
            }
            out.extend(batch);
        }
    }

    fn bodies(records: &[SourceRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| {
                r.record
                    .value
                    .as_ref()
                    .unwrap()
                    .get("body")
                    .unwrap()
                    .to_text()
            })
            .collect()
    }

    #[test]
    fn incrementing_reads_each_row_once_and_resumes_after_the_stored_offset() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = app(&db);
        insert(&conn, &[(10, "a"), (20, "b"), (30, "c")]);
        let clock = ManualClock::default();
        let mut task = start_at(config(&db, "incrementing"), &clock, None).unwrap();
        let first = drain(&mut task, &clock);
        assert_eq!(bodies(&first), ["a", "b", "c"]);
        let r = &first[2];
        assert_eq!(r.record.topic, "events");
        assert_eq!(r.record.key, Some(Value::Int(3)));
        assert_eq!(r.record.timestamp, None);
        assert_eq!(
            r.record.value,
            Some(Value::map([
                ("id", Value::Int(3)),
                ("ts", Value::Int(30)),
                ("body", Value::from("c")),
            ]))
        );
        assert_eq!(
            r.source_partition,
            Map::from([("table".to_string(), Value::from("events"))])
        );
        assert_eq!(
            r.source_offset,
            Map::from([("incrementing".to_string(), Value::Int(3))])
        );

        insert(&conn, &[(40, "d")]);
        let second = drain(&mut task, &clock);
        assert_eq!(bodies(&second), ["d"]);
        task.stop();

        // Rows written while the task is stopped come after a restart;
        // nothing before the stored offset comes again.
        insert(&conn, &[(50, "e"), (60, "f")]);
        let mut task = start_at(config(&db, "incrementing"), &clock, second.last()).unwrap();
        assert_eq!(bodies(&drain(&mut task, &clock)), ["e", "f"]);
    }

    #[test]
    fn a_full_batch_is_followed_at_once_and_then_the_interval_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = app(&db);
        insert(&conn, &[(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]);
        let clock = ManualClock::default();
        let mut task = start_at(
            config(&db, "incrementing").set(BATCH_MAX_ROWS, "2"),
            &clock,
            None,
        )
        .unwrap();
        // No time passes: full batches are followed by another query.
        assert_eq!(bodies(&task.poll().unwrap()), ["a", "b"]);
        assert_eq!(bodies(&task.poll().unwrap()), ["c", "d"]);
        assert_eq!(bodies(&task.poll().unwrap()), ["e"]);
        assert!(clock.sleeps().is_empty());

        // A short batch: the next query waits poll.interval.ms (1 s), in
        // polls that each wait at most 100 ms and return nothing.
        insert(&conn, &[(6, "f")]);
        let mut empty = 0;
        let found = loop {
            let batch = task.poll().unwrap();
            if !batch.is_empty() {
                break batch;
            }
            empty += 1;
            assert!(empty < 100, "the interval never ended");
        };
        assert_eq!(bodies(&found), ["f"]);
        let sleeps = clock.sleeps();
        assert!(sleeps.iter().all(|s| *s <= MAX_POLL_WAIT), "{sleeps:?}");
        assert_eq!(sleeps.iter().sum::<Duration>(), DEFAULT_POLL_INTERVAL);
        assert_eq!(
            empty, 9,
            "the tenth poll's wait ends the interval and queries"
        );
    }

    #[test]
    fn the_poll_interval_counts_from_the_last_query() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        app(&db);
        let clock = ManualClock::default();
        let mut task = start_at(
            config(&db, "incrementing").set(POLL_INTERVAL, "250"),
            &clock,
            None,
        )
        .unwrap();
        let running = task.running.as_ref().unwrap();
        assert_eq!(running.wait(Duration::ZERO), None, "the first poll queries");
        task.poll().unwrap();
        let running = task.running.as_ref().unwrap();
        assert_eq!(
            running.wait(Duration::from_millis(100)),
            Some(Duration::from_millis(150))
        );
        assert_eq!(running.wait(Duration::from_millis(250)), None);
    }

    #[test]
    fn timestamp_mode_reads_rows_old_enough_and_whole_timestamp_groups() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = app(&db);
        insert(
            &conn,
            &[
                (100, "a"),
                (200, "b"),
                (200, "c"),
                (200, "d"),
                (300, "e"),
                (400, "f"),
            ],
        );
        let clock = ManualClock::at(360);
        let config = config(&db, "timestamp")
            .set(TIMESTAMP_COLUMN, "ts")
            .set(TIMESTAMP_DELAY, "50")
            .set(BATCH_MAX_ROWS, "2");
        let mut task = start_at(config.clone(), &clock, None).unwrap();
        // Below 360 - 50: a batch never ends inside the 200 group.
        assert_eq!(bodies(&task.poll().unwrap()), ["a"]);
        let group = task.poll().unwrap();
        assert_eq!(bodies(&group), ["b", "c", "d"]);
        assert_eq!(group[0].record.timestamp, Some(200));
        assert_eq!(group[0].record.key, None, "no key column in timestamp mode");
        assert_eq!(
            group[2].source_offset,
            Map::from([("timestamp".to_string(), Value::Int(200))])
        );
        assert_eq!(bodies(&task.poll().unwrap()), ["e"]);
        assert!(task.poll().unwrap().is_empty());
        // 400 once it is 50 ms old; an update that moves a row's
        // timestamp brings it again.
        clock.0.lock().unwrap().wall_ms = 451;
        conn.execute("UPDATE events SET ts = 420 WHERE body = 'a'", [])
            .unwrap();
        let later = drain(&mut task, &clock);
        assert_eq!(bodies(&later), ["f", "a"]);

        // A restart resumes after the stored timestamp.
        insert(&conn, &[(500, "g")]);
        let mut task = start_at(config, &clock, later.last()).unwrap();
        assert_eq!(bodies(&drain(&mut task, &clock)), ["g"]);
    }

    #[test]
    fn timestamp_incrementing_orders_ties_by_id_and_resumes_inside_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = app(&db);
        insert(&conn, &[(200, "a"), (100, "b"), (200, "c"), (200, "d")]);
        let clock = ManualClock::at(1_000);
        let config = config(&db, "timestamp+incrementing")
            .set(TIMESTAMP_COLUMN, "ts")
            .set(BATCH_MAX_ROWS, "1");
        let mut task = start_at(config.clone(), &clock, None).unwrap();
        let first: Vec<SourceRecord> = (0..2).flat_map(|_| task.poll().unwrap()).collect();
        assert_eq!(bodies(&first), ["b", "a"]);
        assert_eq!(
            first[1].source_offset,
            Map::from([
                ("incrementing".to_string(), Value::Int(1)),
                ("timestamp".to_string(), Value::Int(200)),
            ])
        );
        assert_eq!(first[1].record.key, Some(Value::Int(1)));
        task.stop();
        // Stopped inside the 200 group: c and d come, a does not again.
        insert(&conn, &[(150, "late"), (300, "e")]);
        let mut task = start_at(config, &clock, first.last()).unwrap();
        assert_eq!(bodies(&drain(&mut task, &clock)), ["c", "d", "e"]);
    }

    #[test]
    fn outbox_deletes_only_rows_whose_offsets_are_committed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = app(&db);
        let remaining = || -> Vec<String> {
            let mut stmt = conn.prepare("SELECT body FROM events ORDER BY id").unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        insert(&conn, &[(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
        let clock = ManualClock::default();
        let config = config(&db, "outbox").set(BATCH_MAX_ROWS, "2");
        let mut task = start_at(config.clone(), &clock, None).unwrap();
        let first = task.poll().unwrap();
        assert_eq!(bodies(&first), ["a", "b"]);
        assert_eq!(
            remaining(),
            ["a", "b", "c", "d"],
            "nothing deleted before commit"
        );
        task.commit().unwrap();
        assert_eq!(remaining(), ["c", "d"]);

        // Polled but not committed: c and d stay; e, written after the
        // poll, stays after the commit.
        let second = task.poll().unwrap();
        assert_eq!(bodies(&second), ["c", "d"]);
        insert(&conn, &[(5, "e")]);
        task.commit().unwrap();
        assert_eq!(remaining(), ["e"]);
        let third = task.poll().unwrap();
        assert_eq!(bodies(&third), ["e"]);
        task.stop();

        // A crash before e's offset was stored: e comes again.
        let mut task = start_at(config.clone(), &clock, second.last()).unwrap();
        assert_eq!(bodies(&drain(&mut task, &clock)), ["e"]);
        task.stop();
        // A crash after e's offset was stored but before its delete: the
        // restart deletes it and does not send it again.
        insert(&conn, &[(6, "f")]);
        let mut task = start_at(config, &clock, third.last()).unwrap();
        assert_eq!(remaining(), ["f"]);
        assert_eq!(bodies(&drain(&mut task, &clock)), ["f"]);
        // New ids stay above the deleted ones (AUTOINCREMENT).
        task.commit().unwrap();
        insert(&conn, &[(7, "g")]);
        assert_eq!(bodies(&drain(&mut task, &clock)), ["g"]);
    }

    #[test]
    fn outbox_needs_autoincrement_and_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, \"autoincrement\" TEXT);
             CREATE VIEW v AS SELECT * FROM events;",
        )
        .unwrap();
        let clock = ManualClock::default();
        let e = start_at(config(&db, "outbox"), &clock, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("AUTOINCREMENT"), "{e}");
        let e = start_at(
            config(&db, "outbox")
                .set(TABLE, "v")
                .set(INCREMENTING_COLUMN, "id"),
            &clock,
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("view"), "{e}");
        // Incrementing mode reads it (the caveat is documented).
        assert!(start_at(config(&db, "incrementing"), &clock, None).is_ok());

        assert!(declares_autoincrement(
            "CREATE TABLE t (id integer primary key autoincrement)"
        ));
        assert!(!declares_autoincrement(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, [autoincrement] x)"
        ));
        assert!(!declares_autoincrement(
            "CREATE TABLE t (id INTEGER PRIMARY KEY) -- AUTOINCREMENT"
        ));
        assert!(!declares_autoincrement(
            "CREATE TABLE t (x DEFAULT 'AUTOINCREMENT', \"a\"\"AUTOINCREMENT\" /* AUTOINCREMENT */)"
        ));
    }

    #[test]
    fn other_modes_read_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = app(&db);
        insert(&conn, &[(1, "a")]);
        drop(conn); // The last connection removes the WAL files.
        assert!(!dir.path().join("app.db-wal").exists());
        let clock = ManualClock::default();
        let mut task = start_at(config(&db, "incrementing"), &clock, None).unwrap();
        assert_eq!(bodies(&task.poll().unwrap()), ["a"]);
        let e = task
            .running
            .as_ref()
            .unwrap()
            .conn
            .execute("DELETE FROM events", [])
            .unwrap_err();
        assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly));
        let missing = dir.path().join("missing.db");
        assert!(start_at(config(&missing, "incrementing"), &clock, None).is_err());
        assert!(!missing.exists(), "a source creates no database");
    }

    #[test]
    fn a_locked_database_makes_the_poll_retriable() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).unwrap();
        // Rollback-journal mode, where a writer's lock blocks readers.
        conn.execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)")
            .unwrap();
        let clock = ManualClock::default();
        let mut task = start_at(
            config(&db, "incrementing").set(BUSY_TIMEOUT_MS, "0"),
            &clock,
            None,
        )
        .unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE; INSERT INTO events (body) VALUES ('a')")
            .unwrap();
        let e = task.poll().unwrap_err();
        assert!(e.is_retriable(), "{e}");
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(bodies(&drain(&mut task, &clock)), ["a"]);
    }

    #[test]
    fn columns_are_checked_at_start_and_values_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (seq, ts INTEGER, body TEXT);
             INSERT INTO events VALUES (1, 5, 'a'), ('two', 6, 'b');",
        )
        .unwrap();
        let clock = ManualClock::at(100);
        let e = start_at(config(&db, "incrementing"), &clock, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("INTEGER PRIMARY KEY") && e.contains(INCREMENTING_COLUMN),
            "{e}"
        );
        let e = start_at(
            config(&db, "incrementing").set(INCREMENTING_COLUMN, "nope"),
            &clock,
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("nope") && e.contains("seq, ts, body"), "{e}");
        let e = start_at(
            config(&db, "incrementing").set(TABLE, "other"),
            &clock,
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("no table \"other\""), "{e}");

        // Declared names match without case; a text id is an error.
        let mut task = start_at(
            config(&db, "incrementing")
                .set(INCREMENTING_COLUMN, "SEQ")
                .set(KEY_COLUMN, "body")
                .set(TIMESTAMP_COLUMN, "ts")
                .set(TOPIC, "out"),
            &clock,
            None,
        )
        .unwrap();
        let e = task.poll().unwrap_err().to_string();
        assert!(e.contains("\"seq\"") && e.contains("string"), "{e}");
        conn.execute("DELETE FROM events WHERE seq = 'two'", [])
            .unwrap();
        let records = drain(&mut task, &clock);
        assert_eq!(records.len(), 1);
        let r = &records[0].record;
        assert_eq!(
            (r.topic.as_str(), &r.key, r.timestamp),
            ("out", &Some(Value::from("a")), Some(5))
        );
    }

    #[test]
    fn bad_configurations_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let c = SqliteSourceConnector;
        assert!(c.validate(&config(&db, "incrementing")).is_ok());
        for (config, key) in [
            (
                config(&db, "incrementing").set(CONNECTION_URL, ""),
                CONNECTION_URL,
            ),
            (config(&db, "incrementing").set(TABLE, ""), TABLE),
            (config(&db, ""), MODE),
            (config(&db, "bulk"), MODE),
            (config(&db, "timestamp"), TIMESTAMP_COLUMN),
            (config(&db, "timestamp+incrementing"), TIMESTAMP_COLUMN),
            (
                config(&db, "timestamp")
                    .set(TIMESTAMP_COLUMN, "ts")
                    .set(INCREMENTING_COLUMN, "id"),
                INCREMENTING_COLUMN,
            ),
            (
                config(&db, "incrementing").set(BATCH_MAX_ROWS, "0"),
                BATCH_MAX_ROWS,
            ),
            (
                config(&db, "incrementing").set(POLL_INTERVAL, "soon"),
                POLL_INTERVAL,
            ),
            (
                config(&db, "incrementing").set(KEY_COLUMN, "a\0"),
                KEY_COLUMN,
            ),
        ] {
            let e = c.validate(&config).unwrap_err().to_string();
            assert!(e.contains(&format!("{key:?}")), "{key}: {e}");
        }
        assert_eq!(c.task_configs(&config(&db, "outbox"), 3).unwrap().len(), 1);
        assert!(c.defaults().contains(&("key.converter", "string")));
        // A stored offset of the wrong shape fails the start.
        app(&db);
        let bad = SourceRecord::new("events", None)
            .source_partition([("table", Value::from("events"))])
            .source_offset([("incrementing", Value::from("x"))]);
        let e = start_at(
            config(&db, "incrementing"),
            &ManualClock::default(),
            Some(&bad),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("incrementing") && e.contains("string"), "{e}");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(usize),
        Poll,
        /// The runtime stores the offsets of everything polled, then
        /// calls commit.
        Commit,
        /// The task stops (or crashes) and a new one starts from the
        /// stored offset.
        Restart,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Any interleaving of inserts, polls, commits and restarts reads
        /// every row in id order, once from each stored offset; the outbox
        /// keeps exactly the rows not yet committed.
        #[test]
        fn every_row_is_read_in_order_from_the_stored_offset(
            outbox in any::<bool>(),
            batch in 1..4usize,
            ops in proptest::collection::vec(
                prop_oneof![
                    2 => (1..4usize).prop_map(Op::Insert),
                    4 => Just(Op::Poll),
                    1 => Just(Op::Commit),
                    1 => Just(Op::Restart),
                ],
                0..40,
            ),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("app.db");
            let conn = app(&db);
            let mode = if outbox { "outbox" } else { "incrementing" };
            let config = config(&db, mode).set(BATCH_MAX_ROWS, batch);
            let clock = ManualClock::default();
            let mut task = start_at(config.clone(), &clock, None).unwrap();
            let (mut inserted, mut next, mut last_polled, mut stored) = (0i64, 1i64, None, None::<SourceRecord>);
            let ops = ops.into_iter().chain([Op::Commit, Op::Poll, Op::Poll]);
            for op in ops {
                match op {
                    Op::Insert(n) => {
                        for _ in 0..n {
                            inserted += 1;
                            insert(&conn, &[(inserted, "x")]);
                        }
                    }
                    Op::Poll => {
                        clock.advance(Duration::from_secs(3600));
                        let records = task.poll().unwrap();
                        prop_assert!(records.len() <= batch);
                        for r in records {
                            prop_assert_eq!(r.record.key.clone(), Some(Value::Int(next)));
                            next += 1;
                            last_polled = Some(r);
                        }
                    }
                    Op::Commit => {
                        stored = last_polled.clone().or(stored);
                        task.commit().unwrap();
                        if outbox {
                            let left: i64 = conn
                                .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                                .unwrap();
                            prop_assert_eq!(left, inserted - (next - 1));
                        }
                    }
                    Op::Restart => {
                        task.stop();
                        task = start_at(config.clone(), &clock, stored.as_ref()).unwrap();
                        next = stored
                            .as_ref()
                            .and_then(|r| r.record.key.as_ref()?.as_i64())
                            .map_or(1, |id| id + 1);
                        last_polled = None;
                    }
                }
            }
            let rest = drain(&mut task, &clock);
            for r in &rest {
                prop_assert_eq!(r.record.key.clone(), Some(Value::Int(next)));
                next += 1;
            }
            prop_assert_eq!(next - 1, inserted);
        }
    }
}
