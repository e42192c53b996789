//! What every subcommand shares: errors with hints and exit codes, opening
//! the directory, output, progress bars.

use embedlog::{Broker, Error};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

/// Exit status: an error (bad input, a failed operation).
pub const EXIT_ERROR: u8 = 1;
/// Exit status: `verify` or `dump-log` found damaged data.
pub const EXIT_DAMAGED: u8 = 3;

/// Why a subcommand failed: what happened, and what to do about it.
#[derive(Debug)]
pub struct Fail {
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
}

impl Fail {
    /// A failure with a message and the general error status.
    pub fn new(message: impl Into<String>) -> Fail {
        Fail {
            message: message.into(),
            hint: None,
            code: EXIT_ERROR,
        }
    }

    /// Adds what the user can do.
    pub fn hint(mut self, hint: impl Into<String>) -> Fail {
        self.hint = Some(hint.into());
        self
    }

    /// Prints the failure on stderr and returns its exit status.
    pub fn report(&self) -> ExitCode {
        eprintln!("embedlog: error: {}", self.message);
        if let Some(h) = &self.hint {
            eprintln!("  hint: {h}");
        }
        ExitCode::from(self.code)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        let hint = match &e {
            Error::Locked { .. } => Some(
                "another process (the application?) owns this directory; commands that \
                 only read (topics list/describe, consume without --group, groups \
                 list/describe, dump-log, verify) work while it runs; stop it to change \
                 the directory"
                    .to_string(),
            ),
            Error::UnknownTopic { .. } => Some("`embedlog topics list` shows the topics".into()),
            Error::Corrupt { .. } => Some("`embedlog verify` checks the whole directory".into()),
            _ => None,
        };
        Fail {
            message: e.to_string(),
            hint,
            code: EXIT_ERROR,
        }
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail::new(e.to_string())
    }
}

/// Opens `dir` as its owner (takes the directory lock). For commands that
/// change the directory.
pub fn open_owner(dir: &Path) -> Result<Broker, Fail> {
    if !dir.join("topics").is_dir() {
        return Err(Fail::new(format!(
            "{} is not an embedlog data directory (it has no topics/ directory)",
            dir.display()
        ))
        .hint(
            "pass the application's directory with --dir; `embedlog topics create` makes a new one",
        ));
    }
    Ok(Broker::open(dir)?)
}

/// Opens `dir` as its owner, creating it if needed (`topics create`,
/// `perf produce`).
pub fn open_or_create_owner(dir: &Path) -> Result<Broker, Fail> {
    Ok(Broker::open(dir)?)
}

/// A progress bar on stderr when it is a terminal; hidden (and free)
/// otherwise. `len` is the total, if known.
pub fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
        return bar;
    }
    let template = if len.is_some() {
        "{msg} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})"
    } else {
        "{msg} {human_pos} ({per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Prints `value` as one line of JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// Bytes in JSON: a string when UTF-8, else `{"hex": "…"}`; `null` for
/// none.
pub fn json_bytes(b: Option<&[u8]>) -> serde_json::Value {
    match b {
        None => serde_json::Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => serde_json::Value::String(s.to_string()),
            Err(_) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                serde_json::json!({ "hex": hex })
            }
        },
    }
}

/// Formats milliseconds since the epoch as RFC 3339 UTC
/// (`2026-12-02T04:26:56.123Z`); negative values (no timestamp) as `-`.
pub fn format_time(ms: i64) -> String {
    if ms < 0 {
        return "-".to_string();
    }
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses a time given as milliseconds since the epoch, or as RFC 3339 /
/// Kafka's `YYYY-MM-DDTHH:mm:SS[.sss]` (UTC unless it ends in `Z` or an
/// offset `±HH:MM`), or a date `YYYY-MM-DD`.
pub fn parse_time(s: &str) -> Result<i64, Fail> {
    let bad = || {
        Fail::new(format!("cannot read {s:?} as a time"))
            .hint("give milliseconds since the epoch, or 2026-12-02T10:00:00[.000][Z|+01:00]")
    };
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    // Everything below slices by byte: only ASCII can be a time anyway.
    if !s.is_ascii() {
        return Err(bad());
    }
    // Unsigned decimal digits only (no sign, no spaces).
    let digits = |f: &str| -> Result<i64, Fail> {
        if f.is_empty() || f.len() > 4 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        f.parse().map_err(|_| bad())
    };
    let (date, rest) = s.split_at(s.find('T').unwrap_or(s.len()));
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (y, m, d) = (digits(y)?, digits(m)? as u32, digits(d)? as u32);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    let rest = rest.strip_prefix('T').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(ms);
    }
    // Split off a zone: Z, or +HH:MM / -HH:MM.
    let (clock, offset_ms) = if let Some(c) = rest.strip_suffix('Z') {
        (c, 0)
    } else if rest.len() > 6 && matches!(&rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
        let (c, z) = rest.split_at(rest.len() - 6);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        if z.as_bytes()[3] != b':' {
            return Err(bad());
        }
        let (hh, mm) = (digits(&z[1..3])?, digits(&z[4..6])?);
        if hh > 23 || mm > 59 {
            return Err(bad());
        }
        (c, sign * (hh * 3_600_000 + mm * 60_000))
    } else {
        (rest, 0)
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut fields = hms.split(':');
    let h = digits(fields.next().ok_or_else(bad)?)?;
    let mi = digits(fields.next().unwrap_or("0"))?;
    let sec = digits(fields.next().unwrap_or("0"))?;
    if fields.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let frac_ms: i64 = if frac.is_empty() {
        0
    } else {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let millis: String = frac.chars().chain("000".chars()).take(3).collect();
        digits(&millis)?
    };
    ms += h * 3_600_000 + mi * 60_000 + sec * 1000 + frac_ms;
    Ok(ms - offset_ms)
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian, UTC).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_parse_kafkas_forms() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(1_764_649_616_123), "2025-12-02T04:26:56.123Z");
        for ms in [0, 1, 951_782_400_000, 1_764_649_616_123, 4_102_444_800_000] {
            assert_eq!(parse_time(&format_time(ms)).unwrap(), ms);
        }
        assert_eq!(parse_time("1764649616123").unwrap(), 1_764_649_616_123);
        assert_eq!(parse_time("2025-12-02").unwrap(), 1_764_633_600_000);
        assert_eq!(
            parse_time("2025-12-02T05:26:56.123+01:00").unwrap(),
            1_764_649_616_123
        );
        assert_eq!(
            parse_time("2025-12-02T04:26:56").unwrap(),
            1_764_649_616_000
        );
        for bad in [
            "yesterday",
            "2025-13-01",
            "2025-12-02T25:00",
            "2025-12",
            "2025-12-02T10:00+0é00",
            "2025-12-02T10:00+00é0",
            "2025-12-02T10:00+01x00",
            "9000000000000000-01-01",
            "2025-12-02T-1:00",
            "2025-12-02T10:00:00.1a",
            "+2025-12-02",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert_eq!(format_time(-1), "-");
    }
}
