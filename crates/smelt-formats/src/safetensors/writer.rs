//! Streaming safetensors writer: tensors go out one at a time as they are produced, and the
//! JSON header, which needs every tensor's offsets, is written last into space reserved at the
//! start of the file. Memory stays bounded by the header, whatever the model's size.
//!
//! Layout of a file this writer makes (read by [`super::read_file`] and the `safetensors`
//! package alike):
//!
//! ```text
//! 0        8-byte little-endian N
//! 8        JSON header, then spaces (0x20) up to 8 + N, a multiple of 64
//! 8 + N    tensor data, in the order the tensors were added, back to back
//! ```
//!
//! The format allows the padding ("The header data MAY be trailing padded with whitespace
//! (0x20)", the format section of huggingface/safetensors' README; the `safetensors` crate pads
//! its own headers with spaces to a multiple of 8). The header holds `__metadata__` first (when
//! there is any), then the tensors in the order added, with `data_offsets` contiguous from 0
//! and covering the data exactly, as the reader's layout check requires. Bytes are
//! deterministic: the same tensors and metadata give the same file.
//!
//! N is fixed before the first tensor, from a [`HeaderBudget`] the caller fills with what it
//! knows up front (tensor names, metadata). When the header turns out larger than the
//! reservation the writer says so ([`SafetensorsWriteError::HeaderBudgetExceeded`]) instead of
//! writing a corrupt file; a file abandoned before [`SafetensorsWriter::finish`] has a zero
//! header length, which every reader refuses.
//!
//! The writer knows no quantization scheme: a layout such as bitsandbytes' NF4 state dict or
//! GPTQ's `qweight`/`qzeros`/`scales`/`g_idx` is just named tensors of plain dtypes.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};

use smelt_tensor::DType;

use super::dtype_names::SAFETENSORS_DTYPES;
use super::header::{LEN_FIELD, METADATA_KEY};
use crate::limits;

/// The data section starts at a multiple of this many bytes from the start of the file, so a
/// mapped file hands out aligned tensors (the first one at least).
pub const DATA_ALIGNMENT: u64 = 64;

/// Header bytes [`HeaderBudget::add_tensor`] allows for one tensor's entry besides its name:
/// `{"dtype":"...","shape":[...],"data_offsets":[a,b]}` plus the colon and comma around it.
/// Enough for any dtype with a shape of rank 4 or less whose dimensions, like the offsets,
/// are below 10^15 (44 bytes of punctuation and keys, 11 for the longest dtype name, 2 x 15
/// offset digits, 63 for the shape, 12 to spare). For larger ranks use
/// [`HeaderBudget::add_tensor_shape`], which is exact.
pub const TENSOR_ENTRY_ALLOWANCE: u64 = 160;

/// `{` and `}` around the header, and the `"__metadata__":{},` wrapper (counted whether or
/// not there is metadata, so the budget needs no state).
const BUDGET_BASE: u64 = 2 + 18;

/// Most decimal digits a `u64` takes.
const MAX_U64_DIGITS: u64 = 20;

/// How many bytes the JSON header may need, computed before anything is written; see
/// [`HeaderBudget::reserved_len`] for the space this reserves.
///
/// The sums saturate: a budget beyond the format's header cap is refused by
/// [`SafetensorsWriter::new`], not wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderBudget {
    json_bytes: u64,
}

impl Default for HeaderBudget {
    fn default() -> Self {
        HeaderBudget::new()
    }
}

impl HeaderBudget {
    /// The budget of an empty header (no tensors, no metadata).
    pub fn new() -> HeaderBudget {
        HeaderBudget { json_bytes: BUDGET_BASE }
    }

