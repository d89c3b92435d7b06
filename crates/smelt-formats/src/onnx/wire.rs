//! A pre-scan of the protobuf wire structure of a whole `.onnx` file, driven by a schema table
//! generated from proto/onnx.proto (build.rs), run before prost decodes anything.
//!
//! prost's errors carry no byte offset and prost allocates as it goes, so the scan does what
//! prost would reject first, with offsets: field keys, wire types against onnx.proto, varints,
//! lengths against the bytes left in the enclosing message, packed lengths, UTF-8 of `string`
//! fields and nesting depth (capped below prost's own limit). It also estimates the memory the
//! decoded messages will take, so that a file of millions of empty messages (a few bytes each on
//! disk, hundreds in memory) is refused before prost allocates, and it records where each
//! top-level initializer, node and metadata entry starts, for error messages and
//! [`crate::Location`]s. It walks structure only; `raw_data` bytes are skipped in O(1).

use super::error::OnnxError;
use crate::limits;

/// How a field is encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldKind {
    /// int32/int64/uint32/uint64/sint*/bool/enum (wire type 0).
    Varint,
    /// float/fixed32/sfixed32 (wire type 5).
    Fixed32,
    /// double/fixed64/sfixed64 (wire type 1).
    Fixed64,
    /// `string`: length-delimited UTF-8.
    String,
    /// `bytes`: length-delimited.
    Bytes,
    /// A message, by index into the schema table.
    Message(usize),
}

/// One field of a message, from onnx.proto.
#[derive(Debug)]
pub(crate) struct FieldSchema {
    pub number: u32,
    pub name: &'static str,
    pub kind: FieldKind,
    pub repeated: bool,
}

/// One message of onnx.proto: its fields sorted by number, and the size of prost's struct.
#[derive(Debug)]
pub(crate) struct MessageSchema {
    pub name: &'static str,
    pub decoded_size: usize,
    pub fields: &'static [FieldSchema],
}

mod schema {
    use super::{FieldKind, FieldSchema, MessageSchema};
    include!(concat!(env!("OUT_DIR"), "/onnx_wire_schema.rs"));
}

use schema::MESSAGES;

/// Field numbers of `TensorProto` whose first offset the scan records (all are below this).
const TENSOR_FIELDS: usize = 17;
/// `TensorProto.raw_data`, decoded as a zero-copy `Bytes` slice, so it costs no memory.
const RAW_DATA: u32 = 9;

/// Where one top-level initializer starts and where each of its fields first appears.
#[derive(Clone, Debug)]
pub(crate) struct TensorSpan {
    /// Offset of the initializer entry (its field key in the `GraphProto`).
    pub offset: u64,
    field_offsets: [Option<u64>; TENSOR_FIELDS],
}

impl TensorSpan {
    /// Offset of the first value of `TensorProto` field `number` (for length-delimited fields,
    /// the first payload byte), if the field is present.
    pub fn field_offset(&self, number: u32) -> Option<u64> {
        self.field_offsets.get(number as usize).copied().flatten()
    }
}

/// What the scan learnt about a file that passed it.
#[derive(Debug, Default)]
pub(crate) struct WireScan {
    /// Main-graph initializers, in the order prost will decode them.
    pub initializers: Vec<TensorSpan>,
    /// Offsets of main-graph sparse initializers.
    pub sparse_initializers: Vec<u64>,
    /// Offsets of main-graph nodes, in order.
    pub nodes: Vec<u64>,
    /// Offsets of `ModelProto.metadata_props` entries, in order.
    pub metadata_props: Vec<u64>,
    /// Offsets of `ModelProto.functions` entries, in order.
    pub functions: Vec<u64>,
    /// Offsets of `ModelProto.training_info` entries, in order.
    pub training_info: Vec<u64>,
    /// Estimated bytes the decoded messages occupy (`raw_data` excluded: it is a slice).
    pub decoded_estimate: u64,
}

/// Which part of the model a message is, for what the scan records.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Model,
    MainGraph,
    MainInitializer,
    Other,
}

