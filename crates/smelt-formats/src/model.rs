//! The one in-memory model every reader produces, whatever the file format.
//!
//! Tensors are zero-copy: `data` is a [`Bytes`] slice of the input file's mmap (or, for the
//! rare typed ONNX initializer fields, of a buffer the reader had to build). Cloning a
//! [`Tensor`] clones a reference count, not the weights.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use smelt_tensor::DType;

/// The file format a model was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Hugging Face safetensors, one file or a sharded checkpoint.
    Safetensors,
    /// ONNX protobuf, initializers inline or in external data files.
    Onnx,
    /// GGUF (v2 or v3).
    Gguf,
}

impl Format {
    /// Lower-case name used in reports and JSON (`safetensors`, `onnx`, `gguf`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Onnx => "onnx",
            Format::Gguf => "gguf",
        }
    }
}

/// Where a tensor's bytes sit on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Index into [`Model::files`].
    pub file: usize,
    /// Absolute byte offset of the first byte of the tensor's data in that file. For ONNX
    /// initializers stored in typed fields (`float_data`, ...), the offset of the field.
    pub offset: u64,
}

/// One named tensor.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Name as stored in the file.
    pub name: String,
    /// Stored element or block type.
    pub dtype: DType,
    /// Row-major shape, outermost dimension first (GGUF dims are reversed into this order).
    pub shape: Vec<u64>,
    /// The stored bytes, exactly `dtype.storage_bytes(&shape)` long (empty for strings).
    pub data: Bytes,
    /// Where the bytes came from.
    pub location: Location,
}

impl Tensor {
    /// Number of elements (product of the shape; 1 for a scalar).
    pub fn numel(&self) -> u64 {
        // Readers check the product against the file size, so it cannot overflow here.
        smelt_tensor::numel(&self.shape).unwrap_or(u64::MAX)
    }
}

/// A typed metadata value: GGUF's value types, which are a superset of what the other formats
/// store (safetensors `__metadata__` and ONNX `metadata_props` are strings).
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    /// GGUF `UINT8`.
    U8(u8),
    /// GGUF `INT8`.
    I8(i8),
    /// GGUF `UINT16`.
    U16(u16),
    /// GGUF `INT16`.
    I16(i16),
    /// GGUF `UINT32`.
    U32(u32),
    /// GGUF `INT32`.
    I32(i32),
    /// GGUF `FLOAT32`.
    F32(f32),
    /// GGUF `BOOL`.
    Bool(bool),
    /// GGUF `STRING` (UTF-8).
    Str(String),
    /// GGUF `ARRAY`.
    Array(MetaArray),
    /// GGUF `UINT64`.
    U64(u64),
    /// GGUF `INT64`.
    I64(i64),
    /// GGUF `FLOAT64`.
    F64(f64),
}

/// A homogeneous metadata array, stored typed so that a hostile element count costs at most a
/// small multiple of the bytes it occupies in the file, and so that an empty array keeps its
/// element type for a faithful rewrite.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    /// Arrays of arrays; each inner array has its own element type.
    Array(Vec<MetaArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl MetaValue {
    /// The value as JSON: numbers, booleans and strings as themselves, arrays as arrays.
    /// Non-finite floats become strings (`"NaN"`, `"inf"`), which JSON cannot hold.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            MetaValue::U8(v) => J::from(*v),
            MetaValue::I8(v) => J::from(*v),
            MetaValue::U16(v) => J::from(*v),
            MetaValue::I16(v) => J::from(*v),
            MetaValue::U32(v) => J::from(*v),
            MetaValue::I32(v) => J::from(*v),
            MetaValue::U64(v) => J::from(*v),
            MetaValue::I64(v) => J::from(*v),
            MetaValue::F32(v) => float_json(*v as f64),
            MetaValue::F64(v) => float_json(*v),
            MetaValue::Bool(v) => J::from(*v),
            MetaValue::Str(v) => J::from(v.as_str()),
            MetaValue::Array(a) => a.to_json(),
        }
    }

    /// GGUF's name of the value type (`UINT32`, `STRING`, `ARRAY`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "UINT8",
            MetaValue::I8(_) => "INT8",
            MetaValue::U16(_) => "UINT16",
            MetaValue::I16(_) => "INT16",
            MetaValue::U32(_) => "UINT32",
            MetaValue::I32(_) => "INT32",
            MetaValue::F32(_) => "FLOAT32",
            MetaValue::Bool(_) => "BOOL",
            MetaValue::Str(_) => "STRING",
            MetaValue::Array(_) => "ARRAY",
            MetaValue::U64(_) => "UINT64",
            MetaValue::I64(_) => "INT64",
            MetaValue::F64(_) => "FLOAT64",
        }
    }
}

fn float_json(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::Value::from(v)
    } else {
        serde_json::Value::from(format!("{v}"))
    }
}

