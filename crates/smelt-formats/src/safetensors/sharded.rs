//! Sharded checkpoints: `model.safetensors.index.json` maps every tensor to one of several
//! safetensors files beside it, as transformers' `save_pretrained` writes them.
//!
//! The index is untrusted like the shards: shard names must stay inside the index's directory
//! (no absolute paths, no `..`, no symlink leading out), every tensor the index lists must be
//! in the shard it names, and every tensor a shard holds must be listed, once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::header::Caps;
use super::json_object::{json_kind, read_object, JsonEntry, ObjectError};
use super::{map, parse_tensors, SafetensorsError};
use crate::{limits, Error, Format, MetaValue, Model};

/// One `weight_map` entry.
struct IndexEntry {
    /// Tensor name.
    tensor: String,
    /// Shard file name as written.
    shard: String,
    /// Absolute offset of the value naming the shard.
    offset: u64,
}

/// A parsed index.
struct Index {
    /// `weight_map` in file order.
    weight_map: Vec<IndexEntry>,
    /// `metadata` in file order.
    metadata: Vec<(String, MetaValue)>,
}

/// Reads a sharded checkpoint from its `model.safetensors.index.json`.
///
/// Tensors come shard by shard, shards in sorted file-name order, each shard's tensors in data
/// order. [`Model::files`] holds the index, then the shards in that order. Metadata holds the
/// index's `metadata` object, then each shard's `__metadata__` keys not seen before.
pub fn read_sharded(index_path: &Path) -> Result<Model, Error> {
    let caps = Caps::DEFAULT;
    let text = read_index_text(index_path)?;
    let index = parse_index(&text, &caps).map_err(|e| Error::new(index_path, e))?;

    let dir = match index_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let canonical_dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;

    // Shards in sorted order, each with the first index entry naming it (for errors).
    let mut shards: BTreeMap<&str, &IndexEntry> = BTreeMap::new();
    for entry in &index.weight_map {
        shards.entry(entry.shard.as_str()).or_insert(entry);
    }
    let shard_names: Vec<&str> = shards.keys().copied().collect();
    let shard_of: HashMap<&str, usize> = shard_names.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    // Every shard name came from weight_map, so each lookup succeeds.
    let listed: HashMap<&str, (usize, &IndexEntry)> = index
        .weight_map
        .iter()
        .filter_map(|e| shard_of.get(e.shard.as_str()).map(|&i| (e.tensor.as_str(), (i, e))))
        .collect();

    let mut resolved = Vec::with_capacity(shards.len());
    for (name, first) in &shards {
        resolved.push(resolve_shard(dir, &canonical_dir, name, first).map_err(|e| e.into_error(index_path))?);
    }

    let mut files = Vec::with_capacity(resolved.len() + 1);
    files.push(index_path.to_path_buf());
    files.extend(resolved.iter().map(|(shown, _)| shown.clone()));

    let mut metadata = index.metadata;
    let mut meta_keys: HashSet<String> = metadata.iter().map(|(k, _)| k.clone()).collect();
    let mut found: HashMap<String, usize> = HashMap::new();
    let mut tensors = Vec::new();
    for (i, (shown, canonical)) in resolved.iter().enumerate() {
        let bytes = map(canonical).map_err(|e| Error::new(shown, e.kind))?;
        let parsed = parse_tensors(&bytes, i + 1, &caps).map_err(|e| Error::new(shown, e))?;
        for (tensor, &entry_offset) in parsed.tensors.into_iter().zip(&parsed.entry_offsets) {
            if let Some(&first) = found.get(&tensor.name) {
                return Err(Error::new(
                    shown,
                    SafetensorsError::TensorInTwoShards {
                        name: tensor.name,
                        first_shard: shard_names[first].to_owned(),
                        second_shard: shard_names[i].to_owned(),
                        offset: entry_offset,
                    },
                ));
            }
            match listed.get(tensor.name.as_str()) {
                None => {
                    return Err(Error::new(
                        shown,
                        SafetensorsError::TensorNotInIndex {
                            name: tensor.name,
                            shard: shard_names[i].to_owned(),
                            offset: entry_offset,
                        },
                    ))
                }
                Some(&(want, entry)) if want != i => {
                    return Err(Error::new(
                        index_path,
                        SafetensorsError::TensorInWrongShard {
                            name: tensor.name,
                            listed: entry.shard.clone(),
                            found: shard_names[i].to_owned(),
                            offset: entry.offset,
                        },
                    ))
                }
                Some(_) => {}
            }
            found.insert(tensor.name.clone(), i);
            tensors.push(tensor);
        }
        for (key, value) in parsed.metadata {
            if meta_keys.insert(key.clone()) {
                metadata.push((key, MetaValue::Str(value)));
            }
        }
    }
    if let Some(missing) = index.weight_map.iter().find(|e| !found.contains_key(&e.tensor)) {
        return Err(Error::new(
            index_path,
            SafetensorsError::TensorNotInShard {
                name: missing.tensor.clone(),
                shard: missing.shard.clone(),
                offset: missing.offset,
            },
        ));
    }

    let version = match resolved.len() {
        1 => "safetensors (1 shard)".to_owned(),
        n => format!("safetensors ({n} shards)"),
    };
    let mut model = Model::new(Format::Safetensors, version, files, tensors);
    model.metadata = metadata;
    Ok(model)
}