/// Scans `data`, a whole `.onnx` file, as a `ModelProto`.
pub(crate) fn scan(data: &[u8]) -> Result<WireScan, OnnxError> {
    let mut out = WireScan::default();
    let mut scanner = Scanner { data, out: &mut out, span: None };
    scanner.message(0, data.len(), schema::MODEL_PROTO, Role::Model, 0)?;
    let own = MESSAGES[schema::MODEL_PROTO].decoded_size as u64;
    // Vectors grow by doubling, so what was pushed may occupy up to twice its size.
    out.decoded_estimate = out.decoded_estimate.saturating_add(own).saturating_mul(2);
    Ok(out)
}

impl WireScan {
    /// Refuses a file whose decoded messages would take more than
    /// [`limits::MAX_ONNX_DECODE_EXPANSION`] times its size (plus [`limits::ONNX_DECODE_SLACK`]).
    pub(crate) fn check_decode_size(&self, file_len: u64) -> Result<(), OnnxError> {
        let limit = file_len
            .saturating_mul(limits::MAX_ONNX_DECODE_EXPANSION)
            .saturating_add(limits::ONNX_DECODE_SLACK);
        if self.decoded_estimate > limit {
            return Err(OnnxError::DecodeTooLarge { estimate: self.decoded_estimate, file_len, limit });
        }
        Ok(())
    }
}

/// Decodes a varint at `*pos` that must end before `end`, exactly as prost does: at most 10
/// bytes, the 10th at most 1. Returns `None` when malformed.
pub(crate) fn read_varint(data: &[u8], pos: &mut usize, end: usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let at = pos.checked_add(i)?;
        if at >= end {
            return None;
        }
        let byte = *data.get(at)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return None;
            }
            *pos = at + 1;
            return Some(value);
        }
    }
    None
}

struct Scanner<'a, 'o> {
    data: &'a [u8],
    out: &'o mut WireScan,
    /// The main-graph initializer being scanned, if any.
    span: Option<TensorSpan>,
}

fn field_label(msg: &MessageSchema, number: u32) -> String {
    match msg.fields.binary_search_by_key(&number, |f| f.number) {
        Ok(i) => format!("{}.{}", msg.name, msg.fields[i].name),
        Err(_) => format!("{}.#{number}", msg.name),
    }
}

fn wire_expectation(kind: FieldKind, repeated: bool) -> &'static str {
    match (kind, repeated) {
        (FieldKind::Varint, false) => "0 (varint)",
        (FieldKind::Varint, true) => "0 (varint) or 2 (packed)",
        (FieldKind::Fixed32, false) => "5 (32-bit)",
        (FieldKind::Fixed32, true) => "5 (32-bit) or 2 (packed)",
        (FieldKind::Fixed64, false) => "1 (64-bit)",
        (FieldKind::Fixed64, true) => "1 (64-bit) or 2 (packed)",
        (FieldKind::String | FieldKind::Bytes | FieldKind::Message(_), _) => "2 (length-delimited)",
    }
}

impl Scanner<'_, '_> {
    fn add_estimate(&mut self, bytes: u64) {
        self.out.decoded_estimate = self.out.decoded_estimate.saturating_add(bytes);
    }

    /// Reads the length of a length-delimited value at `*pos` and returns its payload range.
    fn length_delimited(
        &self,
        pos: &mut usize,
        end: usize,
        msg: &MessageSchema,
        number: u32,
    ) -> Result<(usize, usize), OnnxError> {
        let at = *pos;
        let len = read_varint(self.data, pos, end)
            .ok_or_else(|| OnnxError::BadVarint { field: field_label(msg, number), offset: at as u64 })?;
        let available = (end - *pos) as u64;
        if len > available {
            return Err(OnnxError::Truncated {
                field: field_label(msg, number),
                offset: *pos as u64,
                needed: len,
                available,
            });
        }
        let start = *pos;
        // len <= available, which is a usize difference.
        *pos += len as usize;
        Ok((start, *pos))
    }

