//! Reading the JSON side files of an HF checkpoint (`tokenizer.json`, `tokenizer_config.json`,
//! `config.json`) with errors that name the file, the field and the absolute byte offset.
//!
//! Files are capped at `limits::MAX_JSON_FILE` before they are read (the same capped read serves
//! the chat template's `.jinja` text files). Sub-values are kept as
//! borrowed [`RawValue`]s of the file's text, so where a value sits in the file is known
//! (its slice's position in the text) and a type error inside it can be placed exactly.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::gguf::hf_error::HfToGgufError;
use crate::limits;

/// A JSON side file's text, with its path for errors.
pub(crate) struct JsonFile {
    pub path: PathBuf,
    pub text: String,
}

impl JsonFile {
    /// Reads `path`, or `Ok(None)` when it does not exist.
    pub fn read_optional(path: &Path) -> Result<Option<JsonFile>, HfToGgufError> {
        let io = |source| HfToGgufError::Io { file: path.to_path_buf(), source };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let len = file.metadata().map_err(io)?.len();
        let max = limits::MAX_JSON_FILE;
        if len > max {
            return Err(HfToGgufError::TooLarge { file: path.to_path_buf(), len, max });
        }
        let mut raw = Vec::with_capacity(len as usize);
        // The file may grow after the size check; read no more than the cap allows.
        file.take(max + 1).read_to_end(&mut raw).map_err(io)?;
        if raw.len() as u64 > max {
            return Err(HfToGgufError::TooLarge { file: path.to_path_buf(), len: raw.len() as u64, max });
        }
        match String::from_utf8(raw) {
            Ok(text) => Ok(Some(JsonFile { path: path.to_path_buf(), text })),
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let (line, column) = line_column(&e.as_bytes()[..offset]);
                Err(HfToGgufError::NotJson {
                    file: path.to_path_buf(),
                    offset: offset as u64,
                    line,
                    column,
                    message: "invalid UTF-8".to_owned(),
                })
            }
        }
    }

    /// Parses the whole file as `T` (typically a struct of borrowed [`RawValue`] fields).
    pub fn parse<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, HfToGgufError> {
        serde_json::from_str(&self.text).map_err(|e| {
            let offset = offset_of_line_column(&self.text, e.line(), e.column());
            if e.is_syntax() || e.is_eof() {
                HfToGgufError::NotJson {
                    file: self.path.clone(),
                    offset: offset as u64,
                    line: e.line(),
                    column: e.column(),
                    message: e.to_string(),
                }
            } else {
                HfToGgufError::WrongType {
                    file: self.path.clone(),
                    field: "(top level)".to_owned(),
                    offset: offset as u64,
                    message: e.to_string(),
                }
            }
        })
    }

    /// Absolute offset of `raw`, a value borrowed from this file's text.
    pub fn offset_of(&self, raw: &RawValue) -> u64 {
        let base = self.text.as_ptr() as usize;
        let at = raw.get().as_ptr() as usize;
        at.checked_sub(base).filter(|&o| o <= self.text.len()).unwrap_or(0) as u64
    }

    /// Parses `raw` (a value of `field` borrowed from this file) as `T`; a type error names
    /// `field` and the absolute offset where parsing stopped.
    pub fn value<T: DeserializeOwned>(&self, raw: &RawValue, field: &str) -> Result<T, HfToGgufError> {
        serde_json::from_str(raw.get()).map_err(|e| self.wrong_type(raw, field, &e))
    }

    /// Like [`JsonFile::value`] for types that borrow from the file.
    pub fn borrowed<'a, T: serde::Deserialize<'a>>(
        &self,
        raw: &'a RawValue,
        field: &str,
    ) -> Result<T, HfToGgufError> {
        serde_json::from_str(raw.get()).map_err(|e| self.wrong_type(raw, field, &e))
    }

    /// A [`HfToGgufError::WrongType`] for a serde error inside `raw`, placed where parsing
    /// stopped.
    fn wrong_type(&self, raw: &RawValue, field: &str, e: &serde_json::Error) -> HfToGgufError {
        let local = offset_of_line_column(raw.get(), e.line(), e.column());
        HfToGgufError::WrongType {
            file: self.path.clone(),
            field: field.to_owned(),
            offset: self.offset_of(raw) + local as u64,
            message: e.to_string(),
        }
    }

    /// A [`HfToGgufError::WrongType`] at the start of `raw`.
    pub fn invalid(&self, raw: &RawValue, field: &str, message: String) -> HfToGgufError {
        HfToGgufError::WrongType {
            file: self.path.clone(),
            field: field.to_owned(),
            offset: self.offset_of(raw),
            message,
        }
    }
}

/// Byte offset of a 1-based line and column (serde_json counts columns in bytes).
fn offset_of_line_column(text: &str, line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    (start + column.saturating_sub(1)).min(text.len())
}

/// 1-based line and column of the end of `before`.
fn line_column(before: &[u8]) -> (usize, usize) {
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    (1 + before.iter().filter(|&&b| b == b'\n').count(), before.len() - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_nested_values_and_errors_are_absolute() {
        #[derive(serde::Deserialize)]
        struct Top<'a> {
            #[serde(borrow)]
            model: &'a RawValue,
        }
        let file = JsonFile { path: "t.json".into(), text: "{\n \"model\": {\"a\":\n  [1, \"x\"]}}".into() };
        let top: Top<'_> = file.parse().unwrap();
        assert_eq!(file.offset_of(top.model), 12);
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Model {
            a: Vec<u64>,
        }
        let err = file.value::<Model>(top.model, "model").unwrap_err();
        // The error points into "x" (serde reports the position after reading the bad value).
        let HfToGgufError::WrongType { offset, ref field, .. } = err else { panic!("{err}") };
        assert_eq!(field, "model");
        assert!((24..=27).contains(&offset), "{offset}");
        assert_eq!(&file.text[24..27], "\"x\"");
    }

    #[test]
    fn syntax_error_is_not_json_with_line_and_column() {
        let file = JsonFile { path: "t.json".into(), text: "{\n  \"a\": tru }".into() };
        let err = file.parse::<serde_json::Value>().unwrap_err();
        assert!(matches!(err, HfToGgufError::NotJson { line: 2, .. }));
    }
}