/// Reads the index as text, refusing files above `limits::MAX_JSON_FILE` before reading them.
fn read_index_text(path: &Path) -> Result<String, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > limits::MAX_JSON_FILE {
        return Err(Error::new(path, SafetensorsError::IndexTooLarge { len, max: limits::MAX_JSON_FILE }));
    }
    let mut raw = Vec::with_capacity(len as usize);
    // The file may grow after the size check; read no more than the cap allows.
    file.take(limits::MAX_JSON_FILE + 1).read_to_end(&mut raw).map_err(|e| Error::io(path, e))?;
    if raw.len() as u64 > limits::MAX_JSON_FILE {
        return Err(Error::new(
            path,
            SafetensorsError::IndexTooLarge { len: raw.len() as u64, max: limits::MAX_JSON_FILE },
        ));
    }
    String::from_utf8(raw).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count();
        let line_start = bytes[..offset].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        Error::new(
            path,
            SafetensorsError::IndexNotJson {
                offset: offset as u64,
                line,
                column: offset - line_start + 1,
                message: "invalid UTF-8".to_owned(),
            },
        )
    })
}

/// Parses the index text.
fn parse_index(text: &str, caps: &Caps) -> Result<Index, SafetensorsError> {
    let max_top = usize::try_from(limits::MAX_METADATA).unwrap_or(usize::MAX);
    let top = read_object(text, 0, max_top).map_err(|e| match e {
        ObjectError::NotJson { offset, line, column, message } => {
            SafetensorsError::IndexNotJson { offset, line, column, message }
        }
        ObjectError::NotObject { offset, found } => SafetensorsError::IndexNotObject { offset, found },
        ObjectError::TooManyEntries { offset } => SafetensorsError::IndexBadField {
            field: "(top level)".to_owned(),
            offset,
            message: format!("more than {max_top} keys"),
        },
    })?;
    check_unique(&top, "")?;
    let mut weight_map = None;
    let mut metadata = Vec::new();
    for entry in &top {
        match entry.key.as_str() {
            "weight_map" => weight_map = Some(parse_weight_map(entry, caps)?),
            "metadata" => metadata = parse_metadata(entry, caps)?,
            _ => {}
        }
    }
    let weight_map = weight_map.ok_or(SafetensorsError::IndexNoWeightMap)?;
    Ok(Index { weight_map, metadata })
}