    fn fixed(
        &self,
        pos: &mut usize,
        end: usize,
        width: usize,
        msg: &MessageSchema,
        number: u32,
    ) -> Result<(), OnnxError> {
        let available = end - *pos;
        if width > available {
            return Err(OnnxError::Truncated {
                field: field_label(msg, number),
                offset: *pos as u64,
                needed: width as u64,
                available: available as u64,
            });
        }
        *pos += width;
        Ok(())
    }

    fn record_tensor_field(&mut self, number: u32, offset: usize) {
        if let Some(span) = &mut self.span {
            if let Some(slot) = span.field_offsets.get_mut(number as usize) {
                slot.get_or_insert(offset as u64);
            }
        }
    }

    fn message(
        &mut self,
        start: usize,
        end: usize,
        index: usize,
        role: Role,
        depth: u32,
    ) -> Result<(), OnnxError> {
        let msg = &MESSAGES[index];
        let mut pos = start;
        while pos < end {
            let key_at = pos;
            let key = read_varint(self.data, &mut pos, end)
                .ok_or_else(|| OnnxError::BadVarint { field: msg.name.to_string(), offset: key_at as u64 })?;
            if key > u64::from(u32::MAX) || key >> 3 == 0 {
                return Err(OnnxError::BadFieldKey { message: msg.name, offset: key_at as u64, key });
            }
            let number = (key >> 3) as u32;
            let wire = (key & 7) as u8;
            let Ok(fi) = msg.fields.binary_search_by_key(&number, |f| f.number) else {
                self.skip_unknown(&mut pos, end, msg, number, wire, key_at)?;
                continue;
            };
            let field = &msg.fields[fi];
            let bad_wire = || OnnxError::BadWireType {
                field: field_label(msg, number),
                offset: key_at as u64,
                expected: wire_expectation(field.kind, field.repeated),
                found: wire,
            };
            match (field.kind, wire) {
                (FieldKind::Varint, 0) => {
                    if role == Role::MainInitializer {
                        self.record_tensor_field(number, pos);
                    }
                    let at = pos;
                    read_varint(self.data, &mut pos, end).ok_or_else(|| OnnxError::BadVarint {
                        field: field_label(msg, number),
                        offset: at as u64,
                    })?;
                    if field.repeated {
                        self.add_estimate(8);
                    }
                }
                (FieldKind::Fixed32, 5) | (FieldKind::Fixed64, 1) => {
                    if role == Role::MainInitializer {
                        self.record_tensor_field(number, pos);
                    }
                    let width = if wire == 5 { 4 } else { 8 };
                    self.fixed(&mut pos, end, width, msg, number)?;
                    if field.repeated {
                        self.add_estimate(8);
                    }
                }
                (FieldKind::Varint | FieldKind::Fixed32 | FieldKind::Fixed64, 2) if field.repeated => {
                    let (a, b) = self.length_delimited(&mut pos, end, msg, number)?;
                    if role == Role::MainInitializer {
                        self.record_tensor_field(number, a);
                    }
                    let count = self.packed(field.kind, a, b, msg, number)?;
                    self.add_estimate(count.saturating_mul(8));
                }
                (FieldKind::String | FieldKind::Bytes, 2) => {
                    let (a, b) = self.length_delimited(&mut pos, end, msg, number)?;
                    if role == Role::MainInitializer {
                        self.record_tensor_field(number, a);
                    }
                    if field.kind == FieldKind::String && std::str::from_utf8(&self.data[a..b]).is_err() {
                        return Err(OnnxError::InvalidUtf8 {
                            field: field_label(msg, number),
                            offset: a as u64,
                        });
                    }
                    let zero_copy = index == schema::TENSOR_PROTO && number == RAW_DATA;
                    if !zero_copy {
                        self.add_estimate(((b - a) as u64).saturating_add(24));
                    }
                }
                (FieldKind::Message(inner), 2) => {
                    let (a, b) = self.length_delimited(&mut pos, end, msg, number)?;
                    if role == Role::MainInitializer {
                        self.record_tensor_field(number, a);
                    }
                    if depth + 1 > limits::MAX_PROTOBUF_DEPTH {
                        return Err(OnnxError::TooDeep {
                            field: field_label(msg, number),
                            offset: key_at as u64,
                            limit: limits::MAX_PROTOBUF_DEPTH,
                        });
                    }
                    self.add_estimate(MESSAGES[inner].decoded_size as u64);
                    let child = self.child_role(role, number, key_at);
                    if child == Role::MainInitializer {
                        self.span =
                            Some(TensorSpan { offset: key_at as u64, field_offsets: [None; TENSOR_FIELDS] });
                    }
                    self.message(a, b, inner, child, depth + 1)?;
                    if child == Role::MainInitializer {
                        if let Some(span) = self.span.take() {
                            self.out.initializers.push(span);
                        }
                    }
                }
                _ => return Err(bad_wire()),
            }
        }
        Ok(())
    }

