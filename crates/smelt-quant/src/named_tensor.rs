//! A named tensor as a quantizer hands it to a checkpoint writer: the key, the dtype and shape
//! the file must record, and the little-endian bytes. Quantized layouts that other tools load
//! (bitsandbytes' NF4 state dict, the GPTQ `qweight`/`qzeros`/`scales`/`g_idx` set) are
//! described this way so the safetensors writer emits exactly what those tools expect without
//! knowing any scheme.

use smelt_tensor::DType;

/// One tensor of a serialized quantized layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedTensor {
    /// Full key, e.g. `model.layers.0.mlp.down_proj.weight.absmax`.
    pub name: String,
    /// Element type as the file records it.
    pub dtype: DType,
    /// Row-major shape as the file records it.
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub bytes: Vec<u8>,
}

impl NamedTensor {
    /// A tensor of f32 values.
    pub fn f32(name: String, shape: Vec<usize>, values: &[f32]) -> NamedTensor {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        NamedTensor { name, dtype: DType::F32, shape, bytes }
    }

    /// A tensor of i32 values.
    pub fn i32(name: String, shape: Vec<usize>, values: &[i32]) -> NamedTensor {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        NamedTensor { name, dtype: DType::I32, shape, bytes }
    }

    /// A tensor of u8 values.
    pub fn u8(name: String, shape: Vec<usize>, values: &[u8]) -> NamedTensor {
        NamedTensor { name, dtype: DType::U8, shape, bytes: values.to_vec() }
    }
}
