//! A JSON object read entry by entry, keeping every key (duplicates included) and the byte
//! offset of every value.
//!
//! `serde_json::Map` silently keeps the last of two equal keys and forgets where anything was.
//! The safetensors header, the shard index and `config.json` need both: a duplicate is an error,
//! and every error names a byte offset. Values are captured as borrowed [`RawValue`]s, slices
//! of the input text, so an entry's offset is its slice's position in the text and reading a
//! value later costs no copy. Skipping over a nested value uses serde_json's explicit stack (a
//! byte per level), not recursion; typed reads of a value later stop at serde_json's recursion
//! limit (128).

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One `"key": value` pair of an object.
pub(crate) struct JsonEntry<'a> {
    /// The key, unescaped.
    pub key: String,
    /// The value's text, borrowed from the input.
    pub value: &'a RawValue,
    /// Absolute byte offset of the value's first byte.
    pub offset: u64,
}

/// Why a text is not a JSON object of at most `max_entries` entries.
#[derive(Debug, PartialEq)]
pub(crate) enum ObjectError {
    /// Not JSON at all.
    NotJson {
        /// Absolute offset of the byte where parsing stopped.
        offset: u64,
        /// Line within the text, from 1.
        line: usize,
        /// Byte column within that line, from 1.
        column: usize,
        /// serde_json's message, without its position suffix.
        message: String,
    },
    /// JSON, but not an object.
    NotObject {
        /// Absolute offset of the value.
        offset: u64,
        /// What it is instead.
        found: &'static str,
    },
    /// More entries than allowed.
    TooManyEntries {
        /// Absolute offset of the first value past the cap.
        offset: u64,
    },
}

/// Reads `text` (which starts at absolute offset `base` in its file) as a JSON object of at
/// most `max_entries` entries, in document order.
pub(crate) fn read_object(
    text: &str,
    base: u64,
    max_entries: usize,
) -> Result<Vec<JsonEntry<'_>>, ObjectError> {
    let overflow = Cell::new(None);
    let seed = ObjectSeed { text, base, max_entries, overflow: &overflow };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = seed.deserialize(&mut de).and_then(|entries| de.end().map(|()| entries));
    match parsed {
        Ok(entries) => Ok(entries),
        Err(_) if overflow.get().is_some() => {
            Err(ObjectError::TooManyEntries { offset: overflow.get().unwrap_or(base) })
        }
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            let start = text.len() - text.trim_start().len();
            Err(ObjectError::NotObject {
                offset: base.saturating_add(start as u64),
                found: json_kind(text.trim_start()),
            })
        }
        Err(e) => Err(ObjectError::NotJson {
            offset: error_offset(text, base, &e),
            line: e.line(),
            column: e.column(),
            message: error_message(&e),
        }),
    }
}

/// Absolute offset of `part`, a slice of `text`, when `text` starts at absolute `base`.
pub(crate) fn offset_within(text: &str, base: u64, part: &str) -> u64 {
    let delta = (part.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    if delta <= text.len() {
        base.saturating_add(delta as u64)
    } else {
        base
    }
}

/// Absolute offset of the byte where serde_json stopped reading `text` (which starts at
/// absolute `base`): the start of the error's line plus its byte column.
pub(crate) fn error_offset(text: &str, base: u64, e: &serde_json::Error) -> u64 {
    if e.line() == 0 {
        return base;
    }
    let mut line_start = 0usize;
    for _ in 1..e.line() {
        match text.as_bytes().get(line_start..).and_then(|rest| rest.iter().position(|&b| b == b'\n')) {
            Some(nl) => line_start = line_start.saturating_add(nl).saturating_add(1),
            None => break,
        }
    }
    // serde_json's column counts bytes and points one past the byte it stopped at.
    let within = line_start.saturating_add(e.column().saturating_sub(1)).min(text.len());
    base.saturating_add(within as u64)
}

/// serde_json's message without the " at line L column C" suffix, which would be relative to
/// a sub-text and mislead.
pub(crate) fn error_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(s) => s.to_owned(),
        None => full,
    }
}

/// The JSON type of a value's text (which starts at its first byte), for messages.
pub(crate) fn json_kind(value: &str) -> &'static str {
    match value.as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "number",
        _ => "value",
    }
}

struct ObjectSeed<'t, 's> {
    text: &'t str,
    base: u64,
    max_entries: usize,
    overflow: &'s Cell<Option<u64>>,
}

impl<'de, 's> DeserializeSeed<'de> for ObjectSeed<'de, 's> {
    type Value = Vec<JsonEntry<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 's> Visitor<'de> for ObjectSeed<'de, 's> {
    type Value = Vec<JsonEntry<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: &'de RawValue = map.next_value()?;
            let offset = offset_within(self.text, self.base, value.get());
            if entries.len() >= self.max_entries {
                self.overflow.set(Some(offset));
                return Err(serde::de::Error::custom("too many entries"));
            }
            entries.push(JsonEntry { key, value, offset });
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_duplicates_order_and_offsets() {
        let text = r#" {"b": 1, "a" :[2, 3], "b":"x\"y"} "#;
        let entries = read_object(text, 8, 10).unwrap();
        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["b", "a", "b"]);
        for e in &entries {
            let at = (e.offset - 8) as usize;
            assert_eq!(&text[at..at + e.value.get().len()], e.value.get());
        }
        assert_eq!(entries[1].value.get(), "[2, 3]");
        assert_eq!(entries[2].offset, 8 + text.find("\"x").unwrap() as u64);
    }

    #[test]
    fn syntax_error_offset_points_at_the_bad_byte() {
        let text = "{\"a\": 1,\n  \"b\": x}";
        match read_object(text, 100, 10) {
            Err(ObjectError::NotJson { offset, line, .. }) => {
                assert_eq!(line, 2);
                assert_eq!(offset, 100 + text.find('x').unwrap() as u64);
            }
            other => panic!("{:?}", other.map(|v| v.len())),
        }
    }

    #[test]
    fn non_objects_and_trailing_text() {
        assert_eq!(
            read_object("  [1]", 0, 10).err(),
            Some(ObjectError::NotObject { offset: 2, found: "array" })
        );
        assert!(matches!(read_object("{} x", 0, 10), Err(ObjectError::NotJson { offset: 3, .. })));
        assert!(matches!(read_object("", 0, 10), Err(ObjectError::NotJson { .. })));
    }

    #[test]
    fn entry_cap_reports_first_entry_past_it() {
        let text = r#"{"a":1,"b":2,"c":3}"#;
        assert_eq!(read_object(text, 0, 2).err(), Some(ObjectError::TooManyEntries { offset: 17 }));
        assert_eq!(read_object(text, 0, 3).unwrap().len(), 3);
    }

    #[test]
    fn deep_nesting_in_a_value_does_not_recurse() {
        // Capturing a raw value skips it with an explicit stack, one byte per level.
        let text = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(read_object(&text, 0, 10).unwrap().len(), 1);
    }
}