    /// The role of a nested message, recording the offsets of top-level entries on the way.
    fn child_role(&mut self, role: Role, number: u32, key_at: usize) -> Role {
        let at = key_at as u64;
        match (role, number) {
            (Role::Model, 7) => Role::MainGraph,
            (Role::Model, 14) => {
                self.out.metadata_props.push(at);
                Role::Other
            }
            (Role::Model, 20) => {
                self.out.training_info.push(at);
                Role::Other
            }
            (Role::Model, 25) => {
                self.out.functions.push(at);
                Role::Other
            }
            (Role::MainGraph, 1) => {
                self.out.nodes.push(at);
                Role::Other
            }
            (Role::MainGraph, 5) => Role::MainInitializer,
            (Role::MainGraph, 15) => {
                self.out.sparse_initializers.push(at);
                Role::Other
            }
            _ => Role::Other,
        }
    }

    /// Validates a packed payload `a..b` and returns how many values it holds.
    fn packed(
        &self,
        kind: FieldKind,
        a: usize,
        b: usize,
        msg: &MessageSchema,
        number: u32,
    ) -> Result<u64, OnnxError> {
        let width = match kind {
            FieldKind::Fixed32 => 4,
            FieldKind::Fixed64 => 8,
            _ => {
                let mut pos = a;
                let mut count = 0u64;
                while pos < b {
                    let at = pos;
                    read_varint(self.data, &mut pos, b).ok_or_else(|| OnnxError::BadVarint {
                        field: field_label(msg, number),
                        offset: at as u64,
                    })?;
                    count += 1;
                }
                return Ok(count);
            }
        };
        let len = (b - a) as u64;
        if len % width != 0 {
            return Err(OnnxError::PackedLength {
                field: field_label(msg, number),
                offset: a as u64,
                len,
                width,
            });
        }
        Ok(len / width)
    }

