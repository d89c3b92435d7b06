//! Streaming GGUF writer: the header, metadata and tensor infos go out first (every size is
//! known from the declarations), then each tensor's bytes in order, so memory stays bounded by
//! one tensor and the output needs no seek.
//!
//! The byte layout is gguf-py's `GGUFWriter` (what llama.cpp's `convert_hf_to_gguf.py` and
//! `gguf.cpp`'s `gguf_write_to_buf` both produce): magic, version, tensor count, metadata count,
//! the metadata entries in the order given, the tensor infos in the order given (dims innermost
//! first, offsets relative to the data section, each tensor's offset the previous one's plus its
//! size rounded up to the alignment), zero padding up to the alignment, then each tensor's bytes
//! followed by zero padding up to the alignment, the last tensor included. With no tensors the
//! file still ends padded to the alignment. Reading any gguf-py file with
//! [`crate::gguf::parse_header`] and writing it back with the same metadata and tensors gives
//! the same bytes.

use std::collections::HashMap;
use std::io::Write;

use smelt_tensor::DType;

use crate::gguf::header::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC};
use crate::gguf::metadata::value_type;
use crate::gguf::tensor_info::GGML_MAX_DIMS;
use crate::gguf::write_error::GgufWriteError;
use crate::{limits, MetaArray, MetaValue, Tensor};

/// The GGUF version the writer produces by default.
pub const GGUF_WRITE_VERSION: u32 = 3;

/// One tensor as declared before writing: its bytes come later, through
/// [`GgufWriter::write_tensor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorDecl {
    /// Tensor name.
    pub name: String,
    /// Stored type (must have a ggml type id).
    pub dtype: DType,
    /// Row-major shape, outermost first (written reversed, innermost first, as ggml's `ne`).
    pub shape: Vec<u64>,
}

impl GgufTensorDecl {
    /// A declaration.
    pub fn new(name: impl Into<String>, dtype: DType, shape: Vec<u64>) -> GgufTensorDecl {
        GgufTensorDecl { name: name.into(), dtype, shape }
    }
}

impl From<&Tensor> for GgufTensorDecl {
    fn from(t: &Tensor) -> GgufTensorDecl {
        GgufTensorDecl { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone() }
    }
}

/// A declared tensor with its place in the data section.
#[derive(Clone, Debug)]
struct PlannedTensor {
    name: String,
    /// Bytes of data.
    size: u64,
    /// Offset relative to the data section.
    offset: u64,
}

/// Writes one GGUF file to any [`Write`]: [`GgufWriter::new`] writes everything up to the data
/// section, [`GgufWriter::write_tensor`] each tensor's bytes in declaration order, and
/// [`GgufWriter::finish`] checks that every tensor came and flushes.
///
/// Output goes straight to `out` in a few large writes; wrap a file in a `BufWriter` anyway if
/// tensors are small.
#[derive(Debug)]
pub struct GgufWriter<W: Write> {
    out: W,
    alignment: u64,
    tensors: Vec<PlannedTensor>,
    /// Index of the next tensor to write.
    next: usize,
    /// Bytes written so far (the absolute offset of the next byte).
    position: u64,
    data_offset: u64,
    file_size: u64,
}

impl<W: Write> GgufWriter<W> {
    /// Validates the declarations and writes the header, metadata and tensor infos of a GGUF
    /// v3 file, then the padding up to the data section.
    ///
    /// `metadata` is written in the order given, with its exact types; a `general.alignment`
    /// entry (UINT32, a power of two) sets the alignment, otherwise it is 32.
    pub fn new(
        out: W,
        metadata: &[(String, MetaValue)],
        tensors: &[GgufTensorDecl],
    ) -> Result<GgufWriter<W>, GgufWriteError> {
        GgufWriter::with_version(out, GGUF_WRITE_VERSION, metadata, tensors)
    }

