//! Hugging Face `config.json` for Llama-family checkpoints (Llama, Mistral, Qwen2), old and new
//! key spellings alike, read into the [`ArchConfig`] the runner needs.
//!
//! transformers moved two keys in its 4.5x/5.x releases: `torch_dtype` became `dtype`, and
//! `rope_theta` moved into a `rope_parameters` object (`{"rope_type": "default", "rope_theta":
//! ...}`). Both spellings are read, the newer one winning when both are present. Unknown keys are
//! ignored, and an unknown `model_type` is read best-effort with the Llama key names. `null`
//! counts as absent (transformers writes `"head_dim": null` and the like). A present key of the
//! wrong JSON type is an error naming the key and its byte offset.

use std::io::Read;
use std::path::Path;

use crate::safetensors::json_object::{json_kind, read_object, JsonEntry, ObjectError};
use crate::{limits, ArchConfig, Error};

/// A `config.json` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is larger than smelt reads for a JSON side file.
    #[error("config is {len} bytes, above the limit of {max} for a JSON file")]
    TooLarge {
        /// File size in bytes.
        len: u64,
        /// The cap (`limits::MAX_JSON_FILE`).
        max: u64,
    },
    /// The file is not valid JSON (or not UTF-8).
    #[error("at byte {offset} (line {line}, column {column}): not valid JSON: {message}")]
    NotJson {
        /// Offset of the byte where parsing stopped.
        offset: u64,
        /// Line, from 1.
        line: usize,
        /// Byte column within that line, from 1.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// The file is valid JSON but not an object.
    #[error("at byte {offset}: config is a JSON {found}, not an object")]
    NotObject {
        /// Offset of the JSON value.
        offset: u64,
        /// What it is instead.
        found: &'static str,
    },
    /// A key smelt reads holds a value of the wrong JSON type (or out of range, such as a
    /// negative or fractional layer count).
    #[error("key '{key}' at byte {offset}: expected {expected}, found a JSON {found}")]
    WrongType {
        /// The key (`rope_parameters.rope_theta` for nested keys).
        key: String,
        /// Offset of the value.
        offset: u64,
        /// What smelt needs there.
        expected: &'static str,
        /// What the file has (`string`, `number`, ...).
        found: &'static str,
    },
    /// A key appears twice; JSON parsers keep one or the other, so the file is ambiguous.
    #[error("key '{key}' at byte {offset}: appears twice (first at byte {first_offset})")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Offset of its first value.
        first_offset: u64,
        /// Offset of the repeat's value.
        offset: u64,
    },
}

/// Reads and interprets an HF `config.json`.
pub fn read_hf_config(path: &Path) -> Result<ArchConfig, Error> {
    let text = read_text(path)?;
    parse_hf_config(&text).map_err(|e| Error::new(path, e))
}

/// Interprets the text of an HF `config.json`.
pub fn parse_hf_config(text: &str) -> Result<ArchConfig, ConfigError> {
    let max_keys = usize::try_from(limits::MAX_METADATA).unwrap_or(usize::MAX);
    let entries = read_object(text, 0, max_keys).map_err(|e| match e {
        ObjectError::NotJson { offset, line, column, message } => {
            ConfigError::NotJson { offset, line, column, message }
        }
        ObjectError::NotObject { offset, found } => ConfigError::NotObject { offset, found },
        ObjectError::TooManyEntries { offset } => {
            ConfigError::NotJson { offset, line: 0, column: 0, message: format!("more than {max_keys} keys") }
        }
    })?;
    check_unique(&entries, "")?;
    let keys = Keys { entries: &entries, prefix: "" };

    let mut rope_theta = keys.f64("rope_theta")?;
    if let Some(params) = keys.get("rope_parameters") {
        if params.value.get() != "null" {
            let nested = read_object(params.value.get(), params.offset, max_keys).map_err(|_| {
                ConfigError::WrongType {
                    key: "rope_parameters".to_owned(),
                    offset: params.offset,
                    expected: "an object",
                    found: json_kind(params.value.get()),
                }
            })?;
            check_unique(&nested, "rope_parameters.")?;
            // Per-layer-type configs (`{"full_attention": {...}, ...}`) have no top-level
            // rope_theta; the older key, if any, stands.
            if let Some(theta) = (Keys { entries: &nested, prefix: "rope_parameters." }).f64("rope_theta")? {
                rope_theta = Some(theta);
            }
        }
    }
    let dtype = match keys.string("dtype")? {
        Some(d) => Some(d),
        None => keys.string("torch_dtype")?,
    };
    let architecture = match keys.get("architectures") {
        None => None,
        Some(e) if e.value.get() == "null" => None,
        Some(e) => {
            let list: Vec<serde_json::Value> =
                serde_json::from_str(e.value.get()).map_err(|_| ConfigError::WrongType {
                    key: "architectures".to_owned(),
                    offset: e.offset,
                    expected: "an array of strings",
                    found: json_kind(e.value.get()),
                })?;
            match list.first() {
                None => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(ConfigError::WrongType {
                        key: "architectures[0]".to_owned(),
                        offset: e.offset,
                        expected: "a string",
                        found: value_kind(other),
                    })
                }
            }
        }
    };
    Ok(ArchConfig {
        model_type: keys.string("model_type")?.unwrap_or_default(),
        architecture,
        hidden_size: keys.u64("hidden_size")?,
        num_layers: keys.u64("num_hidden_layers")?,
        num_heads: keys.u64("num_attention_heads")?,
        num_kv_heads: keys.u64("num_key_value_heads")?,
        head_dim: keys.u64("head_dim")?,
        intermediate_size: keys.u64("intermediate_size")?,
        vocab_size: keys.u64("vocab_size")?,
        max_position_embeddings: keys.u64("max_position_embeddings")?,
        rope_theta,
        rms_norm_eps: keys.f64("rms_norm_eps")?,
        tie_word_embeddings: keys.bool("tie_word_embeddings")?,
        dtype,
    })
}

