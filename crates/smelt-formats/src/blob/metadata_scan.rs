//! A walk over the protobuf wire structure of a blob's metadata before prost decodes it.
//!
//! prost's errors carry no byte offset and prost allocates as it decodes, so this walk does what
//! would make prost fail or allocate far beyond the section's size, with offsets: field keys,
//! wire types against proto/smelt_blob.proto, varints, lengths against the enclosing message,
//! UTF-8 of strings, `Value`/`Array` nesting (capped at `limits::MAX_NESTING`), and an estimate
//! of the decoded size (an empty `Value` is 2 bytes on the wire and tens in memory). The schema
//! below mirrors the .proto file; `tests::schema_matches_prost` keeps the two in step.

use super::error::BlobError;
use super::metadata::proto;
use crate::limits;

/// Decoded metadata may take at most this multiple of its encoded size (plus the slack). The
/// densest thing smelt writes is an array item of 4 bytes (`Value { u64: 5 }`), about 36 times
/// that in memory (a 72-byte `Value`, twice over for the `Vec`'s growth); an empty `KeyValue`
/// (2 bytes encoded, 96 in memory) is about 96 times.
pub(crate) const MAX_DECODE_EXPANSION: u64 = 64;
/// Memory any metadata may use decoded, whatever its size.
pub(crate) const DECODE_SLACK: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Varint,
    Fixed64,
    Str,
    /// Length-delimited bytes (no UTF-8 check).
    Bytes,
    /// A packed repeated varint field.
    PackedVarint,
    Msg(Message),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Message {
    BlobMetadata,
    ArchConfig,
    InputHash,
    KeyValue,
    Value,
    Array,
    OnnxGraph,
    GraphInitializer,
}

impl Message {
    /// `(field number, kind, repeated)` of each field, as in proto/smelt_blob.proto.
    fn fields(self) -> &'static [(u32, Kind, bool)] {
        use Kind::*;
        match self {
            Message::BlobMetadata => &[
                (1, Str, false),
                (2, Str, false),
                (3, Str, false),
                (4, Msg(Message::ArchConfig), false),
                (5, Str, false),
                (6, Msg(Message::InputHash), true),
                (7, Msg(Message::KeyValue), true),
                (8, Msg(Message::OnnxGraph), false),
            ],
            Message::OnnxGraph => &[(1, Bytes, false), (2, Msg(Message::GraphInitializer), true)],
            Message::GraphInitializer => {
                &[(1, Str, false), (2, Str, false), (3, Varint, false), (4, PackedVarint, true)]
            }
            Message::ArchConfig => &[
                (1, Str, false),
                (2, Str, false),
                (3, Varint, false),
                (4, Varint, false),
                (5, Varint, false),
                (6, Varint, false),
                (7, Varint, false),
                (8, Varint, false),
                (9, Varint, false),
                (10, Varint, false),
                (11, Fixed64, false),
                (12, Fixed64, false),
                (13, Varint, false),
                (14, Str, false),
            ],
            Message::InputHash => &[(1, Str, false), (2, Str, false), (3, Varint, false)],
            Message::KeyValue => &[(1, Str, false), (2, Msg(Message::Value), false)],
            Message::Value => &[
                (1, Varint, false),
                (2, Varint, false),
                (3, Fixed64, false),
                (4, Varint, false),
                (5, Str, false),
                (6, Msg(Message::Array), false),
                (7, Str, false),
            ],
            Message::Array => &[(1, Str, false), (2, Msg(Message::Value), true)],
        }
    }

    /// Size of prost's struct for this message.
    fn decoded_size(self) -> u64 {
        let size = match self {
            Message::BlobMetadata => std::mem::size_of::<proto::BlobMetadata>(),
            Message::ArchConfig => std::mem::size_of::<proto::ArchConfig>(),
            Message::InputHash => std::mem::size_of::<proto::InputHash>(),
            Message::KeyValue => std::mem::size_of::<proto::KeyValue>(),
            Message::Value => std::mem::size_of::<proto::Value>(),
            Message::Array => std::mem::size_of::<proto::Array>(),
            Message::OnnxGraph => std::mem::size_of::<proto::OnnxGraph>(),
            Message::GraphInitializer => std::mem::size_of::<proto::GraphInitializer>(),
        };
        size as u64
    }
}