    /// A budget for tensors with these names, each with [`TENSOR_ENTRY_ALLOWANCE`].
    pub fn for_tensor_names<'a>(names: impl IntoIterator<Item = &'a str>) -> HeaderBudget {
        let mut budget = HeaderBudget::new();
        for name in names {
            budget.add_tensor(name);
        }
        budget
    }

    /// Allows for a tensor named `name` whose dtype and shape are not known yet (at most
    /// rank 4, see [`TENSOR_ENTRY_ALLOWANCE`]).
    pub fn add_tensor(&mut self, name: &str) {
        self.add(json_string_len(name).saturating_add(TENSOR_ENTRY_ALLOWANCE));
    }

    /// Allows exactly for a tensor whose dtype and shape are known, with offsets of any size.
    pub fn add_tensor_shape(&mut self, name: &str, dtype: DType, shape: &[u64]) {
        let dtype_len = safetensors_dtype_name(dtype).map_or(MAX_DTYPE_NAME_LEN, str::len) as u64;
        let shape_len: u64 = shape.iter().map(|d| decimal_len(*d) + 1).sum();
        // "name":{"dtype":"X","shape":[..],"data_offsets":[a,b]},
        let entry = ENTRY_PUNCTUATION + dtype_len + shape_len + 2 * MAX_U64_DIGITS;
        self.add(json_string_len(name).saturating_add(entry));
    }

    /// Allows for one `__metadata__` entry.
    pub fn add_metadata(&mut self, key: &str, value: &str) {
        // "key":"value",
        self.add(json_string_len(key).saturating_add(json_string_len(value)).saturating_add(2));
    }

    /// Adds `bytes` of slack.
    pub fn add_bytes(&mut self, bytes: u64) {
        self.add(bytes);
    }

    fn add(&mut self, bytes: u64) {
        self.json_bytes = self.json_bytes.saturating_add(bytes);
    }

    /// The most bytes the JSON header may take.
    pub fn json_bytes(&self) -> u64 {
        self.json_bytes
    }

    /// The header length N the writer reserves: at least [`HeaderBudget::json_bytes`], and
    /// such that the data starts at a multiple of [`DATA_ALIGNMENT`] (`8 + N ≡ 0 mod 64`).
    /// Saturates near `u64::MAX` (refused by the writer anyway).
    pub fn reserved_len(&self) -> u64 {
        let end = LEN_FIELD.saturating_add(self.json_bytes);
        let aligned = end.div_ceil(DATA_ALIGNMENT).saturating_mul(DATA_ALIGNMENT);
        aligned - LEN_FIELD
    }
}

/// Length of the longest safetensors dtype string (`F8_E4M3FNUZ`).
const MAX_DTYPE_NAME_LEN: usize = 11;

/// Bytes of one entry other than the name, dtype, dimensions and offsets:
/// `:{"dtype":"` (11) `","shape":[` (11) `],"data_offsets":[` (18) `,` (1) `]}` (2) and the
/// comma after the entry (1). Each dimension is counted with a comma after it.
const ENTRY_PUNCTUATION: u64 = 11 + 11 + 18 + 1 + 2 + 1;

/// Digits of `n` in decimal.
fn decimal_len(n: u64) -> u64 {
    n.checked_ilog10().map_or(1, |d| u64::from(d) + 1)
}

/// Length of `s` as a JSON string literal, quotes included.
fn json_string_len(s: &str) -> u64 {
    json_string(s).len() as u64
}

/// `s` as a JSON string literal (serde_json's escaping: `"`, `\` and control characters).
fn json_string(s: &str) -> String {
    // Serializing a str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

/// The safetensors dtype string of `dtype` (the reader's table read backwards), or `None`
/// when the format cannot hold it.
pub fn safetensors_dtype_name(dtype: DType) -> Option<&'static str> {
    SAFETENSORS_DTYPES.iter().find(|(_, d)| *d == Some(dtype)).map(|(name, _)| *name)
}