    /// Skips a field onnx.proto does not define (prost drops it), validating its framing.
    fn skip_unknown(
        &self,
        pos: &mut usize,
        end: usize,
        msg: &MessageSchema,
        number: u32,
        wire: u8,
        key_at: usize,
    ) -> Result<(), OnnxError> {
        match wire {
            0 => {
                let at = *pos;
                read_varint(self.data, pos, end).ok_or_else(|| OnnxError::BadVarint {
                    field: field_label(msg, number),
                    offset: at as u64,
                })?;
            }
            1 => self.fixed(pos, end, 8, msg, number)?,
            2 => {
                self.length_delimited(pos, end, msg, number)?;
            }
            5 => self.fixed(pos, end, 4, msg, number)?,
            _ => {
                // Groups (3, 4) are deprecated and onnx.proto has none; 6 and 7 are undefined.
                return Err(OnnxError::BadWireType {
                    field: field_label(msg, number),
                    offset: key_at as u64,
                    expected: "0, 1, 2 or 5 (ONNX uses no groups)",
                    found: wire,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_table_matches_onnx_proto() {
        let t = &MESSAGES[schema::TENSOR_PROTO];
        assert_eq!(t.name, "TensorProto");
        let raw = t.fields.iter().find(|f| f.number == RAW_DATA).unwrap();
        assert_eq!((raw.name, raw.kind, raw.repeated), ("raw_data", FieldKind::Bytes, false));
        let fd = t.fields.iter().find(|f| f.number == 4).unwrap();
        assert_eq!((fd.name, fd.kind, fd.repeated), ("float_data", FieldKind::Fixed32, true));
        let g = &MESSAGES[schema::MODEL_PROTO].fields.iter().find(|f| f.number == 7).unwrap();
        assert_eq!(g.kind, FieldKind::Message(schema::GRAPH_PROTO));
        for m in MESSAGES {
            assert!(m.fields.windows(2).all(|w| w[0].number < w[1].number), "{} fields sorted", m.name);
        }
        assert!(MESSAGES[schema::TENSOR_PROTO].fields.iter().all(|f| (f.number as usize) < TENSOR_FIELDS));
    }

    #[test]
    fn varints_decode_like_prost() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0x96, 0x01], &mut pos, 2), Some(150));
        assert_eq!(pos, 2);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let mut pos = 0;
        assert_eq!(read_varint(&max, &mut pos, 10), Some(u64::MAX));
        let mut too_big = max;
        too_big[9] = 0x02;
        assert_eq!(read_varint(&too_big, &mut 0, 10), None);
        assert_eq!(read_varint(&[0x80, 0x80], &mut 0, 2), None);
        // Must end inside its message.
        assert_eq!(read_varint(&[0x80, 0x01], &mut 0, 1), None);
        assert_eq!(read_varint(&[0xff; 11], &mut 0, 11), None);
    }

    #[test]
    fn empty_file_scans_as_empty_model() {
        let s = scan(&[]).unwrap();
        assert!(s.initializers.is_empty());
    }

    #[test]
    fn wire_errors_carry_offsets() {
        // ModelProto.graph (7, LEN) claiming 5 bytes with 1 left.
        assert!(matches!(
            scan(&[0x3a, 0x05, 0x00]),
            Err(OnnxError::Truncated { offset: 2, needed: 5, available: 1, .. })
        ));
        // ModelProto.ir_version (1) sent as LEN.
        assert!(matches!(scan(&[0x0a, 0x00]), Err(OnnxError::BadWireType { offset: 0, found: 2, .. })));
        // Field number 0.
        assert!(matches!(scan(&[0x08, 0x01, 0x00]), Err(OnnxError::BadFieldKey { offset: 2, .. })));
        // Unknown field as a group.
        assert!(matches!(scan(&[0xfb, 0x07]), Err(OnnxError::BadWireType { found: 3, .. })));
        // producer_name (2) not UTF-8.
        assert!(matches!(scan(&[0x12, 0x01, 0xff]), Err(OnnxError::InvalidUtf8 { offset: 2, .. })));
    }

    #[test]
    fn nesting_is_capped_before_prost_limit() {
        // GraphProto.node > NodeProto.attribute > AttributeProto.g > GraphProto ... built inside out.
        let mut graph: Vec<u8> = Vec::new();
        for _ in 0..40 {
            let attr = wrap(6, &graph); // AttributeProto.g
            let node = wrap(5, &attr); // NodeProto.attribute
            graph = wrap(1, &node); // GraphProto.node
        }
        let model = wrap(7, &graph);
        assert!(matches!(scan(&model), Err(OnnxError::TooDeep { .. })));
    }

    fn wrap(field: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2];
        let mut len = payload.len();
        loop {
            let b = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                v.push(b);
                break;
            }
            v.push(b | 0x80);
        }
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn many_empty_messages_are_refused_before_decoding() {
        // 4 MiB of empty GraphProto.node entries: 2 bytes each on disk, hundreds in memory.
        let mut graph = Vec::new();
        for _ in 0..(2 << 20) {
            graph.extend_from_slice(&[0x0a, 0x00]);
        }
        let model = wrap(7, &graph);
        let s = scan(&model).unwrap();
        assert_eq!(s.nodes.len(), 2 << 20);
        assert!(matches!(s.check_decode_size(model.len() as u64), Err(OnnxError::DecodeTooLarge { .. })));
    }
}
