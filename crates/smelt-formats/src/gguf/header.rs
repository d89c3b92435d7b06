//! Everything in a GGUF file before the tensor data: magic, version, counts, metadata, tensor
//! infos, alignment and where the data section starts, all validated against the file.
//!
//! [`GgufHeader`] keeps what a GGUF writer needs to reproduce a file (exact value types, key
//! order, alignment, data offset), which [`crate::Model`] does not carry.

use crate::cursor::Cursor;
use crate::gguf::error::{truncated, GgufError};
use crate::gguf::metadata::{read_kvs, GgufKv, MIN_KV_BYTES};
use crate::gguf::tensor_info::{check_data_layout, read_tensor_infos, GgufTensorInfo, MIN_TENSOR_INFO_BYTES};
use crate::limits;
use crate::MetaValue;

/// The file magic.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The metadata key that overrides the alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Everything before the tensor data, validated: every tensor's bytes lie in the file and no
/// two overlap.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufHeader {
    /// Format version (2 or 3; they are identical for little-endian files).
    pub version: u32,
    /// Alignment of the data section and of every tensor offset in it.
    pub alignment: u64,
    /// Metadata entries in file order, with exact value types.
    pub kvs: Vec<GgufKv>,
    /// Tensor infos in file order.
    pub tensors: Vec<GgufTensorInfo>,
    /// Absolute offset where the tensor infos end.
    pub tensor_infos_end: u64,
    /// Absolute offset of the data section: `tensor_infos_end` rounded up to `alignment` (as
    /// gguf-py writes and reads it; with no tensors this may lie past the end of the file).
    pub data_offset: u64,
}

impl GgufHeader {
    /// The metadata value under `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.kvs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
    }
}

/// Parses and validates a whole GGUF file's header (`data` is the entire file, so that offsets
/// in errors are absolute and tensor ranges can be checked against its length).
pub fn parse_header(data: &[u8]) -> Result<GgufHeader, GgufError> {
    let mut cur = Cursor::new(data);
    let magic = cur.take(4).map_err(|t| truncated(t, "magic"))?;
    if magic != GGUF_MAGIC {
        let mut found = [0u8; 4];
        found.copy_from_slice(magic);
        return Err(GgufError::BadMagic { offset: 0, found });
    }
    let version = read_version(&mut cur)?;

    let tensor_count_offset = cur.offset();
    let tensor_count = cur.read_u64().map_err(|t| truncated(t, "tensor count"))?;
    let kv_count_offset = cur.offset();
    let kv_count = cur.read_u64().map_err(|t| truncated(t, "metadata count"))?;
    check_count("tensor count", tensor_count_offset, tensor_count, limits::MAX_TENSORS)?;
    check_count("metadata count", kv_count_offset, kv_count, limits::MAX_METADATA)?;
    check_fits("metadata count", kv_count_offset, kv_count, MIN_KV_BYTES, cur.remaining())?;

    let kvs = read_kvs(&mut cur, kv_count)?;
    let alignment = alignment(&kvs)?;

    check_fits("tensor count", tensor_count_offset, tensor_count, MIN_TENSOR_INFO_BYTES, cur.remaining())?;
    let tensors = read_tensor_infos(&mut cur, tensor_count, alignment)?;
    let tensor_infos_end = cur.offset();
    // Cannot overflow: tensor_infos_end is at most the file length and alignment at most 2^31.
    let data_offset = tensor_infos_end.div_ceil(alignment).saturating_mul(alignment);
    check_data_layout(&tensors, data_offset, data.len() as u64)?;
    Ok(GgufHeader { version, alignment, kvs, tensors, tensor_infos_end, data_offset })
}

fn read_version(cur: &mut Cursor<'_>) -> Result<u32, GgufError> {
    let offset = cur.offset();
    let version = cur.read_u32().map_err(|t| truncated(t, "version"))?;
    match version {
        2 | 3 => Ok(version),
        1 => Err(GgufError::VersionOne { offset }),
        // A big-endian writer puts the small version number in the high bytes (llama.cpp's
        // test: the low 16 bits read as zero).
        v if v != 0 && v & 0xffff == 0 => {
            Err(GgufError::BigEndian { offset, found: v, swapped: v.swap_bytes() })
        }
        v => Err(GgufError::UnsupportedVersion { offset, version: v }),
    }
}

fn check_count(what: &'static str, offset: u64, count: u64, max: u64) -> Result<(), GgufError> {
    if count > max {
        return Err(GgufError::CountTooLarge { what, offset, count, max });
    }
    Ok(())
}

fn check_fits(
    what: &str,
    offset: u64,
    count: u64,
    min_item_bytes: u64,
    available: u64,
) -> Result<(), GgufError> {
    match count.checked_mul(min_item_bytes) {
        Some(n) if n <= available => Ok(()),
        _ => Err(GgufError::CountPastEnd { what: what.to_owned(), offset, count, min_item_bytes, available }),
    }
}

fn alignment(kvs: &[GgufKv]) -> Result<u64, GgufError> {
    let Some(kv) = kvs.iter().find(|kv| kv.key == ALIGNMENT_KEY) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    match kv.value {
        MetaValue::U32(v) if v.is_power_of_two() => Ok(u64::from(v)),
        MetaValue::U32(value) => Err(GgufError::AlignmentNotPowerOfTwo { offset: kv.value_offset, value }),
        ref other => Err(GgufError::AlignmentWrongType { offset: kv.value_offset, found: other.type_name() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
        let mut v = GGUF_MAGIC.to_vec();
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&tensors.to_le_bytes());
        v.extend_from_slice(&kvs.to_le_bytes());
        v
    }

    #[test]
    fn empty_v2_and_v3_files() {
        for version in [2, 3] {
            let h = parse_header(&header(version, 0, 0)).unwrap();
            assert_eq!((h.version, h.alignment, h.tensor_infos_end, h.data_offset), (version, 32, 24, 32));
        }
    }

    #[test]
    fn version_field_classified() {
        let err = |v| parse_header(&header(v, 0, 0)).unwrap_err();
        assert!(matches!(err(1), GgufError::VersionOne { offset: 4 }));
        assert!(matches!(err(0x0300_0000), GgufError::BigEndian { swapped: 3, .. }));
        assert!(matches!(err(0x0200_0000), GgufError::BigEndian { swapped: 2, .. }));
        assert!(matches!(err(0), GgufError::UnsupportedVersion { version: 0, .. }));
        assert!(matches!(err(4), GgufError::UnsupportedVersion { version: 4, .. }));
    }

    #[test]
    fn counts_checked_against_cap_then_file_size() {
        let err = parse_header(&header(3, limits::MAX_TENSORS + 1, 0)).unwrap_err();
        assert!(matches!(err, GgufError::CountTooLarge { offset: 8, .. }));
        let err = parse_header(&header(3, 0, 2)).unwrap_err();
        assert!(matches!(err, GgufError::CountPastEnd { offset: 16, available: 0, .. }));
        let err = parse_header(&header(3, 1, 0)).unwrap_err();
        assert!(matches!(err, GgufError::CountPastEnd { offset: 8, .. }));
    }

    #[test]
    fn truncated_header_names_the_field() {
        let h = header(3, 0, 0);
        let err = parse_header(&h[..20]).unwrap_err();
        assert!(
            matches!(err, GgufError::Truncated { ref what, offset: 16, needed: 8, available: 4 } if what == "metadata count")
        );
        assert!(matches!(parse_header(b"GG").unwrap_err(), GgufError::Truncated { offset: 0, .. }));
    }
}
