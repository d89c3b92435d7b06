//! The GGUF architecture metadata `convert_hf_to_gguf.py` writes for a Llama-family HF
//! checkpoint, from the same `config.json` values, with the same keys, GGUF types and order.
//!
//! The converter writes (`ModelBase.prepare_metadata`, `TextModel.set_gguf_parameters`,
//! `LlamaModel.set_gguf_parameters`): `general.architecture`, `general.type`, `general.name`,
//! then `{arch}.block_count`, `context_length`, `embedding_length`, `feed_forward_length`,
//! `attention.head_count`, `attention.head_count_kv`, `rope.freq_base`,
//! `attention.layer_norm_rms_epsilon`, `attention.key_length` / `value_length` (when
//! `head_dim` is given), `general.file_type`, and for the `llama` architecture only
//! `{arch}.vocab_size` and `rope.dimension_count`; then `general.quantization_version`. The
//! tokenizer keys ([`crate::gguf::tokenizer_to_gguf_metadata`]) follow. Integers are UINT32,
//! floats FLOAT32, as gguf-py's `add_*` methods type them.
//!
//! Not carried over: the model-card keys the converter derives from a README (`general.basename`,
//! `size_label`, licences, ...) and RoPE scaling (`rope_scaling` / `rope_parameters.rope_type`
//! other than `default`, which [`crate::ArchConfig`] does not hold).

use smelt_tensor::DType;

use crate::gguf::hf_error::HfToGgufError;
use crate::gguf::hf_names::HfArch;
use crate::{ArchConfig, MetaValue};

/// ggml's `GGML_QNT_VERSION`, which the converter records as `general.quantization_version`.
pub const GGML_QUANT_VERSION: u32 = 2;

/// llama.cpp's `llama_ftype` for a model whose large tensors are mostly `dtype`, as
/// `general.file_type` records it (`LlamaFileType` in gguf-py's `constants.py`), or `None` for a
/// type llama.cpp has no file type for.
///
/// Where llama-quantize has several mixes for one k-quant type (`Q4_K_S`, `Q4_K_M`), this gives
/// the `_M` one, its default.
pub fn llama_file_type(dtype: DType) -> Option<u32> {
    Some(match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::Q4_0 => 2,
        DType::Q4_1 => 3,
        DType::Q8_0 => 7,
        DType::Q5_0 => 8,
        DType::Q5_1 => 9,
        DType::Q2_K => 10,
        DType::Q3_K => 12,
        DType::Q4_K => 15,
        DType::Q5_K => 17,
        DType::Q6_K => 18,
        DType::IQ2_XXS => 19,
        DType::IQ2_XS => 20,
        DType::IQ3_XXS => 23,
        DType::IQ1_S => 24,
        DType::IQ4_NL => 25,
        DType::IQ3_S => 26,
        DType::IQ2_S => 28,
        DType::IQ4_XS => 30,
        DType::IQ1_M => 31,
        DType::BF16 => 32,
        DType::TQ1_0 => 36,
        DType::TQ2_0 => 37,
        DType::MXFP4 => 38,
        _ => return None,
    })
}

/// The architecture metadata for an HF Llama-family `config` (see the module docs for the keys,
/// types and order). `name` becomes `general.name` (the converter uses the model card's name,
/// else the checkpoint directory's name); `file_type` is `general.file_type` (see
/// [`llama_file_type`]).
///
/// `num_hidden_layers`, `hidden_size`, `num_attention_heads` and `intermediate_size` must be
/// present (llama.cpp cannot load a model without them); for the `llama` architecture
/// `vocab_size` too, as in the converter. Other keys are written when the config has them.
pub fn hf_config_to_gguf_metadata(
    config: &ArchConfig,
    name: &str,
    file_type: u32,
) -> Result<Vec<(String, MetaValue)>, HfToGgufError> {
    let arch = HfArch::from_model_type(&config.model_type)
        .ok_or_else(|| HfToGgufError::UnsupportedArchitecture { model_type: config.model_type.clone() })?;
    let a = arch.gguf_arch();
    let required = |v: Option<u64>, key: &'static str| v.ok_or(HfToGgufError::MissingConfigKey { key });
    let block_count = u32_value(required(config.num_layers, "num_hidden_layers")?, "num_hidden_layers")?;
    let hidden = required(config.hidden_size, "hidden_size")?;
    let n_head = required(config.num_heads, "num_attention_heads")?;
    let n_ff = required(config.intermediate_size, "intermediate_size")?;

    let mut md: Vec<(String, MetaValue)> = Vec::new();
    let mut put = |key: String, value: MetaValue| md.push((key, value));
    put("general.architecture".into(), MetaValue::Str(a.into()));
    put("general.type".into(), MetaValue::Str("model".into()));
    put("general.name".into(), MetaValue::Str(name.into()));
    put(format!("{a}.block_count"), MetaValue::U32(block_count));
    if let Some(n_ctx) = config.max_position_embeddings {
        put(format!("{a}.context_length"), MetaValue::U32(u32_value(n_ctx, "max_position_embeddings")?));
    }
    put(format!("{a}.embedding_length"), MetaValue::U32(u32_value(hidden, "hidden_size")?));
    put(format!("{a}.feed_forward_length"), MetaValue::U32(u32_value(n_ff, "intermediate_size")?));
    put(format!("{a}.attention.head_count"), MetaValue::U32(u32_value(n_head, "num_attention_heads")?));
    if let Some(n_kv) = config.num_kv_heads {
        put(format!("{a}.attention.head_count_kv"), MetaValue::U32(u32_value(n_kv, "num_key_value_heads")?));
    }
    if let Some(theta) = config.rope_theta {
        put(format!("{a}.rope.freq_base"), MetaValue::F32(theta as f32));
    }
    if let Some(eps) = config.rms_norm_eps {
        put(format!("{a}.attention.layer_norm_rms_epsilon"), MetaValue::F32(eps as f32));
    }
    if let Some(head_dim) = config.head_dim {
        let head_dim = u32_value(head_dim, "head_dim")?;
        put(format!("{a}.attention.key_length"), MetaValue::U32(head_dim));
        put(format!("{a}.attention.value_length"), MetaValue::U32(head_dim));
    }
    put("general.file_type".into(), MetaValue::U32(file_type));
    if arch.gguf_arch() == "llama" {
        let vocab = required(config.vocab_size, "vocab_size")?;
        put(format!("{a}.vocab_size"), MetaValue::U32(u32_value(vocab, "vocab_size")?));
        let rope_dim = match config.head_dim {
            Some(d) => d,
            // n_head > 0 is not guaranteed by the config; 0 heads gives no rope dimension.
            None => hidden
                .checked_div(n_head)
                .ok_or(HfToGgufError::MissingConfigKey { key: "num_attention_heads" })?,
        };
        put(format!("{a}.rope.dimension_count"), MetaValue::U32(u32_value(rope_dim, "head_dim")?));
    }
    put("general.quantization_version".into(), MetaValue::U32(GGML_QUANT_VERSION));
    Ok(md)
}