struct Scan<'a> {
    data: &'a [u8],
    /// Absolute offset of `data[0]` in the file.
    base: u64,
    estimate: u64,
}

impl Scan<'_> {
    fn malformed(&self, at: usize, reason: impl Into<String>) -> BlobError {
        BlobError::MetadataMalformed { offset: self.base + at as u64, reason: reason.into() }
    }

    fn varint(&self, pos: &mut usize, end: usize) -> Result<u64, BlobError> {
        let start = *pos;
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.data.get(*pos).filter(|_| *pos < end) else {
                return Err(self.malformed(start, "varint runs past the end of its message"));
            };
            *pos += 1;
            if shift == 63 && b > 1 {
                return Err(self.malformed(start, "varint overflows 64 bits"));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed(start, "varint longer than 10 bytes"))
    }

    fn skip(&self, pos: &mut usize, end: usize, n: u64, key_at: usize) -> Result<(), BlobError> {
        let left = (end - *pos) as u64;
        if n > left {
            return Err(self.malformed(key_at, format!("field needs {n} bytes, {left} left in its message")));
        }
        *pos += n as usize;
        Ok(())
    }

    /// Walks one message occupying `data[start..end]`; `depth` counts enclosing `Array`s.
    fn message(&mut self, msg: Message, start: usize, end: usize, depth: u32) -> Result<(), BlobError> {
        let mut pos = start;
        while pos < end {
            let key_at = pos;
            let key = self.varint(&mut pos, end)?;
            let number = key >> 3;
            let wire = key & 7;
            if number == 0 || number > u64::from(u32::MAX >> 3) {
                return Err(self.malformed(key_at, format!("invalid field number {number}")));
            }
            let field = msg.fields().iter().find(|(n, _, _)| u64::from(*n) == number);
            let Some(&(_, kind, repeated)) = field else {
                // An unknown field (a later schema's): skip it as prost does.
                match wire {
                    0 => {
                        self.varint(&mut pos, end)?;
                    }
                    1 => self.skip(&mut pos, end, 8, key_at)?,
                    2 => {
                        let len = self.varint(&mut pos, end)?;
                        self.skip(&mut pos, end, len, key_at)?;
                    }
                    5 => self.skip(&mut pos, end, 4, key_at)?,
                    _ => {
                        return Err(
                            self.malformed(key_at, format!("field {number}: unsupported wire type {wire}"))
                        )
                    }
                }
                continue;
            };
            let expected_wire = match kind {
                Kind::Varint => 0,
                Kind::Fixed64 => 1,
                Kind::Str | Kind::Bytes | Kind::PackedVarint | Kind::Msg(_) => 2,
            };
            // prost also accepts a repeated scalar written unpacked, one varint per key.
            if kind == Kind::PackedVarint && wire == 0 {
                self.varint(&mut pos, end)?;
                self.estimate = self.estimate.saturating_add(8);
                continue;
            }
            if wire != expected_wire {
                return Err(self.malformed(
                    key_at,
                    format!("{msg:?} field {number}: wire type {wire}, expected {expected_wire}"),
                ));
            }
            match kind {
                Kind::Varint => {
                    self.varint(&mut pos, end)?;
                }
                Kind::Fixed64 => self.skip(&mut pos, end, 8, key_at)?,
                Kind::Str => {
                    let len = self.varint(&mut pos, end)?;
                    let at = pos;
                    self.skip(&mut pos, end, len, key_at)?;
                    if let Err(e) = std::str::from_utf8(&self.data[at..pos]) {
                        return Err(self.malformed(at + e.valid_up_to(), "string is not valid UTF-8"));
                    }
                    self.estimate = self.estimate.saturating_add(len);
                }
                Kind::Bytes => {
                    let len = self.varint(&mut pos, end)?;
                    self.skip(&mut pos, end, len, key_at)?;
                    // Decoded from the mapped file, bytes are a slice of it; from a plain
                    // buffer, a copy.
                    self.estimate = self.estimate.saturating_add(len);
                }
                Kind::PackedVarint => {
                    let len = self.varint(&mut pos, end)?;
                    let at = pos;
                    self.skip(&mut pos, end, len, key_at)?;
                    let mut p = at;
                    while p < pos {
                        self.varint(&mut p, pos)?;
                        // Each value a u64, twice over for the Vec's growth.
                        self.estimate = self.estimate.saturating_add(16);
                    }
                }
                Kind::Msg(inner) => {
                    let len = self.varint(&mut pos, end)?;
                    let at = pos;
                    self.skip(&mut pos, end, len, key_at)?;
                    let inner_depth = if inner == Message::Array { depth + 1 } else { depth };
                    if inner_depth > limits::MAX_NESTING {
                        return Err(BlobError::MetadataTooDeep {
                            offset: self.base + key_at as u64,
                            depth: inner_depth,
                            max: limits::MAX_NESTING,
                        });
                    }
                    // A repeated field's Vec may hold up to twice its length in capacity.
                    let size = inner.decoded_size() * if repeated { 2 } else { 1 };
                    self.estimate = self.estimate.saturating_add(size);
                    self.message(inner, at, pos, inner_depth)?;
                }
            }
        }
        Ok(())
    }
}

