//! GGUF's metadata section: key/value pairs with typed values, including arrays of arrays.
//!
//! Values are read into [`MetaValue`] / [`MetaArray`] with their exact GGUF types, so that a
//! writer can reproduce them. Every length is checked against the bytes left in the file
//! before anything is allocated, so a hostile count costs at most a small multiple of the
//! file's own size.

use std::collections::HashMap;

use crate::cursor::Cursor;
use crate::gguf::error::{truncated, GgufError};
use crate::limits;
use crate::{MetaArray, MetaValue};

/// GGUF value type ids (`enum gguf_type` in gguf.h).
pub mod value_type {
    #![allow(missing_docs)]
    pub const UINT8: u32 = 0;
    pub const INT8: u32 = 1;
    pub const UINT16: u32 = 2;
    pub const INT16: u32 = 3;
    pub const UINT32: u32 = 4;
    pub const INT32: u32 = 5;
    pub const FLOAT32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const UINT64: u32 = 10;
    pub const INT64: u32 = 11;
    pub const FLOAT64: u32 = 12;
}

/// The smallest encoding of one value of type `type_id`, or `None` for an unknown type:
/// fixed-size types their size, a string its 8-byte length, an array its 4-byte element type
/// and 8-byte count.
pub fn min_encoded_size(type_id: u32) -> Option<u64> {
    use value_type::*;
    Some(match type_id {
        UINT8 | INT8 | BOOL => 1,
        UINT16 | INT16 => 2,
        UINT32 | INT32 | FLOAT32 => 4,
        UINT64 | INT64 | FLOAT64 => 8,
        STRING => 8,
        ARRAY => 12,
        _ => return None,
    })
}

/// Smallest encoding of one metadata entry: an empty key's length (8), the value type (4) and
/// a one-byte value.
pub const MIN_KV_BYTES: u64 = 8 + 4 + 1;

/// How many entries or tensor infos to reserve room for before reading them.
pub(crate) const RESERVE_AHEAD: u64 = 1024;

/// One metadata entry as stored in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufKv {
    /// The key.
    pub key: String,
    /// The value, with its exact GGUF type.
    pub value: MetaValue,
    /// Absolute offset of the entry (its key's length field).
    pub offset: u64,
    /// Absolute offset of the value (after its type field).
    pub value_offset: u64,
}

/// Reads a GGUF string (u64 length, then UTF-8 bytes) of at most `max` bytes. `what` names the
/// string in errors; it is only called when there is one.
pub(crate) fn read_string(
    cur: &mut Cursor<'_>,
    max: u64,
    what: &dyn Fn() -> String,
) -> Result<String, GgufError> {
    let offset = cur.offset();
    let len = cur.read_u64().map_err(|t| truncated(t, what()))?;
    if len > max {
        return Err(GgufError::StringTooLong { what: what(), offset, len, max });
    }
    if len > cur.remaining() {
        return Err(GgufError::StringPastEnd { what: what(), offset, len, available: cur.remaining() });
    }
    let bytes_offset = cur.offset();
    let bytes = cur.take(len).map_err(|t| truncated(t, what()))?;
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(GgufError::InvalidUtf8 {
            what: what(),
            offset: bytes_offset,
            bad_byte: bytes_offset.saturating_add(e.valid_up_to() as u64),
        }),
    }
}

/// Reads `count` metadata entries, rejecting empty and duplicate keys.
pub(crate) fn read_kvs(cur: &mut Cursor<'_>, count: u64) -> Result<Vec<GgufKv>, GgufError> {
    // The caller checked count * MIN_KV_BYTES against the bytes left; still, an entry takes
    // several times its smallest encoding in memory, so reserve little up front and let real
    // entries grow the vector.
    let mut kvs = Vec::with_capacity(usize::try_from(count.min(RESERVE_AHEAD)).unwrap_or(0));
    let mut seen: HashMap<String, u64> = HashMap::new();
    for index in 0..count {
        let offset = cur.offset();
        let key = read_string(cur, limits::MAX_NAME_LEN, &|| format!("key of metadata entry {index}"))?;
        if key.is_empty() {
            return Err(GgufError::EmptyKey { index, offset });
        }
        if let Some(&first_offset) = seen.get(&key) {
            return Err(GgufError::DuplicateKey { key, offset, first_offset });
        }
        let type_offset = cur.offset();
        let type_id = cur.read_u32().map_err(|t| truncated(t, format!("value type of '{key}'")))?;
        let value_offset = cur.offset();
        let value = read_value(cur, &key, type_id, type_offset)?;
        seen.insert(key.clone(), offset);
        kvs.push(GgufKv { key, value, offset, value_offset });
    }
    Ok(kvs)
}

