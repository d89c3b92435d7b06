//! Hugging Face Llama-family checkpoints (Llama, Mistral, Qwen2) as llama.cpp names and lays
//! out their tensors: the tensor-name map and the Q/K row permutation of
//! `convert_hf_to_gguf.py`, so a GGUF smelt writes loads in llama.cpp like one the converter
//! wrote.
//!
//! Sources: llama.cpp's `gguf-py/gguf/tensor_mapping.py` and `constants.py` (the names) and
//! `convert_hf_to_gguf.py`'s `LlamaModel` (`permute`, applied to `q_proj` / `k_proj` weights
//! and biases for the `llama` architecture, which Mistral shares; Qwen2 uses NeoX-style RoPE
//! and is not permuted).

use smelt_tensor::DType;

/// A Hugging Face Llama-family architecture smelt maps to GGUF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HfArch {
    /// `model_type: "llama"` (`LlamaForCausalLM`).
    Llama,
    /// `model_type: "mistral"` (`MistralForCausalLM`), which llama.cpp converts as `llama`.
    Mistral,
    /// `model_type: "qwen2"` (`Qwen2ForCausalLM`): q/k/v biases, NeoX RoPE.
    Qwen2,
}

impl HfArch {
    /// The architecture for an HF `config.json` `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<HfArch> {
        match model_type {
            "llama" => Some(HfArch::Llama),
            "mistral" => Some(HfArch::Mistral),
            "qwen2" => Some(HfArch::Qwen2),
            _ => None,
        }
    }

    /// The GGUF `general.architecture` llama.cpp uses for it (`llama` or `qwen2`); also the
    /// prefix of its architecture keys.
    pub fn gguf_arch(self) -> &'static str {
        match self {
            HfArch::Llama | HfArch::Mistral => "llama",
            HfArch::Qwen2 => "qwen2",
        }
    }

    /// Whether `convert_hf_to_gguf.py` permutes the rows of the Q and K projections (weights
    /// and biases) with [`permute_qk`]: true for the `llama` architecture, whose GGUF RoPE
    /// rotates adjacent pairs where HF rotates the two halves of each head.
    pub fn permutes_qk(self) -> bool {
        matches!(self, HfArch::Llama | HfArch::Mistral)
    }
}

/// The GGUF name llama.cpp gives an HF tensor of a Llama-family checkpoint, or `None` for a
/// tensor the converter does not carry over (`rotary_emb.inv_freq`, which it drops) or does not
/// know.
///
/// `model.embed_tokens` → `token_embd`, `model.norm` → `output_norm`, `lm_head` → `output`, and
/// per layer N `model.layers.N.` + `input_layernorm` → `blk.N.attn_norm`, `self_attn.{q,k,v}_proj`
/// → `blk.N.attn_{q,k,v}`, `self_attn.o_proj` → `blk.N.attn_output`, `post_attention_layernorm`
/// → `blk.N.ffn_norm`, `mlp.{gate,up,down}_proj` → `blk.N.ffn_{gate,up,down}`; each with its
/// `.weight` or `.bias` suffix kept. The layer index is not checked against the model's layer
/// count.
pub fn hf_tensor_name_to_gguf(name: &str, arch: HfArch) -> Option<String> {
    // The same table serves the three architectures (tensor_mapping.py gives them the same
    // names); `arch` stays in the signature for architectures that will differ.
    let _ = arch;
    let (base, suffix) = split_suffix(name)?;
    let global = match base {
        "model.embed_tokens" => Some("token_embd"),
        "model.norm" => Some("output_norm"),
        "lm_head" => Some("output"),
        _ => None,
    };
    if let Some(g) = global {
        return Some(format!("{g}{suffix}"));
    }
    let rest = base.strip_prefix("model.layers.")?;
    let (layer, part) = rest.split_once('.')?;
    if layer.is_empty()
        || !layer.bytes().all(|b| b.is_ascii_digit())
        || (layer.len() > 1 && layer.starts_with('0'))
    {
        return None;
    }
    let gguf_part = match part {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{gguf_part}{suffix}"))
}

fn split_suffix(name: &str) -> Option<(&str, &'static str)> {
    if let Some(base) = name.strip_suffix(".weight") {
        return Some((base, ".weight"));
    }
    name.strip_suffix(".bias").map(|base| (base, ".bias"))
}

/// Why [`permute_qk`] cannot permute a tensor.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PermuteError {
    /// The data's length is not what the dtype and shape give.
    #[error("{len} bytes of data, but {dtype} {shape:?} needs {expected:?}")]
    WrongLength {
        /// Bytes given.
        len: usize,
        /// The dtype.
        dtype: DType,
        /// The shape.
        shape: Vec<u64>,
        /// Bytes the shape needs (`None` when it overflows or has no whole rows).
        expected: Option<u64>,
    },
    /// The tensor has no rows to move (a 0-d tensor) or zero heads were asked for.
    #[error("shape {shape:?} with {n_heads} heads: nothing to permute")]
    NoHeads {
        /// The shape.
        shape: Vec<u64>,
        /// The head count.
        n_heads: u64,
    },
    /// The row count is not `n_heads` times an even head dimension.
    #[error("{rows} rows do not split into {n_heads} heads of an even size")]
    RowsNotHeadPairs {
        /// Rows (the outermost dimension).
        rows: u64,
        /// The head count.
        n_heads: u64,
    },
}

