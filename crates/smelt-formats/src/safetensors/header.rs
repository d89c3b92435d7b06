//! The safetensors header: an 8-byte little-endian length, then that many bytes of JSON mapping
//! tensor names to `{dtype, shape, data_offsets}` plus an optional `__metadata__` map of
//! strings.
//!
//! This module checks everything that can be checked entry by entry (names, dtype, rank, size
//! against the offsets); [`super::layout`] then checks how the entries tile the data section.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use smelt_tensor::DType;

use super::dtype_names::{self, DtypeName};
use super::json_object::{self, error_message, error_offset, read_object, ObjectError};
use super::SafetensorsError;
use crate::limits;

/// Size of the header length field.
pub(crate) const LEN_FIELD: u64 = 8;

/// The key under which a header stores its string metadata.
pub(crate) const METADATA_KEY: &str = "__metadata__";

/// Caps applied while reading a header; [`Caps::DEFAULT`] holds the crate's limits, and tests
/// lower them to reach the cap errors with small inputs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    /// Largest header length accepted.
    pub max_header: u64,
    /// Most tensors in one file.
    pub max_tensors: u64,
    /// Most `__metadata__` entries.
    pub max_metadata: u64,
    /// Longest tensor name in bytes.
    pub max_name_len: u64,
}

impl Caps {
    /// The crate's limits.
    pub const DEFAULT: Caps = Caps {
        max_header: limits::MAX_SAFETENSORS_HEADER,
        max_tensors: limits::MAX_TENSORS,
        max_metadata: limits::MAX_METADATA,
        max_name_len: limits::MAX_NAME_LEN,
    };
}

/// One tensor's header entry, checked on its own.
#[derive(Clone, Debug)]
pub(crate) struct TensorEntry {
    /// Name.
    pub name: String,
    /// smelt's type.
    pub dtype: DType,
    /// Row-major shape.
    pub shape: Vec<u64>,
    /// Data offsets relative to the data section; `begin <= end` and `end - begin` equals the
    /// size the shape and dtype need.
    pub begin: u64,
    /// See `begin`.
    pub end: u64,
    /// Absolute offset of the entry's JSON value in the file.
    pub offset: u64,
}

/// A parsed header.
#[derive(Debug)]
pub(crate) struct Header {
    /// Tensor entries in header order.
    pub tensors: Vec<TensorEntry>,
    /// `__metadata__` in header order.
    pub metadata: Vec<(String, String)>,
    /// Absolute offset of the data section (8 + header length).
    pub data_start: u64,
}

/// Reads and checks the header of `file`, a whole safetensors file.
pub(crate) fn read_header(file: &[u8], caps: &Caps) -> Result<Header, SafetensorsError> {
    let file_len = file.len() as u64;
    let Some(len_bytes) = file.get(..LEN_FIELD as usize) else {
        return Err(SafetensorsError::FileTooShort { len: file_len });
    };
    let mut len_field = [0u8; 8];
    len_field.copy_from_slice(len_bytes);
    let declared = u64::from_le_bytes(len_field);
    if declared > caps.max_header {
        return Err(SafetensorsError::HeaderTooLarge { declared, max: caps.max_header });
    }
    let data_start = LEN_FIELD
        .checked_add(declared)
        .filter(|&end| end <= file_len)
        .ok_or(SafetensorsError::HeaderPastEnd { declared, file_len })?;
    // Both bounds are at most the file length, so they fit in usize.
    let raw = &file[LEN_FIELD as usize..data_start as usize];
    let text = std::str::from_utf8(raw)
        .map_err(|e| SafetensorsError::HeaderNotUtf8 { offset: LEN_FIELD + e.valid_up_to() as u64 })?;

    // One more than the cap, so that a file with `__metadata__` and exactly the cap is legal.
    let max_entries = usize::try_from(caps.max_tensors.saturating_add(1)).unwrap_or(usize::MAX);
    let entries = read_object(text, LEN_FIELD, max_entries).map_err(|e| match e {
        ObjectError::NotJson { offset, line, column, message } => {
            SafetensorsError::HeaderNotJson { offset, line, column, message }
        }
        ObjectError::NotObject { offset, found } => SafetensorsError::HeaderNotObject { offset, found },
        ObjectError::TooManyEntries { offset } => {
            SafetensorsError::TooManyTensors { offset, max: caps.max_tensors }
        }
    })?;

    // First the keys alone (cheap): lengths, duplicates and the tensor count, so that a file
    // over a cap is refused before any entry is parsed.
    let mut seen: HashMap<&str, u64> = HashMap::with_capacity(entries.len());
    let mut tensor_count = 0u64;
    for entry in &entries {
        if entry.key.len() as u64 > caps.max_name_len {
            return Err(SafetensorsError::NameTooLong {
                offset: entry.offset,
                len: entry.key.len() as u64,
                max: caps.max_name_len,
                prefix: entry.key.chars().take(40).collect(),
            });
        }
        if let Some(&first_offset) = seen.get(entry.key.as_str()) {
            return Err(SafetensorsError::DuplicateName {
                name: entry.key.clone(),
                first_offset,
                offset: entry.offset,
            });
        }
        seen.insert(&entry.key, entry.offset);
        if entry.key != METADATA_KEY {
            tensor_count += 1;
            if tensor_count > caps.max_tensors {
                return Err(SafetensorsError::TooManyTensors { offset: entry.offset, max: caps.max_tensors });
            }
        }
    }
    drop(seen);

    // Then each entry, moving its name into the result.
    let mut tensors = Vec::with_capacity(usize::try_from(tensor_count).unwrap_or(0));
    let mut metadata = Vec::new();
    for entry in entries {
        if entry.key == METADATA_KEY {
            metadata = read_metadata(entry.value.get(), entry.offset, caps)?;
        } else {
            tensors.push(read_entry(entry.key, entry.value.get(), entry.offset)?);
        }
    }
    Ok(Header { tensors, metadata, data_start })
}