fn read_value(
    cur: &mut Cursor<'_>,
    key: &str,
    type_id: u32,
    type_offset: u64,
) -> Result<MetaValue, GgufError> {
    use value_type::*;
    let value_offset = cur.offset();
    let what = || format!("value of '{key}'");
    let ran_out = |t| truncated(t, what());
    Ok(match type_id {
        UINT8 => MetaValue::U8(cur.read_u8().map_err(ran_out)?),
        INT8 => MetaValue::I8(cur.read_i8().map_err(ran_out)?),
        UINT16 => MetaValue::U16(cur.read_u16().map_err(ran_out)?),
        INT16 => MetaValue::I16(cur.read_i16().map_err(ran_out)?),
        UINT32 => MetaValue::U32(cur.read_u32().map_err(ran_out)?),
        INT32 => MetaValue::I32(cur.read_i32().map_err(ran_out)?),
        FLOAT32 => MetaValue::F32(cur.read_f32().map_err(ran_out)?),
        UINT64 => MetaValue::U64(cur.read_u64().map_err(ran_out)?),
        INT64 => MetaValue::I64(cur.read_i64().map_err(ran_out)?),
        FLOAT64 => MetaValue::F64(cur.read_f64().map_err(ran_out)?),
        BOOL => MetaValue::Bool(bool_from_byte(cur.read_u8().map_err(ran_out)?, key, value_offset)?),
        STRING => MetaValue::Str(read_string(cur, limits::MAX_STRING_LEN, &what)?),
        ARRAY => MetaValue::Array(read_array(cur, key, 1)?),
        _ => return Err(GgufError::UnknownValueType { key: key.to_owned(), offset: type_offset, type_id }),
    })
}

fn bool_from_byte(b: u8, key: &str, offset: u64) -> Result<bool, GgufError> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(GgufError::InvalidBool { key: key.to_owned(), offset, value }),
    }
}

/// Decodes `n`-byte little-endian values from a slice whose length is a multiple of `n`.
macro_rules! decode_le {
    ($bytes:expr, $t:ty) => {
        $bytes
            .chunks_exact(std::mem::size_of::<$t>())
            .map(|c| {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(c);
                <$t>::from_le_bytes(a)
            })
            .collect()
    };
}