/// The Q/K permutation of `convert_hf_to_gguf.py`'s `LlamaModel.permute`:
///
/// ```text
/// w.reshape(n_heads, 2, rows // n_heads // 2, *rest).swapaxes(1, 2).reshape(w.shape)
/// ```
///
/// on row-major `data` of `dtype` and `shape` (outermost first). Rows (everything after the
/// first dimension) move whole, so it works for any element size and for 1-D biases. For a head
/// of `d` rows, output row `2i + j` is input row `j·d/2 + i` (`j` in {0, 1}): the halves HF's
/// RoPE rotates become the interleaved pairs ggml's rotates.
///
/// `n_heads` is the head count of the projection: `num_attention_heads` for `q_proj`,
/// `num_key_value_heads` for `k_proj` (the converter's `permute(w, n_head, n_head_kv)` uses
/// the KV count whenever it differs).
pub fn permute_qk(data: &[u8], dtype: DType, shape: &[u64], n_heads: u64) -> Result<Vec<u8>, PermuteError> {
    let Some((&rows, _)) = shape.split_first() else {
        return Err(PermuteError::NoHeads { shape: shape.to_vec(), n_heads });
    };
    if n_heads == 0 {
        return Err(PermuteError::NoHeads { shape: shape.to_vec(), n_heads });
    }
    let expected = dtype.storage_bytes(shape).filter(|&n| rows == 0 || n % rows == 0);
    if expected != Some(data.len() as u64) {
        return Err(PermuteError::WrongLength { len: data.len(), dtype, shape: shape.to_vec(), expected });
    }
    let head_rows = rows / n_heads;
    if rows % n_heads != 0 || head_rows % 2 != 0 {
        return Err(PermuteError::RowsNotHeadPairs { rows, n_heads });
    }
    if rows == 0 {
        return Ok(Vec::new());
    }
    // rows > 0 and data.len() == rows * row_bytes, so both fit in usize.
    let row_bytes = data.len() / rows as usize;
    let head_rows = head_rows as usize;
    let half = head_rows / 2;
    let mut out = Vec::with_capacity(data.len());
    for head in data.chunks_exact(head_rows * row_bytes) {
        for i in 0..half {
            for j in 0..2 {
                let src = (j * half + i) * row_bytes;
                out.extend_from_slice(&head[src..src + row_bytes]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_like_tensor_mapping() {
        let m = |n: &str| hf_tensor_name_to_gguf(n, HfArch::Llama);
        assert_eq!(m("model.embed_tokens.weight").as_deref(), Some("token_embd.weight"));
        assert_eq!(m("model.norm.weight").as_deref(), Some("output_norm.weight"));
        assert_eq!(m("lm_head.weight").as_deref(), Some("output.weight"));
        assert_eq!(m("model.layers.12.self_attn.q_proj.bias").as_deref(), Some("blk.12.attn_q.bias"));
        assert_eq!(m("model.layers.0.mlp.down_proj.weight").as_deref(), Some("blk.0.ffn_down.weight"));
        assert_eq!(
            m("model.layers.0.post_attention_layernorm.weight").as_deref(),
            Some("blk.0.ffn_norm.weight")
        );
        for unknown in [
            "model.layers.0.self_attn.rotary_emb.inv_freq",
            "model.layers.x.mlp.up_proj.weight",
            "model.layers..mlp.up_proj.weight",
            "model.layers.01.mlp.up_proj.weight",
            "model.layers.0.mlp.up_proj",
            "model.layers.0.self_attn.q_norm.weight",
            "model.embed_tokens.scale",
        ] {
            assert_eq!(m(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn permute_interleaves_head_halves() {
        // 2 heads of 4 rows, one u8 per row: head rows [a0 a1 b0 b1] -> [a0 b0 a1 b1].
        let data: Vec<u8> = (0..8).collect();
        let out = permute_qk(&data, DType::U8, &[8], 2).unwrap();
        assert_eq!(out, vec![0, 2, 1, 3, 4, 6, 5, 7]);
        // Rows of 3 f16 values move whole.
        let data: Vec<u8> = (0..24).collect();
        let out = permute_qk(&data, DType::F16, &[4, 3], 1).unwrap();
        let row = |r: usize| data[r * 6..r * 6 + 6].to_vec();
        assert_eq!(out, [row(0), row(2), row(1), row(3)].concat());
    }

    #[test]
    fn permute_refuses_bad_shapes() {
        assert!(matches!(
            permute_qk(&[0; 6], DType::U8, &[6], 4),
            Err(PermuteError::RowsNotHeadPairs { .. })
        ));
        assert!(matches!(
            permute_qk(&[0; 6], DType::U8, &[6], 2),
            Err(PermuteError::RowsNotHeadPairs { .. })
        ));
        assert!(matches!(permute_qk(&[0; 7], DType::U8, &[8], 2), Err(PermuteError::WrongLength { .. })));
        assert!(matches!(permute_qk(&[0; 4], DType::F32, &[], 1), Err(PermuteError::NoHeads { .. })));
        assert!(matches!(permute_qk(&[0; 4], DType::U8, &[4], 0), Err(PermuteError::NoHeads { .. })));
        assert_eq!(permute_qk(&[], DType::F32, &[0, 5], 2), Ok(vec![]));
    }
}
