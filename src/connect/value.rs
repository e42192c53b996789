//! Connect's data model: the schemaless values records carry between
//! converters, transforms and connectors, and the maps that name a source
//! partition and a position in it.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;

/// A map of named values: a [`Value::Map`]'s fields, a source partition
/// (`{"filename": "/var/log/app.log"}`), a source offset (`{"position": 4096}`).
pub type Map = BTreeMap<String, Value>;

/// A value as connectors, converters and transforms see it: what Kafka
/// Connect calls schemaless data. A row, a JSON object or a struct is a
/// [`Value::Map`].
///
/// ```
/// use embedlog::connect::Value;
/// let row = Value::map([("id", Value::Int(7)), ("name", Value::from("ada"))]);
/// assert_eq!(row.get("id"), Some(&Value::Int(7)));
/// assert_eq!(row.to_json_string(), r#"{"id":7,"name":"ada"}"#);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// No value (JSON `null`, SQL `NULL`).
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// UTF-8 text.
    String(String),
    /// Raw bytes.
    Bytes(Bytes),
    /// A list.
    Array(Vec<Value>),
    /// Named fields, in name order.
    Map(Map),
}

impl Value {
    /// A [`Value::Map`] from `(name, value)` pairs.
    pub fn map<K: Into<String>>(fields: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The field `name` of a map, `None` for another kind of value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.get(name),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The kind of value, for error messages ("map", "bytes", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }

    /// This value as JSON. Bytes become base64 text, as Kafka's
    /// `JsonConverter` writes them; a non-finite float becomes `null`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Bytes(b) => J::String(base64(b)),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// [`to_json`](Self::to_json) as compact text.
    pub fn to_json_string(&self) -> String {
        self.to_json().to_string()
    }

    /// A value from JSON: integers that fit an `i64` stay integers, other
    /// numbers become floats.
    pub fn from_json(json: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::String(s.clone()),
            J::Array(a) => Value::Array(a.iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The text a string converter writes: strings as they are, bytes as
    /// UTF-8 (lossy), numbers and booleans in their usual form, arrays and
    /// maps as JSON.
    pub fn to_text(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Array(_) | Value::Map(_) => self.to_json_string(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<u64> for Value {
    /// Values above `i64::MAX` become floats.
    fn from(u: u64) -> Value {
        i64::try_from(u).map_or(Value::Float(u as f64), Value::Int)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}
impl From<Bytes> for Value {
    fn from(b: Bytes) -> Value {
        Value::Bytes(b)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::Bytes(b.into())
    }
}
impl From<Map> for Value {
    fn from(m: Map) -> Value {
        Value::Map(m)
    }
}

/// Standard base64 with padding (RFC 4648 §4), as Java's encoder writes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let word = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= n {
                out.push(ALPHABET[(word >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn json_round_trips_every_kind_but_bytes() {
        let v = Value::map([
            ("n", Value::Null),
            ("b", Value::Bool(true)),
            ("i", Value::Int(-3)),
            ("f", Value::Float(1.5)),
            ("s", Value::from("x")),
            ("a", Value::Array(vec![Value::Int(1), Value::from("y")])),
        ]);
        assert_eq!(Value::from_json(&v.to_json()), v);
        assert_eq!(
            Value::from(Bytes::from_static(b"hi")).to_json_string(),
            "\"aGk=\""
        );
    }
}