/// A safetensors file the writer will not write, or an output that failed.
///
/// Tensor errors carry the absolute offset in the output where the tensor's data starts (or
/// would have started); a refused tensor leaves the writer as it was, so the caller may go on
/// without it. An I/O failure is final ([`SafetensorsWriteError::AfterFailure`]).
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsWriteError {
    /// The reservation is above the header size the format's readers accept.
    #[error("at byte 0: a header of {reserved} bytes is above the limit of {max} readers accept")]
    HeaderTooLarge {
        /// The header length the budget asked for.
        reserved: u64,
        /// The cap (`limits::MAX_SAFETENSORS_HEADER`).
        max: u64,
    },
    /// The header needs more bytes than were reserved before the first tensor.
    #[error(
        "at byte {offset}: header needs at least {needed} bytes by '{at}', but only {reserved} were \
         reserved; give the HeaderBudget more room (tensor shapes, metadata)"
    )]
    HeaderBudgetExceeded {
        /// The tensor (or `__metadata__`) whose entry did not fit.
        at: String,
        /// Absolute offset of the header.
        offset: u64,
        /// Header bytes needed so far.
        needed: u64,
        /// Header bytes reserved.
        reserved: u64,
    },
    /// A tensor named `__metadata__`, which the format reserves for the metadata map.
    #[error("tensor '__metadata__' at byte {offset}: the name is reserved for the metadata map")]
    ReservedName {
        /// Where its data would start.
        offset: u64,
    },
    /// A tensor name longer than readers accept (`limits::MAX_NAME_LEN`).
    #[error("tensor '{prefix}...' at byte {offset}: name of {len} bytes is above the limit of {max}")]
    NameTooLong {
        /// The first characters of the name.
        prefix: String,
        /// Where its data would start.
        offset: u64,
        /// Name length in bytes.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// A second tensor with a name already written.
    #[error("tensor '{name}' at byte {offset}: already written (tensor {first_index}, data at byte {first_offset})")]
    DuplicateTensor {
        /// The name.
        name: String,
        /// Where its data would start.
        offset: u64,
        /// Index of the first tensor of that name, in the order added.
        first_index: usize,
        /// Absolute offset of the first tensor's data.
        first_offset: u64,
    },
    /// More tensors than readers accept (`limits::MAX_TENSORS`).
    #[error("tensor '{name}' at byte {offset}: more than {max} tensors")]
    TooManyTensors {
        /// The tensor past the cap.
        name: String,
        /// Where its data would start.
        offset: u64,
        /// The cap.
        max: u64,
    },
    /// A dtype the safetensors format has no string for (ggml block types, ONNX's packed
    /// int4/uint4, complex128, strings).
    #[error("tensor '{name}' at byte {offset}: safetensors has no dtype for {dtype}")]
    UnsupportedDtype {
        /// Tensor name.
        name: String,
        /// Where its data would start.
        offset: u64,
        /// The dtype given.
        dtype: DType,
    },
    /// More dimensions than readers accept (`limits::MAX_RANK`).
    #[error("tensor '{name}' at byte {offset}: rank {rank} is above the limit of {max}")]
    RankTooLarge {
        /// Tensor name.
        name: String,
        /// Where its data would start.
        offset: u64,
        /// The rank given.
        rank: u64,
        /// The cap.
        max: u64,
    },
    /// The shape's byte size, or the end of its data in the file, overflows 64 bits.
    #[error("tensor '{name}' at byte {offset}: shape {shape:?} of {dtype} overflows a 64-bit byte count")]
    SizeOverflow {
        /// Tensor name.
        name: String,
        /// Where its data would start.
        offset: u64,
        /// The dtype.
        dtype: DType,
        /// The shape.
        shape: Vec<u64>,
    },
    /// A 4-bit dtype (F4) with an odd element count: safetensors tensors end on a byte.
    #[error("tensor '{name}' at byte {offset}: {numel} elements of {dtype} do not fill whole bytes")]
    PartialByte {
        /// Tensor name.
        name: String,
        /// Where its data would start.
        offset: u64,
        /// The dtype.
        dtype: DType,
        /// Element count.
        numel: u64,
    },
    /// The bytes given are not the size the dtype and shape need.
    #[error(
        "tensor '{name}' at byte {offset}: {found} bytes given, shape {shape:?} of {dtype} needs {expected}"
    )]
    WrongLength {
        /// Tensor name.
        name: String,
        /// Where its data would start.
        offset: u64,
        /// The dtype.
        dtype: DType,
        /// The shape.
        shape: Vec<u64>,
        /// Bytes the dtype and shape need.
        expected: u64,
        /// Bytes given.
        found: u64,
    },
    /// More `__metadata__` entries than readers accept (`limits::MAX_METADATA`).
    #[error("__metadata__ at byte {offset}: {count} entries are above the limit of {max}")]
    TooManyMetadata {
        /// Absolute offset of the header.
        offset: u64,
        /// Entries given.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// The same `__metadata__` key twice (readers refuse it: JSON maps would keep one).
    #[error("__metadata__ key '{key}' at byte {offset}: entry {index} repeats entry {first_index}")]
    DuplicateMetadataKey {
        /// The key.
        key: String,
        /// Absolute offset of the header.
        offset: u64,
        /// Index of the repeat.
        index: usize,
        /// Index of the first entry with this key.
        first_index: usize,
    },
    /// Writing or seeking the output failed.
    #[error("at byte {offset}: writing {what} failed: {source}")]
    Io {
        /// What was being written (`tensor 'x'`, `the header`, ...).
        what: String,
        /// Absolute offset where the failed write started.
        offset: u64,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The writer was used after an I/O failure, when the output's contents are unknown.
    #[error("at byte {offset}: an earlier write failed here, nothing more can be written")]
    AfterFailure {
        /// Where the failed write started.
        offset: u64,
    },
}

/// Writes one safetensors file to a `Write + Seek` output (smelt's `AtomicFile`, a
/// `std::fs::File`, a `Cursor<Vec<u8>>`), starting at the output's current position.
///
/// [`SafetensorsWriter::new`] reserves the header space, [`SafetensorsWriter::add_tensor`]
/// writes each tensor's bytes at once, [`SafetensorsWriter::finish`] writes the header into
/// the reservation and returns the output (positioned at the end of the file).
#[derive(Debug)]
pub struct SafetensorsWriter<W: Write + Seek> {
    out: W,
    /// Stream position of the file's first byte.
    base: u64,
    /// Header length N.
    reserved: u64,
    /// The tensor entries so far, comma-separated JSON members.
    entries: String,
    /// Index and data offset (relative to the data section) of each name written.
    names: HashMap<String, (usize, u64)>,
    /// Bytes of data written.
    data_len: u64,
    /// Absolute offset of a failed write, after which nothing is written.
    failed_at: Option<u64>,
    /// Most tensors (`limits::MAX_TENSORS`; lowered by tests).
    max_tensors: u64,
    /// Most metadata entries (`limits::MAX_METADATA`; lowered by tests).
    max_metadata: u64,
}

impl<W: Write + Seek> SafetensorsWriter<W> {
    /// Reserves `budget.reserved_len()` header bytes after the 8-byte length (written as zero
    /// until [`SafetensorsWriter::finish`]), so that the data section starts at a multiple of
    /// [`DATA_ALIGNMENT`] from the current position.
    pub fn new(mut out: W, budget: &HeaderBudget) -> Result<SafetensorsWriter<W>, SafetensorsWriteError> {
        let reserved = budget.reserved_len();
        if reserved > limits::MAX_SAFETENSORS_HEADER {
            return Err(SafetensorsWriteError::HeaderTooLarge {
                reserved,
                max: limits::MAX_SAFETENSORS_HEADER,
            });
        }
        let io = |offset, source| SafetensorsWriteError::Io {
            what: "the header reservation".into(),
            offset,
            source,
        };
        let base = out.stream_position().map_err(|e| io(0, e))?;
        write_zeros(&mut out, LEN_FIELD + reserved).map_err(|e| io(base, e))?;
        Ok(SafetensorsWriter {
            out,
            base,
            reserved,
            entries: String::new(),
            names: HashMap::new(),
            data_len: 0,
            failed_at: None,
            max_tensors: limits::MAX_TENSORS,
            max_metadata: limits::MAX_METADATA,
        })
    }

    /// Absolute offset of the data section (a multiple of [`DATA_ALIGNMENT`] past the start).
    pub fn data_start(&self) -> u64 {
        // new() checked reserved <= MAX_SAFETENSORS_HEADER; a stream position near u64::MAX
        // cannot have had that many bytes written after it.
        self.base.saturating_add(LEN_FIELD + self.reserved)
    }

    /// The header length N reserved.
    pub fn reserved_header_len(&self) -> u64 {
        self.reserved
    }

    /// Tensors written so far.
    pub fn tensor_count(&self) -> usize {
        self.names.len()
    }

    /// Checks one tensor and writes its bytes straight to the output. `shape` is row-major,
    /// outermost first; `data` must be exactly `dtype.storage_bytes(shape)` bytes. A refused
    /// tensor writes nothing.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[u64],
        data: &[u8],
    ) -> Result<(), SafetensorsWriteError> {
        if let Some(offset) = self.failed_at {
            return Err(SafetensorsWriteError::AfterFailure { offset });
        }
        let begin = self.data_len;
        let offset = self.data_start().saturating_add(begin);
        let end = self.check_tensor(name, dtype, shape, data, offset)?;
        let dtype_name = safetensors_dtype_name(dtype).unwrap_or_default();

        let mut entry = String::with_capacity(name.len() + 96);
        if !self.entries.is_empty() {
            entry.push(',');
        }
        entry.push_str(&json_string(name));
        entry.push_str(":{\"dtype\":\"");
        entry.push_str(dtype_name);
        entry.push_str("\",\"shape\":[");
        for (i, d) in shape.iter().enumerate() {
            if i > 0 {
                entry.push(',');
            }
            entry.push_str(&d.to_string());
        }
        entry.push_str(&format!("],\"data_offsets\":[{begin},{end}]}}"));

        // Braces around the entries; metadata only adds to this at finish.
        let needed = (self.entries.len() + entry.len() + 2) as u64;
        if needed > self.reserved {
            return Err(self.budget_exceeded(name, needed));
        }

        if let Err(source) = self.out.write_all(data) {
            self.failed_at = Some(offset);
            return Err(SafetensorsWriteError::Io { what: format!("tensor '{name}'"), offset, source });
        }
        self.entries.push_str(&entry);
        self.names.insert(name.to_owned(), (self.names.len(), begin));
        self.data_len = end;
        Ok(())
    }

    /// Everything [`SafetensorsWriter::add_tensor`] refuses; returns the end of the tensor's
    /// data relative to the data section.
    fn check_tensor(
        &self,
        name: &str,
        dtype: DType,
        shape: &[u64],
        data: &[u8],
        offset: u64,
    ) -> Result<u64, SafetensorsWriteError> {
        if name == METADATA_KEY {
            return Err(SafetensorsWriteError::ReservedName { offset });
        }
        if name.len() as u64 > limits::MAX_NAME_LEN {
            return Err(SafetensorsWriteError::NameTooLong {
                prefix: name.chars().take(40).collect(),
                offset,
                len: name.len() as u64,
                max: limits::MAX_NAME_LEN,
            });
        }
        if let Some(&(first_index, first_begin)) = self.names.get(name) {
            return Err(SafetensorsWriteError::DuplicateTensor {
                name: name.to_owned(),
                offset,
                first_index,
                first_offset: self.data_start().saturating_add(first_begin),
            });
        }
        if self.names.len() as u64 >= self.max_tensors {
            return Err(SafetensorsWriteError::TooManyTensors {
                name: name.to_owned(),
                offset,
                max: self.max_tensors,
            });
        }
        if safetensors_dtype_name(dtype).is_none() {
            return Err(SafetensorsWriteError::UnsupportedDtype { name: name.to_owned(), offset, dtype });
        }
        if shape.len() > limits::MAX_RANK {
            return Err(SafetensorsWriteError::RankTooLarge {
                name: name.to_owned(),
                offset,
                rank: shape.len() as u64,
                max: limits::MAX_RANK as u64,
            });
        }
        let overflow = || SafetensorsWriteError::SizeOverflow {
            name: name.to_owned(),
            offset,
            dtype,
            shape: shape.to_vec(),
        };
        let numel = smelt_tensor::numel(shape).ok_or_else(overflow)?;
        if dtype.is_packed_nibble() && numel % 2 != 0 {
            return Err(SafetensorsWriteError::PartialByte { name: name.to_owned(), offset, dtype, numel });
        }
        let expected = dtype.storage_bytes(shape).ok_or_else(overflow)?;
        if data.len() as u64 != expected {
            return Err(SafetensorsWriteError::WrongLength {
                name: name.to_owned(),
                offset,
                dtype,
                shape: shape.to_vec(),
                expected,
                found: data.len() as u64,
            });
        }
        // The data must stay addressable as an absolute file offset too.
        let end = self.data_len.checked_add(expected).ok_or_else(overflow)?;
        self.data_start().checked_add(end).ok_or_else(overflow)?;
        Ok(end)
    }

    fn budget_exceeded(&self, at: &str, needed: u64) -> SafetensorsWriteError {
        SafetensorsWriteError::HeaderBudgetExceeded {
            at: at.to_owned(),
            offset: self.base.saturating_add(LEN_FIELD),
            needed,
            reserved: self.reserved,
        }
    }

    /// Writes the header, with `metadata` as `__metadata__` (first, in the order given;
    /// omitted when empty), into the reserved space padded with spaces, flushes, and returns
    /// the output positioned at the end of the file.
    pub fn finish(mut self, metadata: &[(String, String)]) -> Result<W, SafetensorsWriteError> {
        if let Some(offset) = self.failed_at {
            return Err(SafetensorsWriteError::AfterFailure { offset });
        }
        let header_offset = self.base.saturating_add(LEN_FIELD);
        if metadata.len() as u64 > self.max_metadata {
            return Err(SafetensorsWriteError::TooManyMetadata {
                offset: header_offset,
                count: metadata.len() as u64,
                max: self.max_metadata,
            });
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(metadata.len());
        for (index, (key, _)) in metadata.iter().enumerate() {
            if let Some(&first_index) = seen.get(key.as_str()) {
                return Err(SafetensorsWriteError::DuplicateMetadataKey {
                    key: key.clone(),
                    offset: header_offset,
                    index,
                    first_index,
                });
            }
            seen.insert(key, index);
        }

        let header = header_json(metadata, &self.entries);
        let needed = header.len() as u64;
        if needed > self.reserved {
            return Err(self.budget_exceeded(METADATA_KEY, needed));
        }
        let mut block = Vec::with_capacity(LEN_FIELD as usize + header.len());
        block.extend_from_slice(&self.reserved.to_le_bytes());
        block.extend_from_slice(header.as_bytes());
        let end = self.data_start().saturating_add(self.data_len);

        let base = self.base;
        let result = (|| {
            self.out.seek(SeekFrom::Start(base))?;
            self.out.write_all(&block)?;
            write_spaces(&mut self.out, self.reserved - needed)?;
            self.out.seek(SeekFrom::Start(end))?;
            self.out.flush()
        })();
        result.map_err(|source| SafetensorsWriteError::Io {
            what: "the header".into(),
            offset: base,
            source,
        })?;
        Ok(self.out)
    }
}

/// The header JSON: `{"__metadata__":{...},<entries>}`, metadata omitted when empty.
fn header_json(metadata: &[(String, String)], entries: &str) -> String {
    let mut header = String::with_capacity(entries.len() + 64);
    header.push('{');
    if !metadata.is_empty() {
        header.push_str("\"__metadata__\":{");
        for (i, (key, value)) in metadata.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&json_string(key));
            header.push(':');
            header.push_str(&json_string(value));
        }
        header.push('}');
        if !entries.is_empty() {
            header.push(',');
        }
    }
    header.push_str(entries);
    header.push('}');
    header
}