/// Refuses a repeated key among `entries`; `prefix` qualifies it in the error.
fn check_unique(entries: &[JsonEntry<'_>], prefix: &str) -> Result<(), SafetensorsError> {
    let mut seen: HashMap<&str, u64> = HashMap::with_capacity(entries.len());
    for e in entries {
        if let Some(&first_offset) = seen.get(e.key.as_str()) {
            return Err(SafetensorsError::DuplicateIndexKey {
                key: format!("{prefix}{}", e.key),
                first_offset,
                offset: e.offset,
            });
        }
        seen.insert(&e.key, e.offset);
    }
    Ok(())
}

fn parse_weight_map(field: &JsonEntry<'_>, caps: &Caps) -> Result<Vec<IndexEntry>, SafetensorsError> {
    let max = usize::try_from(caps.max_tensors).unwrap_or(usize::MAX);
    let entries = read_object(field.value.get(), field.offset, max).map_err(|e| match e {
        ObjectError::TooManyEntries { offset } => {
            SafetensorsError::TooManyTensors { offset, max: caps.max_tensors }
        }
        ObjectError::NotObject { offset, found } => SafetensorsError::IndexBadField {
            field: "weight_map".to_owned(),
            offset,
            message: format!("is a JSON {found}, not an object mapping tensor names to shard files"),
        },
        ObjectError::NotJson { offset, message, .. } => {
            SafetensorsError::IndexBadField { field: "weight_map".to_owned(), offset, message }
        }
    })?;
    check_unique(&entries, "weight_map.")?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if e.key.len() as u64 > caps.max_name_len {
            return Err(SafetensorsError::NameTooLong {
                offset: e.offset,
                len: e.key.len() as u64,
                max: caps.max_name_len,
                prefix: e.key.chars().take(40).collect(),
            });
        }
        let shard: String =
            serde_json::from_str(e.value.get()).map_err(|_| SafetensorsError::IndexBadField {
                field: format!("weight_map.{}", e.key),
                offset: e.offset,
                message: format!("is a JSON {}, not a shard file name", json_kind(e.value.get())),
            })?;
        out.push(IndexEntry { tensor: e.key, shard, offset: e.offset });
    }
    Ok(out)
}

/// The index's `metadata`: `null`, or an object whose values become typed metadata (numbers,
/// strings, booleans as themselves; arrays and objects as their JSON text; nulls dropped).
fn parse_metadata(field: &JsonEntry<'_>, caps: &Caps) -> Result<Vec<(String, MetaValue)>, SafetensorsError> {
    if field.value.get() == "null" {
        return Ok(Vec::new());
    }
    let max = usize::try_from(caps.max_metadata).unwrap_or(usize::MAX);
    let entries = read_object(field.value.get(), field.offset, max).map_err(|e| match e {
        ObjectError::TooManyEntries { offset } => {
            SafetensorsError::TooManyMetadata { offset, max: caps.max_metadata }
        }
        ObjectError::NotObject { offset, found } => SafetensorsError::IndexBadField {
            field: METADATA_FIELD.to_owned(),
            offset,
            message: format!("is a JSON {found}, not an object"),
        },
        ObjectError::NotJson { offset, message, .. } => {
            SafetensorsError::IndexBadField { field: METADATA_FIELD.to_owned(), offset, message }
        }
    })?;
    check_unique(&entries, "metadata.")?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        use serde_json::Value as J;
        let value: J =
            serde_json::from_str(e.value.get()).map_err(|err| SafetensorsError::IndexBadField {
                field: format!("metadata.{}", e.key),
                offset: e.offset,
                message: super::json_object::error_message(&err),
            })?;
        let meta = match value {
            J::Null => continue,
            J::Bool(b) => MetaValue::Bool(b),
            J::String(s) => MetaValue::Str(s),
            J::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => MetaValue::U64(u),
                (None, Some(i), _) => MetaValue::I64(i),
                (None, None, Some(f)) => MetaValue::F64(f),
                (None, None, None) => MetaValue::Str(n.to_string()),
            },
            other => MetaValue::Str(other.to_string()),
        };
        out.push((e.key, meta));
    }
    Ok(out)
}

const METADATA_FIELD: &str = "metadata";

/// Why a shard named in the index cannot be opened.
enum ShardProblem {
    Unsafe(&'static str),
    Missing,
    Io(PathBuf, std::io::Error),
}

struct ShardError<'a> {
    problem: ShardProblem,
    shard: &'a str,
    first: &'a IndexEntry,
}