/// The JSON of one tensor entry. Unknown fields are ignored, as the safetensors crate does.
#[derive(Deserialize)]
struct EntryJson {
    dtype: String,
    shape: CappedShape,
    data_offsets: (u64, u64),
}

/// A shape array that stores at most `MAX_RANK` dimensions but counts them all, so a hostile
/// shape costs no more memory than a legal one.
struct CappedShape {
    dims: Vec<u64>,
    rank: u64,
}

impl<'de> Deserialize<'de> for CappedShape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(CappedShapeVisitor)
    }
}

struct CappedShapeVisitor;

impl<'de> Visitor<'de> for CappedShapeVisitor {
    type Value = CappedShape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of unsigned integers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CappedShape, A::Error> {
        let mut shape = CappedShape { dims: Vec::new(), rank: 0 };
        while let Some(d) = seq.next_element::<u64>()? {
            if shape.dims.len() < limits::MAX_RANK {
                shape.dims.push(d);
            }
            shape.rank += 1;
        }
        Ok(shape)
    }
}

/// Checks one tensor entry on its own: schema, dtype, rank, size against offsets.
fn read_entry(name: String, value: &str, offset: u64) -> Result<TensorEntry, SafetensorsError> {
    let json: EntryJson = match serde_json::from_str(value) {
        Ok(json) => json,
        Err(e) => {
            let offset = error_offset(value, offset, &e);
            return Err(SafetensorsError::BadTensorEntry { name, offset, message: error_message(&e) });
        }
    };
    let dtype = match dtype_names::lookup(&json.dtype) {
        DtypeName::Known(d) => d,
        DtypeName::Unsupported => {
            return Err(SafetensorsError::UnsupportedDtype { name, offset, dtype: json.dtype })
        }
        DtypeName::Unknown => return Err(SafetensorsError::UnknownDtype { name, offset, dtype: json.dtype }),
    };
    if json.shape.rank > limits::MAX_RANK as u64 {
        return Err(SafetensorsError::RankTooLarge {
            name,
            offset,
            rank: json.shape.rank,
            max: limits::MAX_RANK as u64,
        });
    }
    let shape = json.shape.dims;
    let Some(numel) = smelt_tensor::numel(&shape) else {
        return Err(SafetensorsError::SizeOverflow { name, offset, dtype, shape });
    };
    if dtype.is_packed_nibble() && numel % 2 != 0 {
        return Err(SafetensorsError::PartialByte { name, offset, dtype, numel });
    }
    let Some(expected) = dtype.storage_bytes(&shape) else {
        return Err(SafetensorsError::SizeOverflow { name, offset, dtype, shape });
    };
    let (begin, end) = json.data_offsets;
    if begin > end {
        return Err(SafetensorsError::OffsetsReversed { name, offset, begin, end });
    }
    let found = end - begin;
    if found != expected {
        return Err(SafetensorsError::SizeMismatch { name, offset, dtype, shape, expected, found });
    }
    Ok(TensorEntry { name, dtype, shape, begin, end, offset })
}