/// Writes `n` copies of `byte` without allocating `n` bytes.
fn write_repeated(out: &mut impl Write, byte: u8, mut n: u64) -> std::io::Result<()> {
    let chunk = [byte; 4096];
    while n > 0 {
        let k = n.min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..k])?;
        n -= k as u64;
    }
    Ok(())
}

fn write_zeros(out: &mut impl Write, n: u64) -> std::io::Result<()> {
    write_repeated(out, 0, n)
}

fn write_spaces(out: &mut impl Write, n: u64) -> std::io::Result<()> {
    write_repeated(out, b' ', n)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn write(tensors: &[(&str, DType, Vec<u64>, Vec<u8>)], metadata: &[(String, String)]) -> Vec<u8> {
        let mut budget = HeaderBudget::for_tensor_names(tensors.iter().map(|t| t.0));
        for (k, v) in metadata {
            budget.add_metadata(k, v);
        }
        let mut w = SafetensorsWriter::new(Cursor::new(Vec::new()), &budget).unwrap();
        for (name, dtype, shape, data) in tensors {
            w.add_tensor(name, *dtype, shape, data).unwrap();
        }
        w.finish(metadata).unwrap().into_inner()
    }

    #[test]
    fn golden_bytes_of_a_small_file() {
        let meta = [("format".to_owned(), "pt".to_owned())];
        let file =
            write(&[("b", DType::U8, vec![2], vec![7, 8]), ("a", DType::I16, vec![], vec![1, 0])], &meta);
        let header = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"I16","shape":[],"data_offsets":[2,4]}}"#;
        let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        assert_eq!((8 + n) % 64, 0);
        assert_eq!(&file[8..8 + header.len()], header.as_bytes());
        assert!(file[8 + header.len()..8 + n].iter().all(|&b| b == b' '), "padding is spaces");
        assert_eq!(&file[8 + n..], &[7, 8, 1, 0]);
    }

    #[test]
    fn empty_file_is_one_aligned_header() {
        let file = write(&[], &[]);
        assert_eq!(file.len(), 64);
        assert_eq!(u64::from_le_bytes(file[..8].try_into().unwrap()), 56);
        assert_eq!(&file[8..10], b"{}");
    }

    #[test]
    fn reservation_aligns_the_data() {
        for extra in [0u64, 1, 33, 34, 35, 100, 1000] {
            let mut b = HeaderBudget::new();
            b.add_bytes(extra);
            let n = b.reserved_len();
            assert!(n >= b.json_bytes());
            assert_eq!((8 + n) % DATA_ALIGNMENT, 0);
            assert!(n < b.json_bytes() + DATA_ALIGNMENT);
        }
        let mut huge = HeaderBudget::new();
        huge.add_bytes(u64::MAX);
        assert!(huge.reserved_len() >= limits::MAX_SAFETENSORS_HEADER);
    }

    #[test]
    fn exact_shape_budget_covers_the_longest_entry() {
        let name = "x\"\n";
        let shape = [u64::MAX; 16];
        let mut b = HeaderBudget::new();
        b.add_tensor_shape(name, DType::F8_E4M3_FNUZ, &shape);
        let dims = shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
        let entry = format!(
            "{}:{{\"dtype\":\"F8_E4M3FNUZ\",\"shape\":[{dims}],\"data_offsets\":[{},{}]}},",
            json_string(name),
            u64::MAX,
            u64::MAX
        );
        // One more than needed: the last dimension is counted with a comma.
        assert_eq!(b.json_bytes(), BUDGET_BASE + entry.len() as u64 + 1);
        let mut scalar = HeaderBudget::new();
        scalar.add_tensor_shape("s", DType::F32, &[]);
        let entry =
            r#""s":{"dtype":"F32","shape":[],"data_offsets":[18446744073709551615,18446744073709551615]},"#;
        assert_eq!(scalar.json_bytes(), BUDGET_BASE + entry.len() as u64);
    }

    #[test]
    fn allowance_covers_rank_four_below_ten_to_the_fifteen() {
        let big = 999_999_999_999_999u64;
        let dims = [big; 4].map(|d| d.to_string()).join(",");
        let entry =
            format!("\"\":{{\"dtype\":\"F8_E4M3FNUZ\",\"shape\":[{dims}],\"data_offsets\":[{big},{big}]}},");
        assert!(entry.len() as u64 - 2 <= TENSOR_ENTRY_ALLOWANCE, "{}", entry.len());
    }

    #[test]
    fn dtype_names_are_the_readers_table_backwards() {
        for &(name, dtype) in SAFETENSORS_DTYPES {
            if let Some(d) = dtype {
                assert_eq!(safetensors_dtype_name(d), Some(name));
            }
        }
        assert_eq!(safetensors_dtype_name(DType::Q4_0), None);
        assert_eq!(safetensors_dtype_name(DType::I4), None);
        assert_eq!(safetensors_dtype_name(DType::C128), None);
        assert!(SAFETENSORS_DTYPES.iter().all(|(n, _)| n.len() <= MAX_DTYPE_NAME_LEN));
    }

    #[test]
    fn tensor_and_metadata_caps() {
        let mut w =
            SafetensorsWriter::new(Cursor::new(Vec::new()), &HeaderBudget::for_tensor_names(["a", "b"]))
                .unwrap();
        w.max_tensors = 1;
        w.max_metadata = 1;
        w.add_tensor("a", DType::U8, &[1], &[1]).unwrap();
        let data_start = w.data_start();
        assert!(matches!(
            w.add_tensor("b", DType::U8, &[1], &[2]),
            Err(SafetensorsWriteError::TooManyTensors { ref name, offset, max: 1 }) if name == "b" && offset == data_start + 1
        ));
        let meta = [("k".to_owned(), "v".to_owned()), ("l".to_owned(), "w".to_owned())];
        assert!(matches!(
            w.finish(&meta),
            Err(SafetensorsWriteError::TooManyMetadata { offset: 8, count: 2, max: 1 })
        ));
    }

    #[test]
    fn decimal_lengths() {
        assert_eq!(decimal_len(0), 1);
        assert_eq!(decimal_len(9), 1);
        assert_eq!(decimal_len(10), 2);
        assert_eq!(decimal_len(u64::MAX), MAX_U64_DIGITS);
    }
}