fn u32_value(v: u64, key: &'static str) -> Result<u32, HfToGgufError> {
    u32::try_from(v).map_err(|_| HfToGgufError::ConfigValueTooLarge { key, value: v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama() -> ArchConfig {
        ArchConfig {
            model_type: "llama".into(),
            hidden_size: Some(64),
            num_layers: Some(2),
            num_heads: Some(4),
            num_kv_heads: Some(2),
            intermediate_size: Some(128),
            vocab_size: Some(256),
            max_position_embeddings: Some(128),
            rope_theta: Some(10000.0),
            rms_norm_eps: Some(1e-6),
            ..ArchConfig::default()
        }
    }

    #[test]
    fn llama_keys_in_converter_order() {
        let md = hf_config_to_gguf_metadata(&llama(), "tiny", 1).unwrap();
        let keys: Vec<&str> = md.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "general.architecture",
                "general.type",
                "general.name",
                "llama.block_count",
                "llama.context_length",
                "llama.embedding_length",
                "llama.feed_forward_length",
                "llama.attention.head_count",
                "llama.attention.head_count_kv",
                "llama.rope.freq_base",
                "llama.attention.layer_norm_rms_epsilon",
                "general.file_type",
                "llama.vocab_size",
                "llama.rope.dimension_count",
                "general.quantization_version",
            ]
        );
        let get = |k: &str| md.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("llama.rope.dimension_count"), MetaValue::U32(16));
        assert_eq!(get("llama.attention.layer_norm_rms_epsilon"), MetaValue::F32(1e-6));
    }

    #[test]
    fn qwen2_has_no_vocab_size_or_rope_dim_and_head_dim_gives_key_length() {
        let cfg = ArchConfig { model_type: "qwen2".into(), head_dim: Some(16), vocab_size: None, ..llama() };
        let md = hf_config_to_gguf_metadata(&cfg, "q", 0).unwrap();
        assert_eq!(md[0].1, MetaValue::Str("qwen2".into()));
        assert!(md.iter().all(|(k, _)| k != "qwen2.vocab_size" && k != "qwen2.rope.dimension_count"));
        assert!(md.iter().any(|(k, v)| k == "qwen2.attention.key_length" && *v == MetaValue::U32(16)));
    }

    #[test]
    fn missing_unsupported_and_too_large_refused() {
        let err = |cfg: ArchConfig| hf_config_to_gguf_metadata(&cfg, "x", 0).unwrap_err();
        assert!(matches!(
            err(ArchConfig { model_type: "gpt2".into(), ..llama() }),
            HfToGgufError::UnsupportedArchitecture { .. }
        ));
        assert!(matches!(
            err(ArchConfig { hidden_size: None, ..llama() }),
            HfToGgufError::MissingConfigKey { key: "hidden_size" }
        ));
        assert!(matches!(
            err(ArchConfig { vocab_size: None, ..llama() }),
            HfToGgufError::MissingConfigKey { key: "vocab_size" }
        ));
        assert!(matches!(
            err(ArchConfig { max_position_embeddings: Some(1 << 40), ..llama() }),
            HfToGgufError::ConfigValueTooLarge { key: "max_position_embeddings", .. }
        ));
    }
}
