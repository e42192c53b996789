//! Topic names: Kafka's rules for them.

use crate::error::{Error, Result};

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name as Kafka does: 1–249 characters from
/// `[a-zA-Z0-9._-]`, and not `.` or `..`.
///
/// # Errors
/// [`Error::InvalidTopicName`] saying what is wrong.
///
/// ```
/// assert!(embedlog::validate_topic_name("orders.v2_eu-west").is_ok());
/// assert!(embedlog::validate_topic_name("bad/name").is_err());
/// assert!(embedlog::validate_topic_name("..").is_err());
/// ```
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty".into());
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are not allowed".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad(format!(
            "it is {} characters long; the maximum is {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(format!("{c:?} is not one of [a-zA-Z0-9._-]"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka() {
        for ok in ["a", "A-b_c.d", "0", &"x".repeat(249), "..."] {
            validate_topic_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250), "a\0"] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(Error::InvalidTopicName { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
