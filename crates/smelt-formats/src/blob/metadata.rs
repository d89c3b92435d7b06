//! The blob's metadata section: a prost-encoded `smelt.blob.v1.BlobMetadata`
//! (proto/smelt_blob.proto), decoded only when someone asks for it (a device may skip it), and
//! conversions between its key/values and smelt's [`MetaValue`]s so that a model's metadata
//! (tokenizer included) and architecture survive a trip through a blob.

use prost::Message as _;

use super::error::BlobError;
use super::metadata_scan::scan_metadata;
use crate::{limits, ArchConfig, MetaArray, MetaValue};

/// The metadata messages, generated at build time by prost-build from proto/smelt_blob.proto.
#[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/smelt.blob.v1.rs"));
}

pub use proto::BlobMetadata;

/// Encodes `meta` as the metadata section's bytes (prost writes fields in number order and
/// skips defaults, so equal messages give equal bytes).
pub fn encode_metadata(meta: &BlobMetadata) -> Vec<u8> {
    meta.encode_to_vec()
}

/// Decodes a metadata section whose bytes start at absolute `offset`, after checking its wire
/// structure, nesting and decoded size. `OnnxGraph.model` comes out as a slice of `bytes`.
pub(crate) fn decode_metadata(bytes: &bytes::Bytes, offset: u64) -> Result<BlobMetadata, BlobError> {
    scan_metadata(bytes, offset)?;
    BlobMetadata::decode(bytes.clone())
        .map_err(|e| BlobError::MetadataMalformed { offset, reason: e.to_string() })
}

/// A metadata entry as a `KeyValue`, keeping GGUF's type name so the exact type comes back.
pub fn key_value(key: &str, value: &MetaValue) -> proto::KeyValue {
    proto::KeyValue { key: key.to_owned(), value: Some(to_proto(value)) }
}

/// A `KeyValue` back as a metadata entry; `None` when its value is inconsistent with its type
/// name (out of range, wrong kind, mixed array) or nested deeper than `limits::MAX_NESTING`.
pub fn meta_entry(kv: &proto::KeyValue) -> Option<(String, MetaValue)> {
    let value = from_proto(kv.value.as_ref()?)?;
    Some((kv.key.clone(), value))
}

fn value(kind: proto::value::Kind, type_name: &str) -> proto::Value {
    proto::Value { kind: Some(kind), type_name: type_name.to_owned() }
}

fn to_proto(v: &MetaValue) -> proto::Value {
    use proto::value::Kind as K;
    let kind = match v {
        MetaValue::U8(x) => K::U64(u64::from(*x)),
        MetaValue::U16(x) => K::U64(u64::from(*x)),
        MetaValue::U32(x) => K::U64(u64::from(*x)),
        MetaValue::U64(x) => K::U64(*x),
        MetaValue::I8(x) => K::I64(i64::from(*x)),
        MetaValue::I16(x) => K::I64(i64::from(*x)),
        MetaValue::I32(x) => K::I64(i64::from(*x)),
        MetaValue::I64(x) => K::I64(*x),
        MetaValue::F32(x) => K::F64(f64::from(*x)),
        MetaValue::F64(x) => K::F64(*x),
        MetaValue::Bool(x) => K::B(*x),
        MetaValue::Str(x) => K::S(x.clone()),
        MetaValue::Array(a) => K::Array(array_to_proto(a)),
    };
    value(kind, v.type_name())
}

/// Items of an array carry no type name of their own: `elem_type_name` says it once.
fn array_to_proto(a: &MetaArray) -> proto::Array {
    use proto::value::Kind as K;
    fn items<T: Copy>(v: &[T], f: impl Fn(T) -> K) -> Vec<proto::Value> {
        v.iter().map(|x| proto::Value { kind: Some(f(*x)), type_name: String::new() }).collect()
    }
    let items = match a {
        MetaArray::U8(v) => items(v, |x| K::U64(u64::from(x))),
        MetaArray::U16(v) => items(v, |x| K::U64(u64::from(x))),
        MetaArray::U32(v) => items(v, |x| K::U64(u64::from(x))),
        MetaArray::U64(v) => items(v, K::U64),
        MetaArray::I8(v) => items(v, |x| K::I64(i64::from(x))),
        MetaArray::I16(v) => items(v, |x| K::I64(i64::from(x))),
        MetaArray::I32(v) => items(v, |x| K::I64(i64::from(x))),
        MetaArray::I64(v) => items(v, K::I64),
        MetaArray::F32(v) => items(v, |x| K::F64(f64::from(x))),
        MetaArray::F64(v) => items(v, K::F64),
        MetaArray::Bool(v) => items(v, K::B),
        MetaArray::Str(v) => {
            v.iter().map(|s| proto::Value { kind: Some(K::S(s.clone())), type_name: String::new() }).collect()
        }
        MetaArray::Array(v) => v
            .iter()
            .map(|inner| proto::Value {
                kind: Some(K::Array(array_to_proto(inner))),
                type_name: String::new(),
            })
            .collect(),
    };
    proto::Array { elem_type_name: a.elem_type_name().to_owned(), items }
}