    /// As [`GgufWriter::new`], writing format `version` 2 or 3 (identical layouts; v2 only to
    /// reproduce old files).
    pub fn with_version(
        mut out: W,
        version: u32,
        metadata: &[(String, MetaValue)],
        tensors: &[GgufTensorDecl],
    ) -> Result<GgufWriter<W>, GgufWriteError> {
        if !matches!(version, 2 | 3) {
            return Err(GgufWriteError::UnsupportedVersion { version });
        }
        check_count("metadata entries", metadata.len(), limits::MAX_METADATA)?;
        check_count("tensors", tensors.len(), limits::MAX_TENSORS)?;
        let alignment = alignment(metadata)?;
        let planned = plan_tensors(tensors, alignment)?;

        let mut head = Vec::new();
        head.extend_from_slice(&GGUF_MAGIC);
        put_u32(&mut head, version);
        put_u64(&mut head, tensors.len() as u64);
        put_u64(&mut head, metadata.len() as u64);
        encode_metadata(&mut head, metadata)?;
        for (decl, plan) in tensors.iter().zip(&planned) {
            encode_tensor_info(&mut head, decl, plan.offset)?;
        }

        let overflow = || {
            let t = tensors.last();
            GgufWriteError::SizeOverflow {
                name: t.map(|t| t.name.clone()).unwrap_or_default(),
                shape: t.map(|t| t.shape.clone()).unwrap_or_default(),
            }
        };
        let data_offset = align_up(head.len() as u64, alignment).ok_or_else(overflow)?;
        let data_len = match planned.last() {
            Some(last) => last.offset.checked_add(align_up(last.size, alignment).ok_or_else(overflow)?),
            None => Some(0),
        };
        let file_size = data_len.and_then(|n| n.checked_add(data_offset)).ok_or_else(overflow)?;

        out.write_all(&head).map_err(|source| GgufWriteError::Io { offset: 0, source })?;
        let mut writer = GgufWriter {
            out,
            alignment,
            tensors: planned,
            next: 0,
            position: head.len() as u64,
            data_offset,
            file_size,
        };
        writer.pad_to(data_offset)?;
        Ok(writer)
    }

    /// The alignment of the data section and of every tensor in it.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the data section (the first tensor's bytes).
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Size of the finished file in bytes.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Name and byte size of the tensor [`GgufWriter::write_tensor`] expects next, or `None`
    /// when all are written.
    pub fn next_tensor(&self) -> Option<(&str, u64)> {
        self.tensors.get(self.next).map(|t| (t.name.as_str(), t.size))
    }

    /// Writes the bytes of tensor `name`, which must be the next declared tensor and have
    /// exactly the size its dtype and shape give, then the padding to the alignment.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<(), GgufWriteError> {
        let Some(t) = self.tensors.get(self.next) else {
            return Err(GgufWriteError::ExtraTensor {
                offset: self.position,
                found: name.to_owned(),
                declared: self.tensors.len(),
            });
        };
        // Cannot overflow: file_size (which bounds every offset) was computed with checks.
        let start = self.data_offset + t.offset;
        if t.name != name {
            return Err(GgufWriteError::WrongTensor {
                offset: start,
                expected: t.name.clone(),
                found: name.to_owned(),
            });
        }
        if data.len() as u64 != t.size {
            return Err(GgufWriteError::WrongLength {
                name: t.name.clone(),
                offset: start,
                expected: t.size,
                found: data.len() as u64,
            });
        }
        let end = start + t.size;
        let padded_end = align_up(end, self.alignment).unwrap_or(end);
        debug_assert_eq!(self.position, start, "tensor offsets follow one another");
        self.out.write_all(data).map_err(|source| GgufWriteError::Io { offset: start, source })?;
        self.position = end;
        self.pad_to(padded_end)?;
        self.next += 1;
        Ok(())
    }

    /// Checks that every declared tensor was written, flushes, and returns the output.
    pub fn finish(mut self) -> Result<W, GgufWriteError> {
        if let Some(t) = self.tensors.get(self.next) {
            return Err(GgufWriteError::MissingTensors {
                offset: self.position,
                next: t.name.clone(),
                written: self.next,
                declared: self.tensors.len(),
            });
        }
        debug_assert_eq!(self.position, self.file_size);
        self.out.flush().map_err(|source| GgufWriteError::Io { offset: self.position, source })?;
        Ok(self.out)
    }

    /// Writes zeros up to absolute offset `target`.
    fn pad_to(&mut self, target: u64) -> Result<(), GgufWriteError> {
        const ZEROS: [u8; 4096] = [0; 4096];
        while self.position < target {
            let n = (target - self.position).min(ZEROS.len() as u64) as usize;
            self.out
                .write_all(&ZEROS[..n])
                .map_err(|source| GgufWriteError::Io { offset: self.position, source })?;
            self.position += n as u64;
        }
        Ok(())
    }
}