/// Reads an array (element type, count, elements) at nesting `depth` (1 for a top-level
/// array).
fn read_array(cur: &mut Cursor<'_>, key: &str, depth: u32) -> Result<MetaArray, GgufError> {
    use value_type::*;
    let start = cur.offset();
    if depth > limits::MAX_NESTING {
        return Err(GgufError::NestingTooDeep {
            key: key.to_owned(),
            offset: start,
            depth,
            max: limits::MAX_NESTING,
        });
    }
    let elem_type = cur.read_u32().map_err(|t| truncated(t, format!("array element type of '{key}'")))?;
    let count_offset = cur.offset();
    let count = cur.read_u64().map_err(|t| truncated(t, format!("array length of '{key}'")))?;
    let min_item_bytes = min_encoded_size(elem_type).ok_or_else(|| GgufError::UnknownValueType {
        key: key.to_owned(),
        offset: start,
        type_id: elem_type,
    })?;
    let available = cur.remaining();
    let total_min = count.checked_mul(min_item_bytes).filter(|&n| n <= available);
    let Some(total_min) = total_min else {
        return Err(GgufError::CountPastEnd {
            what: format!("array length of '{key}'"),
            offset: count_offset,
            count,
            min_item_bytes,
            available,
        });
    };
    // From here on `count` elements fit in the rest of the file, so reserving `count` slots
    // costs at most a small multiple of the file size.
    let n = usize::try_from(count).unwrap_or(0);
    let elems_offset = cur.offset();
    let ran_out = |t| truncated(t, format!("elements of '{key}'"));
    Ok(match elem_type {
        STRING => {
            let mut v = Vec::with_capacity(n);
            for i in 0..count {
                v.push(read_string(cur, limits::MAX_STRING_LEN, &|| format!("element {i} of '{key}'"))?);
            }
            MetaArray::Str(v)
        }
        ARRAY => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..count {
                v.push(read_array(cur, key, depth + 1)?);
            }
            MetaArray::Array(v)
        }
        BOOL => {
            let bytes = cur.take(total_min).map_err(ran_out)?;
            let mut v = Vec::with_capacity(n);
            for (i, &b) in bytes.iter().enumerate() {
                v.push(bool_from_byte(b, key, elems_offset.saturating_add(i as u64))?);
            }
            MetaArray::Bool(v)
        }
        _ => {
            let bytes = cur.take(total_min).map_err(ran_out)?;
            match elem_type {
                UINT8 => MetaArray::U8(bytes.to_vec()),
                INT8 => MetaArray::I8(bytes.iter().map(|&b| b as i8).collect()),
                UINT16 => MetaArray::U16(decode_le!(bytes, u16)),
                INT16 => MetaArray::I16(decode_le!(bytes, i16)),
                UINT32 => MetaArray::U32(decode_le!(bytes, u32)),
                INT32 => MetaArray::I32(decode_le!(bytes, i32)),
                FLOAT32 => MetaArray::F32(decode_le!(bytes, f32)),
                UINT64 => MetaArray::U64(decode_le!(bytes, u64)),
                INT64 => MetaArray::I64(decode_le!(bytes, i64)),
                FLOAT64 => MetaArray::F64(decode_le!(bytes, f64)),
                // min_encoded_size accepted exactly the types matched above.
                _ => {
                    return Err(GgufError::UnknownValueType {
                        key: key.to_owned(),
                        offset: start,
                        type_id: elem_type,
                    })
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gguf_string(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(s);
        v
    }

    fn kv(key: &str, type_id: u32, value: &[u8]) -> Vec<u8> {
        let mut v = gguf_string(key.as_bytes());
        v.extend_from_slice(&type_id.to_le_bytes());
        v.extend_from_slice(value);
        v
    }

    fn array_header(elem_type: u32, count: u64) -> Vec<u8> {
        let mut v = elem_type.to_le_bytes().to_vec();
        v.extend_from_slice(&count.to_le_bytes());
        v
    }

    #[test]
    fn reads_scalars_and_typed_arrays() {
        let mut data = kv("a", value_type::UINT16, &7u16.to_le_bytes());
        let mut arr = array_header(value_type::INT32, 2);
        arr.extend_from_slice(&(-1i32).to_le_bytes());
        arr.extend_from_slice(&5i32.to_le_bytes());
        data.extend(kv("b", value_type::ARRAY, &arr));
        let kvs = read_kvs(&mut Cursor::new(&data), 2).unwrap();
        assert_eq!(kvs[0].value, MetaValue::U16(7));
        assert_eq!(kvs[1].value, MetaValue::Array(MetaArray::I32(vec![-1, 5])));
        assert_eq!(kvs[1].offset, 8 + 1 + 4 + 2);
    }

    #[test]
    fn empty_nested_array_keeps_its_type() {
        let mut arr = array_header(value_type::ARRAY, 1);
        arr.extend(array_header(value_type::FLOAT64, 0));
        let data = kv("n", value_type::ARRAY, &arr);
        let kvs = read_kvs(&mut Cursor::new(&data), 1).unwrap();
        assert_eq!(kvs[0].value, MetaValue::Array(MetaArray::Array(vec![MetaArray::F64(vec![])])));
    }

    #[test]
    fn nesting_cap_is_exact() {
        // MAX_NESTING levels are fine, one more is refused.
        let build = |levels: u32| {
            let mut arr = Vec::new();
            for _ in 1..levels {
                arr.extend(array_header(value_type::ARRAY, 1));
            }
            arr.extend(array_header(value_type::UINT8, 0));
            kv("deep", value_type::ARRAY, &arr)
        };
        assert!(read_kvs(&mut Cursor::new(&build(limits::MAX_NESTING)), 1).is_ok());
        let err = read_kvs(&mut Cursor::new(&build(limits::MAX_NESTING + 1)), 1).unwrap_err();
        assert!(matches!(err, GgufError::NestingTooDeep { depth, .. } if depth == limits::MAX_NESTING + 1));
    }

    #[test]
    fn huge_string_array_count_refused_before_allocating() {
        let data = kv("s", value_type::ARRAY, &array_header(value_type::STRING, u64::MAX / 4));
        let err = read_kvs(&mut Cursor::new(&data), 1).unwrap_err();
        assert!(
            matches!(err, GgufError::CountPastEnd { offset, min_item_bytes: 8, .. } if offset == 8 + 1 + 4 + 4)
        );
    }

    #[test]
    fn count_times_size_overflow_is_count_past_end() {
        let data = kv("x", value_type::ARRAY, &array_header(value_type::UINT64, u64::MAX / 2));
        assert!(matches!(read_kvs(&mut Cursor::new(&data), 1), Err(GgufError::CountPastEnd { .. })));
    }

    #[test]
    fn bool_array_element_checked() {
        let mut arr = array_header(value_type::BOOL, 3);
        arr.extend_from_slice(&[1, 0, 2]);
        let data = kv("b", value_type::ARRAY, &arr);
        let err = read_kvs(&mut Cursor::new(&data), 1).unwrap_err();
        assert!(
            matches!(err, GgufError::InvalidBool { value: 2, offset, .. } if offset == 8 + 1 + 4 + 12 + 2)
        );
    }

    #[test]
    fn invalid_utf8_names_first_bad_byte() {
        let data = kv("k", value_type::STRING, &gguf_string(b"ab\xffc"));
        let err = read_kvs(&mut Cursor::new(&data), 1).unwrap_err();
        let value_bytes = 8 + 1 + 4 + 8;
        assert!(matches!(err, GgufError::InvalidUtf8 { offset, bad_byte, .. }
            if offset == value_bytes && bad_byte == value_bytes + 2));
    }
}