/// Reads the file as text, refusing files above `limits::MAX_JSON_FILE` before reading them.
fn read_text(path: &Path) -> Result<String, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let max = limits::MAX_JSON_FILE;
    if len > max {
        return Err(Error::new(path, ConfigError::TooLarge { len, max }));
    }
    let mut raw = Vec::with_capacity(len as usize);
    // The file may grow after the size check; read no more than the cap allows.
    file.take(max + 1).read_to_end(&mut raw).map_err(|e| Error::io(path, e))?;
    if raw.len() as u64 > max {
        return Err(Error::new(path, ConfigError::TooLarge { len: raw.len() as u64, max }));
    }
    String::from_utf8(raw).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..offset];
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        Error::new(
            path,
            ConfigError::NotJson {
                offset: offset as u64,
                line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
                column: offset - line_start + 1,
                message: "invalid UTF-8".to_owned(),
            },
        )
    })
}

fn check_unique(entries: &[JsonEntry<'_>], prefix: &str) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashMap::with_capacity(entries.len());
    for e in entries {
        if let Some(&first_offset) = seen.get(e.key.as_str()) {
            return Err(ConfigError::DuplicateKey {
                key: format!("{prefix}{}", e.key),
                first_offset,
                offset: e.offset,
            });
        }
        seen.insert(e.key.as_str(), e.offset);
    }
    Ok(())
}

fn value_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Typed lookups in one object's entries; `null` reads as absent.
struct Keys<'e, 'a> {
    entries: &'e [JsonEntry<'a>],
    prefix: &'static str,
}

impl<'e, 'a> Keys<'e, 'a> {
    fn get(&self, key: &str) -> Option<&'e JsonEntry<'a>> {
        self.entries.iter().find(|e| e.key == key)
    }

    fn typed<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        let Some(e) = self.get(key) else {
            return Ok(None);
        };
        let text = e.value.get();
        if text == "null" {
            return Ok(None);
        }
        serde_json::from_str(text).map(Some).map_err(|_| ConfigError::WrongType {
            key: format!("{}{key}", self.prefix),
            offset: e.offset,
            expected,
            found: json_kind(text),
        })
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.typed(key, "a non-negative integer")
    }

    fn f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        self.typed(key, "a number")
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.typed(key, "true or false")
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.typed(key, "a string")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_and_new_spellings() {
        let old = r#"{"model_type":"llama","rope_theta":10000.0,"torch_dtype":"float32","head_dim":null}"#;
        let c = parse_hf_config(old).unwrap();
        assert_eq!((c.rope_theta, c.dtype.as_deref(), c.head_dim), (Some(10000.0), Some("float32"), None));
        let new = r#"{"model_type":"qwen2","rope_parameters":{"rope_type":"default","rope_theta":1000000},"dtype":"bfloat16"}"#;
        let c = parse_hf_config(new).unwrap();
        assert_eq!((c.rope_theta, c.dtype.as_deref()), (Some(1e6), Some("bfloat16")));
        let both = r#"{"rope_theta":1,"rope_parameters":{"rope_theta":2},"torch_dtype":"a","dtype":"b"}"#;
        let c = parse_hf_config(both).unwrap();
        assert_eq!((c.rope_theta, c.dtype.as_deref(), c.model_type.as_str()), (Some(2.0), Some("b"), ""));
    }

    #[test]
    fn wrong_types_name_the_key() {
        let text = r#"{"hidden_size": "64"}"#;
        assert!(matches!(
            parse_hf_config(text),
            Err(ConfigError::WrongType { ref key, offset: 16, found: "string", .. }) if key == "hidden_size"
        ));
        assert!(matches!(
            parse_hf_config(r#"{"rope_parameters":{"rope_theta":"x"}}"#),
            Err(ConfigError::WrongType { ref key, .. }) if key == "rope_parameters.rope_theta"
        ));
        assert!(matches!(
            parse_hf_config(r#"{"num_hidden_layers":-2}"#),
            Err(ConfigError::WrongType { ref key, .. }) if key == "num_hidden_layers"
        ));
        assert!(matches!(
            parse_hf_config(r#"{"architectures":[3]}"#),
            Err(ConfigError::WrongType { ref key, .. }) if key == "architectures[0]"
        ));
        assert!(matches!(
            parse_hf_config("{\n\"a\":}"),
            Err(ConfigError::NotJson { line: 2, offset: 6, .. })
        ));
    }
}