/// `x` rounded up to a multiple of `alignment` (a power of two), or `None` on overflow.
fn align_up(x: u64, alignment: u64) -> Option<u64> {
    x.checked_add(alignment - 1).map(|v| v & !(alignment - 1))
}

fn check_count(what: &'static str, count: usize, max: u64) -> Result<(), GgufWriteError> {
    if count as u64 > max {
        return Err(GgufWriteError::TooMany { what, count: count as u64, max });
    }
    Ok(())
}

/// The alignment `general.alignment` sets, or the default; the reader's rules.
fn alignment(metadata: &[(String, MetaValue)]) -> Result<u64, GgufWriteError> {
    match metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY).map(|(_, v)| v) {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(MetaValue::U32(v)) if v.is_power_of_two() => Ok(u64::from(*v)),
        Some(MetaValue::U32(value)) => Err(GgufWriteError::AlignmentNotPowerOfTwo { value: *value }),
        Some(other) => Err(GgufWriteError::AlignmentWrongType { found: other.type_name() }),
    }
}

/// Validates every declaration and gives each its size and data offset.
fn plan_tensors(tensors: &[GgufTensorDecl], alignment: u64) -> Result<Vec<PlannedTensor>, GgufWriteError> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(tensors.len());
    let mut planned = Vec::with_capacity(tensors.len());
    let mut offset = 0u64;
    for (index, t) in tensors.iter().enumerate() {
        let name = &t.name;
        if name.len() as u64 > limits::MAX_NAME_LEN {
            return Err(GgufWriteError::NameTooLong {
                name: name.clone(),
                index,
                len: name.len() as u64,
                max: limits::MAX_NAME_LEN,
            });
        }
        if let Some(&first_index) = seen.get(name.as_str()) {
            return Err(GgufWriteError::DuplicateTensor { name: name.clone(), index, first_index });
        }
        seen.insert(name, index);
        let size = tensor_size(t)?;
        let overflow = || GgufWriteError::SizeOverflow { name: name.clone(), shape: t.shape.clone() };
        planned.push(PlannedTensor { name: name.clone(), size, offset });
        offset = align_up(size, alignment).and_then(|s| offset.checked_add(s)).ok_or_else(overflow)?;
    }
    Ok(planned)
}