fn from_proto(v: &proto::Value) -> Option<MetaValue> {
    use proto::value::Kind as K;
    let kind = v.kind.as_ref()?;
    Some(match (v.type_name.as_str(), kind) {
        ("UINT8", K::U64(x)) => MetaValue::U8(u8::try_from(*x).ok()?),
        ("UINT16", K::U64(x)) => MetaValue::U16(u16::try_from(*x).ok()?),
        ("UINT32", K::U64(x)) => MetaValue::U32(u32::try_from(*x).ok()?),
        ("UINT64", K::U64(x)) => MetaValue::U64(*x),
        ("INT8", K::I64(x)) => MetaValue::I8(i8::try_from(*x).ok()?),
        ("INT16", K::I64(x)) => MetaValue::I16(i16::try_from(*x).ok()?),
        ("INT32", K::I64(x)) => MetaValue::I32(i32::try_from(*x).ok()?),
        ("INT64", K::I64(x)) => MetaValue::I64(*x),
        ("FLOAT32", K::F64(x)) => MetaValue::F32(exact_f32(*x)?),
        ("FLOAT64", K::F64(x)) => MetaValue::F64(*x),
        ("BOOL", K::B(x)) => MetaValue::Bool(*x),
        ("STRING", K::S(x)) => MetaValue::Str(x.clone()),
        ("ARRAY", K::Array(a)) => MetaValue::Array(array_from_proto(a, 1)?),
        _ => return None,
    })
}

/// `x` as an f32 when it holds one exactly (NaN included).
fn exact_f32(x: f64) -> Option<f32> {
    let f = x as f32;
    (f64::from(f) == x || x.is_nan()).then_some(f)
}

fn array_from_proto(a: &proto::Array, depth: u32) -> Option<MetaArray> {
    use proto::value::Kind as K;
    if depth > limits::MAX_NESTING {
        return None;
    }
    fn each<T>(items: &[proto::Value], f: impl Fn(&K) -> Option<T>) -> Option<Vec<T>> {
        items.iter().map(|v| v.kind.as_ref().and_then(&f)).collect()
    }
    let items = &a.items;
    Some(match a.elem_type_name.as_str() {
        "UINT8" => MetaArray::U8(each(items, |k| match k {
            K::U64(x) => u8::try_from(*x).ok(),
            _ => None,
        })?),
        "UINT16" => MetaArray::U16(each(items, |k| match k {
            K::U64(x) => u16::try_from(*x).ok(),
            _ => None,
        })?),
        "UINT32" => MetaArray::U32(each(items, |k| match k {
            K::U64(x) => u32::try_from(*x).ok(),
            _ => None,
        })?),
        "UINT64" => MetaArray::U64(each(items, |k| match k {
            K::U64(x) => Some(*x),
            _ => None,
        })?),
        "INT8" => MetaArray::I8(each(items, |k| match k {
            K::I64(x) => i8::try_from(*x).ok(),
            _ => None,
        })?),
        "INT16" => MetaArray::I16(each(items, |k| match k {
            K::I64(x) => i16::try_from(*x).ok(),
            _ => None,
        })?),
        "INT32" => MetaArray::I32(each(items, |k| match k {
            K::I64(x) => i32::try_from(*x).ok(),
            _ => None,
        })?),
        "INT64" => MetaArray::I64(each(items, |k| match k {
            K::I64(x) => Some(*x),
            _ => None,
        })?),
        "FLOAT32" => MetaArray::F32(each(items, |k| match k {
            K::F64(x) => exact_f32(*x),
            _ => None,
        })?),
        "FLOAT64" => MetaArray::F64(each(items, |k| match k {
            K::F64(x) => Some(*x),
            _ => None,
        })?),
        "BOOL" => MetaArray::Bool(each(items, |k| match k {
            K::B(x) => Some(*x),
            _ => None,
        })?),
        "STRING" => MetaArray::Str(each(items, |k| match k {
            K::S(x) => Some(x.clone()),
            _ => None,
        })?),
        "ARRAY" => MetaArray::Array(each(items, |k| match k {
            K::Array(inner) => array_from_proto(inner, depth + 1),
            _ => None,
        })?),
        _ => return None,
    })
}