impl ShardError<'_> {
    fn into_error(self, index_path: &Path) -> Error {
        let (tensor, shard, offset) = (self.first.tensor.clone(), self.shard.to_owned(), self.first.offset);
        match self.problem {
            ShardProblem::Unsafe(reason) => {
                Error::new(index_path, SafetensorsError::ShardPathUnsafe { tensor, shard, offset, reason })
            }
            ShardProblem::Missing => {
                Error::new(index_path, SafetensorsError::ShardMissing { tensor, shard, offset })
            }
            ShardProblem::Io(path, e) => Error::io(&path, e),
        }
    }
}

/// Resolves a shard name to (the path to show, the canonical path to open), refusing names
/// that leave `dir`. The checks on the name itself come first, so that a hostile name is
/// refused without touching the file system.
fn resolve_shard<'a>(
    dir: &Path,
    canonical_dir: &Path,
    shard: &'a str,
    first: &'a IndexEntry,
) -> Result<(PathBuf, PathBuf), ShardError<'a>> {
    let fail = |problem| ShardError { problem, shard, first };
    let name = Path::new(shard);
    if shard.is_empty() {
        return Err(fail(ShardProblem::Unsafe("is empty")));
    }
    if shard.contains('\0') {
        return Err(fail(ShardProblem::Unsafe("contains a NUL byte")));
    }
    for component in name.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(fail(ShardProblem::Unsafe("is absolute; shards must sit beside the index")))
            }
            Component::ParentDir => {
                return Err(fail(ShardProblem::Unsafe("contains '..'; shards must sit beside the index")))
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    let shown = dir.join(name);
    let canonical = match shown.canonicalize() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(fail(ShardProblem::Missing)),
        Err(e) => return Err(fail(ShardProblem::Io(shown, e))),
    };
    if !canonical.starts_with(canonical_dir) {
        return Err(fail(ShardProblem::Unsafe("resolves (through a symlink) outside the index's directory")));
    }
    if !canonical.is_file() {
        return Err(fail(ShardProblem::Unsafe("is not a regular file")));
    }
    Ok((shown, canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_parse_errors() {
        let caps = Caps::DEFAULT;
        assert!(matches!(parse_index("{}", &caps), Err(SafetensorsError::IndexNoWeightMap)));
        assert!(matches!(
            parse_index("[]", &caps),
            Err(SafetensorsError::IndexNotObject { found: "array", .. })
        ));
        assert!(matches!(parse_index("{,}", &caps), Err(SafetensorsError::IndexNotJson { offset: 1, .. })));
        assert!(matches!(
            parse_index(r#"{"weight_map":{"a":"x","a":"y"}}"#, &caps),
            Err(SafetensorsError::DuplicateIndexKey { ref key, first_offset: 19, offset: 27 }) if key == "weight_map.a"
        ));
        assert!(matches!(
            parse_index(r#"{"weight_map":{"a":1}}"#, &caps),
            Err(SafetensorsError::IndexBadField { ref field, offset: 19, .. }) if field == "weight_map.a"
        ));
        assert!(matches!(
            parse_index(r#"{"weight_map":{},"weight_map":{}}"#, &caps),
            Err(SafetensorsError::DuplicateIndexKey { .. })
        ));
        let caps = Caps { max_tensors: 1, ..Caps::DEFAULT };
        assert!(matches!(
            parse_index(r#"{"weight_map":{"a":"x","b":"x"}}"#, &caps),
            Err(SafetensorsError::TooManyTensors { max: 1, .. })
        ));
    }

    #[test]
    fn index_metadata_is_typed() {
        let text = r#"{"metadata":{"total_size":24,"neg":-1,"f":0.5,"s":"x","b":true,"n":null,"a":[1]},"weight_map":{}}"#;
        let index = parse_index(text, &Caps::DEFAULT).unwrap();
        assert_eq!(
            index.metadata,
            [
                ("total_size".to_owned(), MetaValue::U64(24)),
                ("neg".to_owned(), MetaValue::I64(-1)),
                ("f".to_owned(), MetaValue::F64(0.5)),
                ("s".to_owned(), MetaValue::Str("x".to_owned())),
                ("b".to_owned(), MetaValue::Bool(true)),
                ("a".to_owned(), MetaValue::Str("[1]".to_owned())),
            ]
        );
    }
}
