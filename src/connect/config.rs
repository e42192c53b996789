//! Connector configuration: string keys and values, as Kafka Connect's
//! properties files hold them, with typed, checked getters.

use super::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// One connector's configuration: `name`, `connector.class`, `tasks.max`
/// and the connector's own keys. Getters turn a bad value into an
/// [`Error::Config`] naming the connector and the key.
///
/// ```
/// use embedlog::connect::ConnectorConfig;
/// let config = ConnectorConfig::from_properties(
///     "name=lines\nconnector.class=FileStreamSource\nfile=/tmp/in.txt\ntopic=lines\n",
/// )?;
/// assert_eq!(config.name(), "lines");
/// assert_eq!(config.required("topic")?, "lines");
/// assert_eq!(config.parse_or("tasks.max", 1usize)?, 1);
/// # Ok::<(), embedlog::connect::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectorConfig {
    props: BTreeMap<String, String>,
}

impl ConnectorConfig {
    /// A configuration with `name` and `connector.class` set.
    pub fn new(name: &str, class: &str) -> Self {
        ConnectorConfig::default()
            .set("name", name)
            .set("connector.class", class)
    }

    /// Sets `key` to `value`.
    pub fn set(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.props.insert(key.into(), value.to_string());
        self
    }

    /// Sets `key` to `value` in place.
    pub fn insert(&mut self, key: impl Into<String>, value: impl ToString) {
        self.props.insert(key.into(), value.to_string());
    }

    /// The connector's name (`name`; empty if unset).
    pub fn name(&self) -> &str {
        self.get("name").unwrap_or("")
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// [`Error::Config`] if it is unset or empty.
    pub fn required(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim()),
            _ => Err(Error::config(self.name(), key, "is required")),
        }
    }

    /// `key` parsed as a `T`, or `default` when unset.
    ///
    /// # Errors
    /// [`Error::Config`] if the value does not parse.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(key).map(str::trim) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| Error::config(self.name(), key, format!("{v:?} does not parse: {e}"))),
        }
    }

    /// `key` as a duration in milliseconds (Kafka's `*.ms` keys), or
    /// `default` when unset.
    ///
    /// # Errors
    /// [`Error::Config`] if it is not a whole number of milliseconds.
    pub fn duration_ms_or(&self, key: &str, default: Duration) -> Result<Duration> {
        let ms: u64 = self.parse_or(key, u64::try_from(default.as_millis()).unwrap_or(u64::MAX))?;
        Ok(Duration::from_millis(ms))
    }

    /// `key` as a comma-separated list (items trimmed, empty items
    /// dropped); empty when unset.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// `key` as one of `choices` (compared without case), or `default`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the accepted values.
    pub fn choice_or<'a>(
        &self,
        key: &str,
        choices: &[&'a str],
        default: &'a str,
    ) -> Result<&'a str> {
        let Some(v) = self.get(key).map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(v))
            .copied()
            .ok_or_else(|| {
                Error::config(
                    self.name(),
                    key,
                    format!("{v:?} is not one of {}", choices.join(", ")),
                )
            })
    }

    /// The keys under `prefix` with the prefix removed
    /// (`transforms.route.` → `regex`, `replacement`).
    pub fn with_prefix(&self, prefix: &str) -> BTreeMap<String, String> {
        self.props
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k[prefix.len()..].to_string(), v.clone()))
            .collect()
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.props.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Parses Java properties text: `key=value` or `key: value` lines,
    /// `#` and `!` comments, a trailing `\` continuing a line, and the
    /// escapes `\t \n \r \\ \= \: \uXXXX`.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] (with path `-`) for a line without a key.
    pub fn from_properties(text: &str) -> Result<Self> {
        parse_properties(text, Path::new("-"))
    }

    /// [`from_properties`](Self::from_properties) of a file.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read; [`Error::ConfigFile`] with the
    /// line of a bad entry.
    pub fn from_properties_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        parse_properties(&text, path)
    }
}

impl<K: Into<String>, V: ToString> FromIterator<(K, V)> for ConnectorConfig {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        ConnectorConfig {
            props: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.to_string()))
                .collect(),
        }
    }
}

fn parse_properties(text: &str, path: &Path) -> Result<ConnectorConfig> {
    let mut config = ConnectorConfig::default();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let mut logical = line.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        // A line ending in an odd number of backslashes continues.
        while logical.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1 {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_entry(&logical);
        let key = unescape(key, path, index + 1)?;
        if key.is_empty() {
            return Err(Error::ConfigFile {
                path: path.to_path_buf(),
                line: index + 1,
                reason: format!("no key before the separator in {line:?}"),
            });
        }
        let value = unescape(value, path, index + 1)?;
        config.props.insert(key, value);
    }
    Ok(config)
}

/// Splits at the first unescaped `=`, `:` or whitespace run.
fn split_entry(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' => return (line[..i].trim_end(), line[i + 1..].trim_start()),
            b' ' | b'\t' => {
                let rest = line[i..].trim_start();
                let rest = rest.strip_prefix(['=', ':']).map_or(rest, str::trim_start);
                return (&line[..i], rest);
            }
            _ => i += 1,
        }
    }
    (line, "")
}

fn unescape(s: &str, path: &Path, line: usize) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let c = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| Error::ConfigFile {
                        path: path.to_path_buf(),
                        line,
                        reason: format!("bad escape \\u{hex}: four hex digits expected"),
                    })?;
                out.push(c);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_follow_java_rules() {
        let text = "# comment\n! also\nname = a\nfile: /tmp/x\\ y\nlong=one,\\\n    two\nempty\nuni=\\u00e9\\t.\nsep key = v\n";
        let c = ConnectorConfig::from_properties(text).unwrap();
        assert_eq!(c.get("name"), Some("a"));
        assert_eq!(c.get("file"), Some("/tmp/x y"));
        assert_eq!(c.list("long"), ["one", "two"]);
        assert_eq!(c.get("empty"), Some(""));
        assert_eq!(c.get("uni"), Some("é\t."));
        assert_eq!(c.get("sep"), Some("key = v"));
    }

    #[test]
    fn bad_values_name_the_connector_and_key() {
        let c = ConnectorConfig::new("c", "X").set("tasks.max", "many");
        let e = c.parse_or("tasks.max", 1usize).unwrap_err().to_string();
        assert!(
            e.contains("\"c\"") && e.contains("tasks.max") && e.contains("many"),
            "{e}"
        );
        let e = c.required("topic").unwrap_err().to_string();
        assert!(e.contains("topic") && e.contains("required"), "{e}");
        let e = c
            .set("mode", "x")
            .choice_or("mode", &["a", "b"], "a")
            .unwrap_err();
        assert!(e.to_string().contains("a, b"), "{e}");
        let e = ConnectorConfig::from_properties("=v")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":1:"), "{e}");
    }

    #[test]
    fn prefixes_strip() {
        let c = ConnectorConfig::default()
            .set("transforms.r.regex", "a")
            .set("transforms.r.replacement", "b")
            .set("transforms.s.x", "c");
        let r = c.with_prefix("transforms.r.");
        assert_eq!(r.len(), 2);
        assert_eq!(r["regex"], "a");
    }
}