impl From<&ArchConfig> for proto::ArchConfig {
    fn from(c: &ArchConfig) -> proto::ArchConfig {
        proto::ArchConfig {
            model_type: c.model_type.clone(),
            architecture: c.architecture.clone().unwrap_or_default(),
            hidden_size: c.hidden_size,
            num_layers: c.num_layers,
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            intermediate_size: c.intermediate_size,
            vocab_size: c.vocab_size,
            max_position_embeddings: c.max_position_embeddings,
            rope_theta: c.rope_theta,
            rms_norm_eps: c.rms_norm_eps,
            tie_word_embeddings: c.tie_word_embeddings,
            dtype: c.dtype.clone().unwrap_or_default(),
        }
    }
}

impl From<&proto::ArchConfig> for ArchConfig {
    fn from(c: &proto::ArchConfig) -> ArchConfig {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        ArchConfig {
            model_type: c.model_type.clone(),
            architecture: non_empty(&c.architecture),
            hidden_size: c.hidden_size,
            num_layers: c.num_layers,
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            intermediate_size: c.intermediate_size,
            vocab_size: c.vocab_size,
            max_position_embeddings: c.max_position_embeddings,
            rope_theta: c.rope_theta,
            rms_norm_eps: c.rms_norm_eps,
            tie_word_embeddings: c.tie_word_embeddings,
            dtype: non_empty(&c.dtype),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_meta_value_type_round_trips() {
        let values = vec![
            MetaValue::U8(255),
            MetaValue::I8(-128),
            MetaValue::U16(65535),
            MetaValue::I16(-3),
            MetaValue::U32(u32::MAX),
            MetaValue::I32(i32::MIN),
            MetaValue::U64(u64::MAX),
            MetaValue::I64(i64::MIN),
            MetaValue::F32(0.1),
            MetaValue::F64(0.1),
            MetaValue::Bool(true),
            MetaValue::Str("héllo".into()),
            MetaValue::Array(MetaArray::Str(vec!["a".into(), String::new()])),
            MetaValue::Array(MetaArray::I32(vec![1, -2])),
            MetaValue::Array(MetaArray::F32(vec![])),
            MetaValue::Array(MetaArray::Bool(vec![false, true])),
            MetaValue::Array(MetaArray::Array(vec![MetaArray::U8(vec![1]), MetaArray::F64(vec![2.5])])),
        ];
        for v in values {
            let kv = key_value("k", &v);
            let bytes = prost::Message::encode_to_vec(&kv);
            let back = <proto::KeyValue as prost::Message>::decode(&bytes[..]).unwrap();
            assert_eq!(meta_entry(&back), Some(("k".to_owned(), v.clone())), "{v:?}");
        }
    }

    #[test]
    fn inconsistent_values_are_refused() {
        use proto::value::Kind as K;
        let kv = |kind, t: &str| proto::KeyValue { key: "k".into(), value: Some(value(kind, t)) };
        assert_eq!(meta_entry(&kv(K::U64(256), "UINT8")), None);
        assert_eq!(meta_entry(&kv(K::S("x".into()), "INT32")), None);
        assert_eq!(meta_entry(&kv(K::F64(0.1), "FLOAT32")), None);
        let mixed = proto::Array {
            elem_type_name: "UINT8".into(),
            items: vec![value(K::U64(1), ""), value(K::S("x".into()), "")],
        };
        assert_eq!(meta_entry(&kv(K::Array(mixed), "ARRAY")), None);
    }

    #[test]
    fn arch_config_round_trips() {
        let c = ArchConfig {
            model_type: "llama".into(),
            architecture: Some("LlamaForCausalLM".into()),
            hidden_size: Some(64),
            rope_theta: Some(10000.0),
            tie_word_embeddings: Some(false),
            dtype: Some("bfloat16".into()),
            ..ArchConfig::default()
        };
        assert_eq!(ArchConfig::from(&proto::ArchConfig::from(&c)), c);
    }
}
