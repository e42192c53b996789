//! Converters: between the bytes a topic stores and the [`Value`]s
//! connectors and transforms handle (`key.converter`, `value.converter`).

use super::error::{Error, Result};
use super::value::Value;
use bytes::Bytes;

/// Turns stored bytes into values (for sinks) and values into bytes (for
/// sources). `None` (a null key, a tombstone) stays `None` both ways.
pub trait Converter: Send + Sync + std::fmt::Debug {
    /// The converter's name, for errors.
    fn name(&self) -> &'static str;

    /// The value stored as `bytes`.
    ///
    /// # Errors
    /// [`Error::Conversion`] when the bytes are not in this format.
    fn to_value(&self, bytes: Option<&Bytes>) -> Result<Option<Value>>;

    /// The bytes to store for `value`.
    ///
    /// # Errors
    /// [`Error::Conversion`] when the value has no form in this format.
    fn to_bytes(&self, value: Option<&Value>) -> Result<Option<Bytes>>;

    /// [`to_bytes`](Self::to_bytes) of a value the caller gives up: a
    /// converter that stores text or bytes as they are moves them instead
    /// of copying (the runtime sends every source record through it).
    ///
    /// # Errors
    /// As [`to_bytes`](Self::to_bytes).
    fn to_bytes_owned(&self, value: Option<Value>) -> Result<Option<Bytes>> {
        self.to_bytes(value.as_ref())
    }
}

/// Bytes as they are ([`Value::Bytes`]); writes bytes and strings only.
/// Kafka's `ByteArrayConverter`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn name(&self) -> &'static str {
        "bytes"
    }

    fn to_value(&self, bytes: Option<&Bytes>) -> Result<Option<Value>> {
        Ok(bytes.map(|b| Value::Bytes(b.clone())))
    }

    fn to_bytes(&self, value: Option<&Value>) -> Result<Option<Bytes>> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(b.clone())),
            Some(Value::String(s)) => Ok(Some(Bytes::from(s.clone().into_bytes()))),
            Some(other) => Err(Error::Conversion {
                converter: "bytes",
                reason: format!(
                    "cannot write a {} as raw bytes; use the string or json converter",
                    other.kind()
                ),
            }),
        }
    }

    fn to_bytes_owned(&self, value: Option<Value>) -> Result<Option<Bytes>> {
        match value {
            Some(Value::Bytes(b)) => Ok(Some(b)),
            Some(Value::String(s)) => Ok(Some(Bytes::from(s.into_bytes()))),
            other => self.to_bytes(other.as_ref()),
        }
    }
}

/// UTF-8 text ([`Value::String`]); writes any value as its text
/// ([`Value::to_text`]). Kafka's `StringConverter`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn name(&self) -> &'static str {
        "string"
    }

    fn to_value(&self, bytes: Option<&Bytes>) -> Result<Option<Value>> {
        bytes
            .map(|b| match std::str::from_utf8(b) {
                Ok(s) => Ok(Value::String(s.to_string())),
                Err(e) => Err(Error::Conversion {
                    converter: "string",
                    reason: format!("not UTF-8 text: {e}"),
                }),
            })
            .transpose()
    }

    fn to_bytes(&self, value: Option<&Value>) -> Result<Option<Bytes>> {
        Ok(match value {
            None | Some(Value::Null) => None,
            Some(v) => Some(Bytes::from(v.to_text().into_bytes())),
        })
    }

    fn to_bytes_owned(&self, value: Option<Value>) -> Result<Option<Bytes>> {
        match value {
            Some(Value::String(s)) => Ok(Some(Bytes::from(s.into_bytes()))),
            other => self.to_bytes(other.as_ref()),
        }
    }
}

/// JSON text without an embedded schema (Kafka's `JsonConverter` with
/// `schemas.enable=false`). Bytes are written as base64 strings.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonConverter;

impl Converter for JsonConverter {
    fn name(&self) -> &'static str {
        "json"
    }

    fn to_value(&self, bytes: Option<&Bytes>) -> Result<Option<Value>> {
        let Some(bytes) = bytes else { return Ok(None) };
        let json: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::Conversion {
                converter: "json",
                reason: format!("not JSON: {e}"),
            })?;
        Ok(Some(Value::from_json(&json)))
    }

    fn to_bytes(&self, value: Option<&Value>) -> Result<Option<Bytes>> {
        Ok(value.map(|v| Bytes::from(v.to_json_string().into_bytes())))
    }
}

/// The converter a configuration names: `bytes`, `string`, `json`, or the
/// Kafka class names of the same three (`key` is the configuration key it
/// came from, for the error).
///
/// # Errors
/// [`Error::Config`] for any other name.
pub fn converter_named(connector: &str, key: &str, name: &str) -> Result<Box<dyn Converter>> {
    let short = name.rsplit('.').next().unwrap_or(name);
    Ok(match short.to_ascii_lowercase().as_str() {
        "bytes" | "bytearray" | "bytearrayconverter" => Box::new(ByteArrayConverter),
        "string" | "stringconverter" => Box::new(StringConverter),
        "json" | "jsonconverter" => Box::new(JsonConverter),
        _ => {
            return Err(Error::config(
                connector,
                key,
                format!("unknown converter {name:?}: bytes, string or json"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_converter_round_trips_what_it_writes() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(
            StringConverter.to_value(Some(&b("hé"))).unwrap(),
            Some(Value::from("hé"))
        );
        assert!(
            StringConverter
                .to_value(Some(&Bytes::from_static(&[0xff])))
                .is_err()
        );
        let v = JsonConverter
            .to_value(Some(&b(r#"{"a":[1,2.5,null]}"#)))
            .unwrap()
            .unwrap();
        assert_eq!(
            JsonConverter.to_bytes(Some(&v)).unwrap().unwrap(),
            b(r#"{"a":[1,2.5,null]}"#)
        );
        let e = JsonConverter
            .to_value(Some(&b("{")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("json converter: not JSON"), "{e}");
        assert!(ByteArrayConverter.to_bytes(Some(&Value::Int(1))).is_err());
        assert_eq!(
            StringConverter
                .to_bytes(Some(&Value::Int(42)))
                .unwrap()
                .unwrap(),
            b("42")
        );
        assert_eq!(JsonConverter.to_value(None).unwrap(), None);
        assert_eq!(
            converter_named(
                "c",
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter"
            )
            .unwrap()
            .name(),
            "json"
        );
        assert!(converter_named("c", "value.converter", "avro").is_err());
    }
}