/// Walks `data` (the metadata section, starting at absolute offset `base`) and refuses what prost
/// would refuse, too-deep arrays and messages that would decode far larger than `data`.
pub(crate) fn scan_metadata(data: &[u8], base: u64) -> Result<(), BlobError> {
    let mut scan = Scan { data, base, estimate: Message::BlobMetadata.decoded_size() };
    scan.message(Message::BlobMetadata, 0, data.len(), 0)?;
    let size = data.len() as u64;
    let max = size.saturating_mul(MAX_DECODE_EXPANSION).saturating_add(DECODE_SLACK);
    if scan.estimate > max {
        return Err(BlobError::MetadataTooLarge { offset: base, size, estimate: scan.estimate, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn full() -> proto::BlobMetadata {
        let leaf = |s: &str| proto::Value {
            kind: Some(proto::value::Kind::S(s.into())),
            type_name: "STRING".into(),
        };
        proto::BlobMetadata {
            producer: "smelt".into(),
            producer_version: "0.1.0".into(),
            source_format: "gguf".into(),
            arch: Some(proto::ArchConfig {
                model_type: "llama".into(),
                architecture: "LlamaForCausalLM".into(),
                hidden_size: Some(64),
                num_layers: Some(2),
                num_heads: Some(4),
                num_kv_heads: Some(2),
                head_dim: Some(16),
                intermediate_size: Some(128),
                vocab_size: Some(32000),
                max_position_embeddings: Some(2048),
                rope_theta: Some(10000.0),
                rms_norm_eps: Some(1e-5),
                tie_word_embeddings: Some(true),
                dtype: "float16".into(),
            }),
            recipe: "[default]\nscheme = \"int8\"\n".into(),
            inputs: vec![proto::InputHash {
                path: "model.safetensors".into(),
                blake3: "ab".repeat(32),
                size: 12345,
            }],
            metadata: vec![
                proto::KeyValue {
                    key: "general.name".into(),
                    value: Some(proto::Value {
                        kind: Some(proto::value::Kind::I64(-5)),
                        type_name: "INT32".into(),
                    }),
                },
                proto::KeyValue {
                    key: "tokenizer.ggml.tokens".into(),
                    value: Some(proto::Value {
                        kind: Some(proto::value::Kind::Array(proto::Array {
                            elem_type_name: "STRING".into(),
                            items: vec![leaf("a"), leaf("b")],
                        })),
                        type_name: "ARRAY".into(),
                    }),
                },
                proto::KeyValue {
                    key: "f".into(),
                    value: Some(proto::Value {
                        kind: Some(proto::value::Kind::F64(0.5)),
                        type_name: "FLOAT64".into(),
                    }),
                },
                proto::KeyValue {
                    key: "b".into(),
                    value: Some(proto::Value {
                        kind: Some(proto::value::Kind::B(true)),
                        type_name: "BOOL".into(),
                    }),
                },
                proto::KeyValue {
                    key: "u".into(),
                    value: Some(proto::Value {
                        kind: Some(proto::value::Kind::U64(7)),
                        type_name: "UINT64".into(),
                    }),
                },
            ],
            onnx_graph: Some(proto::OnnxGraph {
                model: bytes::Bytes::from_static(b"\x08\x07\x3a\x00"),
                initializers: vec![proto::GraphInitializer {
                    name: "w".into(),
                    tensor: "w".into(),
                    data_type: 1,
                    dims: vec![3, 300],
                }],
            }),
        }
    }

    /// Every field of every message, set: the scan must accept what prost writes, so the
    /// schema table above agrees with the generated types on numbers and wire types.
    #[test]
    fn schema_matches_prost() {
        let bytes = full().encode_to_vec();
        scan_metadata(&bytes, 0).unwrap();
        assert_eq!(proto::BlobMetadata::decode(&bytes[..]).unwrap(), full());
    }

    #[test]
    fn wrong_wire_type_and_truncation_have_offsets() {
        // Field 1 (producer, a string) written as a varint.
        let e = scan_metadata(&[0x08, 0x01], 100).unwrap_err();
        assert!(matches!(e, BlobError::MetadataMalformed { offset: 100, .. }), "{e}");
        // A string of length 5 with 1 byte left.
        let e = scan_metadata(&[0x0a, 0x05, b'a'], 100).unwrap_err();
        assert!(matches!(e, BlobError::MetadataMalformed { offset: 100, .. }), "{e}");
        let e = scan_metadata(&[0x0a, 0x02, 0xff, 0xfe], 0).unwrap_err();
        assert!(matches!(e, BlobError::MetadataMalformed { offset: 2, .. }), "{e}");
        // GraphInitializer.dims (packed) whose last varint runs past its field.
        let init = [0x22u8, 0x02, 0x03, 0x80];
        let graph = [vec![0x12, init.len() as u8], init.to_vec()].concat();
        let meta = [vec![0x42, graph.len() as u8], graph].concat();
        let e = scan_metadata(&meta, 10).unwrap_err();
        assert!(matches!(e, BlobError::MetadataMalformed { offset: 17, .. }), "{e}");
        // OnnxGraph.model longer than its message.
        let e = scan_metadata(&[0x42, 0x03, 0x0a, 0x05, 0x00], 0).unwrap_err();
        assert!(matches!(e, BlobError::MetadataMalformed { offset: 2, .. }), "{e}");
        // Unknown fields are skipped.
        scan_metadata(&[0xf8, 0x01, 0x05, 0x8a, 0x02, 0x01, 0x00], 0).unwrap();
    }

    #[test]
    fn nesting_and_expansion_are_capped() {
        // KeyValue{ value: Value{ array: Array{ items: [Value{ array: ... }] } } }, 5 arrays deep.
        let mut value: Vec<u8> = Vec::new();
        for _ in 0..5 {
            let array = [vec![0x12, value.len() as u8], value].concat(); // Array.items
            value = [vec![0x32, array.len() as u8], array].concat(); // Value.array
        }
        let kv = [vec![0x12, value.len() as u8], value].concat(); // KeyValue.value
        let meta = [vec![0x3a, kv.len() as u8], kv].concat(); // BlobMetadata.metadata
        let e = scan_metadata(&meta, 0).unwrap_err();
        assert!(matches!(e, BlobError::MetadataTooDeep { depth: 5, .. }), "{e}");

        // One array of 2^20 empty Values: 2 MiB on disk, far more decoded.
        let items = [0x12u8, 0x00].repeat(1 << 20);
        let mut array = vec![0x32];
        push_varint(&mut array, items.len() as u64);
        array.extend_from_slice(&items);
        let mut kv = vec![0x12];
        push_varint(&mut kv, array.len() as u64);
        kv.extend_from_slice(&array);
        let mut meta = vec![0x3a];
        push_varint(&mut meta, kv.len() as u64);
        meta.extend_from_slice(&kv);
        let e = scan_metadata(&meta, 0).unwrap_err();
        assert!(matches!(e, BlobError::MetadataTooLarge { .. }), "{e}");
    }

    fn push_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
}