/// Reads `__metadata__`: `null`, or an object of strings without repeated keys.
fn read_metadata(value: &str, offset: u64, caps: &Caps) -> Result<Vec<(String, String)>, SafetensorsError> {
    if value == "null" {
        return Ok(Vec::new());
    }
    let max_entries = usize::try_from(caps.max_metadata).unwrap_or(usize::MAX);
    let entries = read_object(value, offset, max_entries).map_err(|e| match e {
        ObjectError::TooManyEntries { offset } => {
            SafetensorsError::TooManyMetadata { offset, max: caps.max_metadata }
        }
        ObjectError::NotObject { offset, found } => SafetensorsError::BadMetadata {
            offset,
            message: format!("is a JSON {found}, not an object of strings"),
        },
        // A raw value is valid JSON, so this cannot happen; report it faithfully anyway.
        ObjectError::NotJson { offset, message, .. } => SafetensorsError::BadMetadata { offset, message },
    })?;
    let mut seen: HashMap<&str, u64> = HashMap::with_capacity(entries.len());
    let mut metadata = Vec::with_capacity(entries.len());
    for entry in &entries {
        if let Some(&first_offset) = seen.get(entry.key.as_str()) {
            return Err(SafetensorsError::DuplicateMetadataKey {
                key: entry.key.clone(),
                first_offset,
                offset: entry.offset,
            });
        }
        seen.insert(&entry.key, entry.offset);
        let text: String =
            serde_json::from_str(entry.value.get()).map_err(|_| SafetensorsError::BadMetadata {
                offset: entry.offset,
                message: format!(
                    "value of '{}' is a JSON {}, but metadata values must be strings",
                    entry.key,
                    json_object::json_kind(entry.value.get())
                ),
            })?;
        metadata.push((entry.key.clone(), text));
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.resize(f.len() + data_len, 0);
        f
    }

    #[test]
    fn reads_entries_and_metadata_in_header_order() {
        let h = r#"{"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"z":"1","a":"2"},"a":{"dtype":"BOOL","shape":[],"data_offsets":[8,9],"extra":0}}"#;
        let header = read_header(&file(h, 9), &Caps::DEFAULT).unwrap();
        let names: Vec<&str> = header.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(header.metadata, [("z".to_owned(), "1".to_owned()), ("a".to_owned(), "2".to_owned())]);
        assert_eq!(header.data_start, 8 + h.len() as u64);
        assert_eq!(header.tensors[1].shape, Vec::<u64>::new());
        assert_eq!(header.tensors[0].offset, 8 + h.find("{\"dtype\"").unwrap() as u64);
    }

    #[test]
    fn bad_entry_offset_points_into_the_entry() {
        let h = r#"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#;
        match read_header(&file(h, 0), &Caps::DEFAULT) {
            Err(SafetensorsError::BadTensorEntry { name, offset, .. }) => {
                assert_eq!(name, "t");
                // serde_json reports a type error at or just inside the offending token.
                let at = 8 + h.find("-1").unwrap() as u64;
                assert!((at..at + 2).contains(&offset), "{offset} not at {at}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lowered_caps_reach_the_cap_errors() {
        let h = r#"{"__metadata__":{"a":"1","b":"2"},"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"y":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#;
        let caps = Caps { max_tensors: 1, ..Caps::DEFAULT };
        assert!(matches!(
            read_header(&file(h, 0), &caps),
            Err(SafetensorsError::TooManyTensors { max: 1, .. })
        ));
        let caps = Caps { max_tensors: 2, ..Caps::DEFAULT };
        assert_eq!(read_header(&file(h, 0), &caps).unwrap().tensors.len(), 2);
        let caps = Caps { max_metadata: 1, ..Caps::DEFAULT };
        assert!(matches!(read_header(&file(h, 0), &caps), Err(SafetensorsError::TooManyMetadata { .. })));
        let caps = Caps { max_header: 10, ..Caps::DEFAULT };
        assert!(matches!(read_header(&file(h, 0), &caps), Err(SafetensorsError::HeaderTooLarge { .. })));
    }

    #[test]
    fn huge_rank_is_counted_not_stored() {
        let dims = vec!["1"; 100_000].join(",");
        let h = format!(r#"{{"t":{{"dtype":"U8","shape":[{dims}],"data_offsets":[0,1]}}}}"#);
        assert!(matches!(
            read_header(&file(&h, 1), &Caps::DEFAULT),
            Err(SafetensorsError::RankTooLarge { rank: 100_000, .. })
        ));
    }

    #[test]
    fn null_metadata_is_no_metadata() {
        let h = r#"{"__metadata__":null}"#;
        assert!(read_header(&file(h, 0), &Caps::DEFAULT).unwrap().metadata.is_empty());
    }
}
