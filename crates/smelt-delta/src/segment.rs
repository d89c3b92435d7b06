//! Splits a model file into pieces the encoder codes one by one: each tensor's stored bytes
//! (found by smelt-formats' hardened readers), and the bytes between them (headers, metadata,
//! padding). Small gaps after a tensor (alignment padding, an ONNX initializer's next field
//! tags) ride with that tensor, so that an unchanged tensor stays one copy; larger gaps are
//! pieces of their own. A file no reader accepts is one byte-level region.

use std::path::Path;

use bytes::Bytes;
use smelt_formats::Model;

use crate::format::EntryKind;

/// Gaps after a tensor up to this many bytes join that tensor's piece.
const ABSORB_GAP: u64 = 4096;

/// The format a file was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A safetensors file.
    Safetensors,
    /// A GGUF file.
    Gguf,
    /// An ONNX model file (inline initializers; external data files are not followed).
    Onnx,
    /// A smelt blob.
    Blob,
    /// Anything else, or a model file a reader refused: coded at byte level.
    Bytes,
}

/// One contiguous piece of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Tensor name, or `[bytes A..B]`.
    pub name: String,
    /// Tensor or byte-level piece.
    pub kind: EntryKind,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Byte-grouping width suggested by the dtype (element or ggml block size; 1 for bytes).
    pub width: u8,
}

impl Piece {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// True when the piece is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// A file cut into pieces that cover it exactly, in order.
#[derive(Clone, Debug)]
pub struct Layout {
    /// What the file was read as.
    pub kind: FileKind,
    /// The pieces, covering `0..len` with no gap or overlap.
    pub pieces: Vec<Piece>,
}

struct Span {
    name: String,
    start: u64,
    end: u64,
    width: u8,
}

fn width_of(dtype: smelt_tensor::DType) -> u8 {
    let b = dtype.block_bytes();
    if (1..=255).contains(&b) {
        b as u8
    } else {
        1
    }
}

/// Tensor spans of a model whose tensors are slices of `bytes` (file 0, zero-copy).
fn model_spans(model: &Model, bytes: &Bytes) -> Vec<Span> {
    let base = bytes.as_ptr() as usize;
    model
        .tensors
        .iter()
        .filter(|t| t.location.file == 0 && !t.data.is_empty())
        .filter(|t| {
            // Typed ONNX fields are decoded into new buffers: only raw bytes of this file count.
            let off = t.location.offset as usize;
            (t.data.as_ptr() as usize).checked_sub(base) == Some(off)
                && off.checked_add(t.data.len()).is_some_and(|e| e <= bytes.len())
        })
        .map(|t| Span {
            name: t.name.clone(),
            start: t.location.offset,
            end: t.location.offset + t.data.len() as u64,
            width: width_of(t.dtype),
        })
        .collect()
}

fn blob_spans(bytes: &Bytes, hint: &Path) -> Option<Vec<Span>> {
    let blob = smelt_formats::blob::parse(bytes.clone(), hint).ok()?;
    let mut spans = Vec::new();
    for e in blob.entries() {
        for (kind, s) in e.sections() {
            if s.is_empty() {
                continue;
            }
            let is_data = matches!(kind, smelt_formats::blob::SectionKind::Data);
            let name = if is_data { e.name.clone() } else { format!("{}:{kind:?}", e.name).to_lowercase() };
            let width =
                if is_data && e.codec != smelt_formats::blob::Codec::None { 1 } else { width_of(s.dtype) };
            spans.push(Span { name, start: s.offset, end: s.offset + s.len(), width });
        }
    }
    Some(spans)
}

fn recognise(bytes: &Bytes, hint: &Path) -> Option<(FileKind, Vec<Span>)> {
    let b = &bytes[..];
    if b.starts_with(b"GGUF") {
        let m = smelt_formats::gguf::parse(bytes.clone(), hint).ok()?;
        return Some((FileKind::Gguf, model_spans(&m, bytes)));
    }
    if b.starts_with(&smelt_formats::blob::layout::MAGIC) {
        return Some((FileKind::Blob, blob_spans(bytes, hint)?));
    }
    if b.len() >= 9 && b[8] == b'{' {
        let m = smelt_formats::safetensors::parse(bytes.clone(), hint).ok()?;
        return Some((FileKind::Safetensors, model_spans(&m, bytes)));
    }
    let is_onnx = hint.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    if is_onnx {
        let m = smelt_formats::onnx::parse(bytes.clone(), hint).ok()?;
        return Some((FileKind::Onnx, model_spans(&m, bytes)));
    }
    None
}

fn bytes_piece(start: u64, end: u64) -> Piece {
    Piece { name: format!("[bytes {start}..{end}]"), kind: EntryKind::Bytes, start, end, width: 1 }
}

/// Cuts `bytes` into pieces. `hint` names the file for the readers (and its extension tells
/// ONNX apart, which has no magic).
pub fn layout(bytes: &Bytes, hint: &Path) -> Layout {
    let len = bytes.len() as u64;
    let Some((kind, mut spans)) = recognise(bytes, hint) else {
        let pieces = if len == 0 { Vec::new() } else { vec![bytes_piece(0, len)] };
        return Layout { kind: FileKind::Bytes, pieces };
    };
    spans.sort_by_key(|s| (s.start, s.end));
    let mut pieces: Vec<Piece> = Vec::new();
    let mut cursor = 0u64;
    for s in spans {
        if s.start < cursor || s.end > len {
            continue; // overlapping or out of range: leave those bytes to the byte-level pieces
        }
        if s.start > cursor {
            push_gap(&mut pieces, cursor, s.start);
        }
        pieces.push(Piece {
            name: s.name,
            kind: EntryKind::Tensor,
            start: s.start,
            end: s.end,
            width: s.width,
        });
        cursor = s.end;
    }
    if cursor < len {
        push_gap(&mut pieces, cursor, len);
    }
    Layout { kind, pieces }
}

fn push_gap(pieces: &mut Vec<Piece>, start: u64, end: u64) {
    if let Some(last) = pieces.last_mut() {
        if last.kind == EntryKind::Tensor && last.end == start && end - start <= ABSORB_GAP {
            last.end = end;
            return;
        }
    }
    pieces.push(bytes_piece(start, end));
}