impl MetaArray {
    /// The array as a JSON array (nested arrays nest).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            MetaArray::U8(v) => J::from(v.clone()),
            MetaArray::I8(v) => J::from(v.clone()),
            MetaArray::U16(v) => J::from(v.clone()),
            MetaArray::I16(v) => J::from(v.clone()),
            MetaArray::U32(v) => J::from(v.clone()),
            MetaArray::I32(v) => J::from(v.clone()),
            MetaArray::U64(v) => J::from(v.clone()),
            MetaArray::I64(v) => J::from(v.clone()),
            MetaArray::F32(v) => J::Array(v.iter().map(|x| float_json(*x as f64)).collect()),
            MetaArray::F64(v) => J::Array(v.iter().map(|x| float_json(*x)).collect()),
            MetaArray::Bool(v) => J::from(v.clone()),
            MetaArray::Str(v) => J::from(v.clone()),
            MetaArray::Array(v) => J::Array(v.iter().map(MetaArray::to_json).collect()),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            MetaArray::U8(v) => v.len(),
            MetaArray::I8(v) => v.len(),
            MetaArray::U16(v) => v.len(),
            MetaArray::I16(v) => v.len(),
            MetaArray::U32(v) => v.len(),
            MetaArray::I32(v) => v.len(),
            MetaArray::F32(v) => v.len(),
            MetaArray::Bool(v) => v.len(),
            MetaArray::Str(v) => v.len(),
            MetaArray::Array(v) => v.len(),
            MetaArray::U64(v) => v.len(),
            MetaArray::I64(v) => v.len(),
            MetaArray::F64(v) => v.len(),
        }
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// GGUF's name of the element type (`UINT8`, `STRING`, `ARRAY`, ...).
    pub fn elem_type_name(&self) -> &'static str {
        match self {
            MetaArray::U8(_) => "UINT8",
            MetaArray::I8(_) => "INT8",
            MetaArray::U16(_) => "UINT16",
            MetaArray::I16(_) => "INT16",
            MetaArray::U32(_) => "UINT32",
            MetaArray::I32(_) => "INT32",
            MetaArray::F32(_) => "FLOAT32",
            MetaArray::Bool(_) => "BOOL",
            MetaArray::Str(_) => "STRING",
            MetaArray::Array(_) => "ARRAY",
            MetaArray::U64(_) => "UINT64",
            MetaArray::I64(_) => "INT64",
            MetaArray::F64(_) => "FLOAT64",
        }
    }
}

/// Architecture facts of a decoder-only LLM, from HF `config.json` or GGUF metadata. Fields a
/// source does not give stay `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArchConfig {
    /// HF `model_type` (`llama`, `mistral`, `qwen2`) or GGUF `general.architecture`.
    pub model_type: String,
    /// HF `architectures[0]` (`LlamaForCausalLM`), when given.
    pub architecture: Option<String>,
    /// Hidden (embedding) size.
    pub hidden_size: Option<u64>,
    /// Number of decoder layers.
    pub num_layers: Option<u64>,
    /// Number of attention heads.
    pub num_heads: Option<u64>,
    /// Number of key/value heads (grouped-query attention); equals `num_heads` when absent.
    pub num_kv_heads: Option<u64>,
    /// Per-head dimension, when given explicitly.
    pub head_dim: Option<u64>,
    /// MLP intermediate size.
    pub intermediate_size: Option<u64>,
    /// Vocabulary size.
    pub vocab_size: Option<u64>,
    /// Maximum context length.
    pub max_position_embeddings: Option<u64>,
    /// RoPE base frequency (`rope_theta`, or `rope_parameters.rope_theta` in newer configs).
    pub rope_theta: Option<f64>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: Option<f64>,
    /// Whether the output head shares the embedding matrix.
    pub tie_word_embeddings: Option<bool>,
    /// Declared weight dtype (`torch_dtype`, or `dtype` in newer configs).
    pub dtype: Option<String>,
}

/// A model: named tensors, an optional graph, optional architecture config, and metadata.
#[derive(Clone, Debug)]
pub struct Model {
    /// Which format it was read from.
    pub format: Format,
    /// Human-readable format version (`GGUF v3`, `ONNX IR 8`, `safetensors`).
    pub version: String,
    /// Every file the model was read from: the main file first, then shards or external data
    /// files. [`Location::file`] indexes this.
    pub files: Vec<PathBuf>,
    /// Tensors in file order (for sharded checkpoints: shard order, then file order).
    pub tensors: Vec<Tensor>,
    /// The computation graph, for ONNX models.
    pub graph: Option<crate::onnx::OnnxGraph>,
    /// Architecture facts, when the model carries them.
    pub config: Option<ArchConfig>,
    /// Metadata in file order: GGUF key/values, safetensors `__metadata__`, ONNX
    /// `metadata_props` and model fields (`producer_name`, ...).
    pub metadata: Vec<(String, MetaValue)>,
    index: HashMap<String, usize>,
}

impl Model {
    /// Assembles a model. Readers reject duplicate tensor names with their own error (which
    /// knows the byte offset) before calling this; a duplicate here is a reader bug.
    pub fn new(format: Format, version: String, files: Vec<PathBuf>, tensors: Vec<Tensor>) -> Model {
        let index: HashMap<String, usize> =
            tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        debug_assert_eq!(index.len(), tensors.len(), "reader let a duplicate tensor name through");
        Model { format, version, files, tensors, graph: None, config: None, metadata: Vec::new(), index }
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The metadata value under `key`.
    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Total number of elements over all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(Tensor::numel).fold(0u64, u64::saturating_add)
    }
}