/// The byte size of a declared tensor, after the checks ggml (and smelt's reader) apply.
fn tensor_size(t: &GgufTensorDecl) -> Result<u64, GgufWriteError> {
    let name = || t.name.clone();
    if t.dtype.ggml_id().is_none() {
        return Err(GgufWriteError::NoGgmlType { name: name(), dtype: t.dtype });
    }
    if t.shape.len() > GGML_MAX_DIMS as usize {
        return Err(GgufWriteError::TooManyDims { name: name(), rank: t.shape.len(), max: GGML_MAX_DIMS });
    }
    let overflow = || GgufWriteError::SizeOverflow { name: name(), shape: t.shape.clone() };
    if t.shape.iter().any(|&d| d > i64::MAX as u64) {
        return Err(overflow());
    }
    let row = t.shape.last().copied().unwrap_or(1);
    let block = t.dtype.block_elems();
    if row % block != 0 {
        return Err(GgufWriteError::RowNotBlockMultiple { name: name(), dtype: t.dtype, row, block });
    }
    if t.shape.contains(&0) {
        return Ok(0);
    }
    match smelt_tensor::numel(&t.shape) {
        Some(n) if n <= i64::MAX as u64 => t.dtype.storage_bytes(&t.shape).ok_or_else(overflow),
        _ => Err(overflow()),
    }
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A GGUF string: u64 length, then the UTF-8 bytes.
fn put_string(buf: &mut Vec<u8>, s: &str) {
    put_u64(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

fn encode_metadata(buf: &mut Vec<u8>, metadata: &[(String, MetaValue)]) -> Result<(), GgufWriteError> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(metadata.len());
    for (index, (key, value)) in metadata.iter().enumerate() {
        if key.is_empty() {
            return Err(GgufWriteError::EmptyKey { index });
        }
        if key.len() as u64 > limits::MAX_NAME_LEN {
            return Err(GgufWriteError::KeyTooLong {
                key: key.clone(),
                index,
                len: key.len() as u64,
                max: limits::MAX_NAME_LEN,
            });
        }
        if let Some(&first_index) = seen.get(key.as_str()) {
            return Err(GgufWriteError::DuplicateKey { key: key.clone(), index, first_index });
        }
        seen.insert(key, index);
        put_string(buf, key);
        put_u32(buf, value_type_id(value));
        encode_value(buf, key, value)?;
    }
    Ok(())
}

fn value_type_id(v: &MetaValue) -> u32 {
    use value_type::*;
    match v {
        MetaValue::U8(_) => UINT8,
        MetaValue::I8(_) => INT8,
        MetaValue::U16(_) => UINT16,
        MetaValue::I16(_) => INT16,
        MetaValue::U32(_) => UINT32,
        MetaValue::I32(_) => INT32,
        MetaValue::F32(_) => FLOAT32,
        MetaValue::Bool(_) => BOOL,
        MetaValue::Str(_) => STRING,
        MetaValue::Array(_) => ARRAY,
        MetaValue::U64(_) => UINT64,
        MetaValue::I64(_) => INT64,
        MetaValue::F64(_) => FLOAT64,
    }
}

fn array_elem_type_id(a: &MetaArray) -> u32 {
    use value_type::*;
    match a {
        MetaArray::U8(_) => UINT8,
        MetaArray::I8(_) => INT8,
        MetaArray::U16(_) => UINT16,
        MetaArray::I16(_) => INT16,
        MetaArray::U32(_) => UINT32,
        MetaArray::I32(_) => INT32,
        MetaArray::F32(_) => FLOAT32,
        MetaArray::Bool(_) => BOOL,
        MetaArray::Str(_) => STRING,
        MetaArray::Array(_) => ARRAY,
        MetaArray::U64(_) => UINT64,
        MetaArray::I64(_) => INT64,
        MetaArray::F64(_) => FLOAT64,
    }
}

fn check_string(key: &str, s: &str) -> Result<(), GgufWriteError> {
    if s.len() as u64 > limits::MAX_STRING_LEN {
        return Err(GgufWriteError::StringTooLong {
            key: key.to_owned(),
            len: s.len() as u64,
            max: limits::MAX_STRING_LEN,
        });
    }
    Ok(())
}

/// A value without its type id (which the caller wrote).
fn encode_value(buf: &mut Vec<u8>, key: &str, v: &MetaValue) -> Result<(), GgufWriteError> {
    match v {
        MetaValue::U8(x) => buf.push(*x),
        MetaValue::I8(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => buf.push(u8::from(*x)),
        MetaValue::Str(s) => {
            check_string(key, s)?;
            put_string(buf, s);
        }
        MetaValue::Array(a) => encode_array(buf, key, a, 1)?,
        MetaValue::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
    }
    Ok(())
}

/// An array at nesting `depth` (1 for a top-level value): element type, count, elements. Inner
/// arrays carry no type id of their own (the outer element type says ARRAY), only their element
/// type and count, as gguf-py packs them. Recursion stops at `limits::MAX_NESTING`, the depth
/// the reader accepts.
fn encode_array(buf: &mut Vec<u8>, key: &str, a: &MetaArray, depth: u32) -> Result<(), GgufWriteError> {
    if depth > limits::MAX_NESTING {
        return Err(GgufWriteError::NestingTooDeep { key: key.to_owned(), depth, max: limits::MAX_NESTING });
    }
    put_u32(buf, array_elem_type_id(a));
    put_u64(buf, a.len() as u64);
    macro_rules! le {
        ($v:expr) => {
            for x in $v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        MetaArray::U8(v) => buf.extend_from_slice(v),
        MetaArray::I8(v) => le!(v),
        MetaArray::U16(v) => le!(v),
        MetaArray::I16(v) => le!(v),
        MetaArray::U32(v) => le!(v),
        MetaArray::I32(v) => le!(v),
        MetaArray::F32(v) => le!(v),
        MetaArray::Bool(v) => buf.extend(v.iter().map(|&b| u8::from(b))),
        MetaArray::Str(v) => {
            for s in v {
                check_string(key, s)?;
                put_string(buf, s);
            }
        }
        MetaArray::Array(v) => {
            for inner in v {
                encode_array(buf, key, inner, depth + 1)?;
            }
        }
        MetaArray::U64(v) => le!(v),
        MetaArray::I64(v) => le!(v),
        MetaArray::F64(v) => le!(v),
    }
    Ok(())
}

/// A tensor info: name, n_dims, dims innermost first, ggml type, data offset.
fn encode_tensor_info(buf: &mut Vec<u8>, t: &GgufTensorDecl, offset: u64) -> Result<(), GgufWriteError> {
    let Some(type_id) = t.dtype.ggml_id() else {
        // plan_tensors refused these already.
        return Err(GgufWriteError::NoGgmlType { name: t.name.clone(), dtype: t.dtype });
    };
    put_string(buf, &t.name);
    put_u32(buf, t.shape.len() as u32);
    for &d in t.shape.iter().rev() {
        put_u64(buf, d);
    }
    put_u32(buf, type_id);
    put_u64(buf, offset);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::parse_header;

    fn write(metadata: &[(String, MetaValue)], tensors: &[(GgufTensorDecl, Vec<u8>)]) -> Vec<u8> {
        let decls: Vec<GgufTensorDecl> = tensors.iter().map(|(d, _)| d.clone()).collect();
        let mut w = GgufWriter::new(Vec::new(), metadata, &decls).unwrap();
        for (d, bytes) in tensors {
            w.write_tensor(&d.name, bytes).unwrap();
        }
        let size = w.file_size();
        let out = w.finish().unwrap();
        assert_eq!(out.len() as u64, size, "file_size predicts the output");
        out
    }

    #[test]
    fn empty_file_is_header_padded_to_alignment() {
        let out = write(&[], &[]);
        assert_eq!(out.len(), 32);
        assert_eq!(&out[..4], b"GGUF");
        assert_eq!(&out[4..8], &3u32.to_le_bytes());
        assert!(out[24..].iter().all(|&b| b == 0));
        assert_eq!(parse_header(&out).unwrap().data_offset, 32);
    }

    #[test]
    fn offsets_and_padding_follow_gguf_py() {
        let md = vec![("general.alignment".to_owned(), MetaValue::U32(64))];
        let a = GgufTensorDecl::new("a", DType::F32, vec![3]);
        let e = GgufTensorDecl::new("empty", DType::F16, vec![0, 5]);
        let b = GgufTensorDecl::new("b", DType::Q8_0, vec![2, 32]);
        let out = write(&md, &[(a, vec![1; 12]), (e, vec![]), (b, vec![2; 68])]);
        let h = parse_header(&out).unwrap();
        assert_eq!(h.alignment, 64);
        let offsets: Vec<u64> = h.tensors.iter().map(|t| t.offset).collect();
        // a: 12 bytes padded to 64; the empty tensor takes no room and shares b's offset.
        assert_eq!(offsets, vec![0, 64, 64]);
        assert_eq!(h.tensors[2].dims, vec![32, 2]);
        assert_eq!(out.len() as u64, h.data_offset + 64 + 128, "last tensor padded too");
        let b_start = (h.data_offset + 64) as usize;
        assert_eq!(&out[b_start..b_start + 68], &[2; 68][..]);
        assert!(out[b_start + 68..].iter().all(|&x| x == 0));
    }

    #[test]
    fn alignment_entry_is_checked_like_the_reader() {
        let bad = |v: MetaValue| {
            GgufWriter::new(Vec::new(), &[("general.alignment".to_owned(), v)], &[]).unwrap_err()
        };
        assert!(matches!(bad(MetaValue::U32(0)), GgufWriteError::AlignmentNotPowerOfTwo { value: 0 }));
        assert!(matches!(bad(MetaValue::U32(48)), GgufWriteError::AlignmentNotPowerOfTwo { value: 48 }));
        assert!(matches!(bad(MetaValue::U64(64)), GgufWriteError::AlignmentWrongType { found: "UINT64" }));
    }

    #[test]
    fn huge_alignment_padding_is_streamed_and_sizes_checked() {
        // 2^31 alignment: the empty file is 2 GiB of padding; only compute its size here.
        let md = vec![("general.alignment".to_owned(), MetaValue::U32(1 << 31))];
        let sink = std::io::sink();
        let w = GgufWriter::new(sink, &md, &[]).unwrap();
        assert_eq!(w.file_size(), 1 << 31);
        assert_eq!(w.position(), 1 << 31);
    }

    #[test]
    fn size_overflow_refused_before_writing() {
        let big = GgufTensorDecl::new("big", DType::F32, vec![1 << 32, 1 << 32]);
        let err = GgufWriter::new(Vec::new(), &[], &[big]).unwrap_err();
        assert!(matches!(err, GgufWriteError::SizeOverflow { ref name, .. } if name == "big"));
        let neg = GgufTensorDecl::new("neg", DType::F32, vec![u64::MAX, 0]);
        assert!(matches!(GgufWriter::new(Vec::new(), &[], &[neg]), Err(GgufWriteError::SizeOverflow { .. })));
        // Each fits, the running offset does not.
        let half = GgufTensorDecl::new("h1", DType::F64, vec![1 << 60]);
        let half2 = GgufTensorDecl { name: "h2".into(), ..half.clone() };
        let err = GgufWriter::new(Vec::new(), &[], &[half, half2]).unwrap_err();
        assert!(matches!(err, GgufWriteError::SizeOverflow { ref name, .. } if name == "h2"));
    }

    #[test]
    fn nesting_cap_matches_the_reader() {
        let nest = |levels: u32| {
            let mut a = MetaArray::U8(vec![]);
            for _ in 1..levels {
                a = MetaArray::Array(vec![a]);
            }
            vec![("deep".to_owned(), MetaValue::Array(a))]
        };
        let ok = write(&nest(limits::MAX_NESTING), &[]);
        assert!(parse_header(&ok).is_ok());
        let err = GgufWriter::new(Vec::new(), &nest(limits::MAX_NESTING + 1), &[]).unwrap_err();
        assert!(
            matches!(err, GgufWriteError::NestingTooDeep { depth, .. } if depth == limits::MAX_NESTING + 1)
        );
    }

    #[test]
    fn io_error_carries_the_offset() {
        #[derive(Debug)]
        struct FailAfter(usize);
        impl Write for FailAfter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(std::io::Error::other("disk full"));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let t = GgufTensorDecl::new("t", DType::F32, vec![4]);
        // The header (57 bytes) and its padding fit; the tensor's bytes do not.
        let mut w = GgufWriter::new(FailAfter(64), &[], std::slice::from_ref(&t)).unwrap();
        let err = w.write_tensor("t", &[0; 16]).unwrap_err();
        assert!(matches!(err, GgufWriteError::Io { offset: 64, .. }));
        let err = GgufWriter::new(FailAfter(10), &[], std::slice::from_ref(&t)).unwrap_err();
        assert!(matches!(err, GgufWriteError::Io { offset: 0, .. }));
    }
}
