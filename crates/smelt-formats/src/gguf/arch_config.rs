//! The architecture facts llama.cpp keeps in GGUF metadata (`{arch}.block_count`, ...), as an
//! [`ArchConfig`].
//!
//! Policy for odd values: a key that is absent, or present with a type that cannot hold the
//! fact (a string where a count belongs, a negative count, an array where llama.cpp allows
//! per-layer values), leaves that field `None`. The entry is still in the model's metadata,
//! untouched; only its interpretation is skipped. The file is not refused: these keys matter
//! to a runner, which checks the fields it needs, not to reading tensors.
//!
//! Counts accept any integer type (llama.cpp writes UINT32), floats accept FLOAT32 and
//! FLOAT64. A FLOAT32 is widened through its shortest decimal form, so that an epsilon written
//! as `1e-5` reads as `1e-5` and not as `9.99999974e-6`, matching the value in an HF config.

use crate::{ArchConfig, MetaArray, MetaValue};

/// Builds the config from metadata entries; `None` when `general.architecture` is absent or
/// not a string. `has_tensor` says whether the model has a tensor of that name (used to tell
/// whether the output head is tied to the embedding, as llama.cpp decides it: no
/// `output.weight` means the embedding is reused).
pub fn arch_config(meta: &[(String, MetaValue)], has_tensor: &dyn Fn(&str) -> bool) -> Option<ArchConfig> {
    let get = |key: &str| meta.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let Some(MetaValue::Str(arch)) = get("general.architecture") else {
        return None;
    };
    let count = |suffix: &str| get(&format!("{arch}.{suffix}")).and_then(as_count);
    let float = |suffix: &str| get(&format!("{arch}.{suffix}")).and_then(as_float);
    let vocab_size = count("vocab_size").or_else(|| match get("tokenizer.ggml.tokens") {
        Some(MetaValue::Array(MetaArray::Str(tokens))) => Some(tokens.len() as u64),
        _ => None,
    });
    let tie_word_embeddings = has_tensor("token_embd.weight").then(|| !has_tensor("output.weight"));
    Some(ArchConfig {
        model_type: arch.clone(),
        architecture: None,
        hidden_size: count("embedding_length"),
        num_layers: count("block_count"),
        num_heads: count("attention.head_count"),
        num_kv_heads: count("attention.head_count_kv"),
        head_dim: count("attention.key_length"),
        intermediate_size: count("feed_forward_length"),
        vocab_size,
        max_position_embeddings: count("context_length"),
        rope_theta: float("rope.freq_base"),
        rms_norm_eps: float("attention.layer_norm_rms_epsilon"),
        tie_word_embeddings,
        dtype: None,
    })
}

fn as_count(v: &MetaValue) -> Option<u64> {
    match *v {
        MetaValue::U8(x) => Some(x.into()),
        MetaValue::U16(x) => Some(x.into()),
        MetaValue::U32(x) => Some(x.into()),
        MetaValue::U64(x) => Some(x),
        MetaValue::I8(x) => u64::try_from(x).ok(),
        MetaValue::I16(x) => u64::try_from(x).ok(),
        MetaValue::I32(x) => u64::try_from(x).ok(),
        MetaValue::I64(x) => u64::try_from(x).ok(),
        _ => None,
    }
}

fn as_float(v: &MetaValue) -> Option<f64> {
    match *v {
        // Rust prints the shortest decimal that round-trips to the same f32.
        MetaValue::F32(x) => format!("{x}").parse().ok(),
        MetaValue::F64(x) => Some(x),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(entries: &[(&str, MetaValue)]) -> Vec<(String, MetaValue)> {
        entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn llama_keys_and_fallbacks() {
        let m = meta(&[
            ("general.architecture", MetaValue::Str("llama".into())),
            ("llama.block_count", MetaValue::U32(2)),
            ("llama.attention.head_count_kv", MetaValue::I32(-1)),
            ("llama.embedding_length", MetaValue::Str("64".into())),
            ("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(1e-5)),
            ("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::Str(vec!["a".into(), "b".into()]))),
        ]);
        let c = arch_config(&m, &|n| n == "token_embd.weight").unwrap();
        assert_eq!(c.model_type, "llama");
        assert_eq!(c.num_layers, Some(2));
        assert_eq!(c.num_kv_heads, None, "negative count ignored");
        assert_eq!(c.hidden_size, None, "string count ignored");
        assert_eq!(c.rms_norm_eps, Some(1e-5));
        assert_eq!(c.vocab_size, Some(2));
        assert_eq!(c.tie_word_embeddings, Some(true));
        assert_eq!(c.rope_theta, None);
    }

    #[test]
    fn no_architecture_no_config() {
        assert!(arch_config(&meta(&[("general.architecture", MetaValue::U32(1))]), &|_| false).is_none());
        assert!(arch_config(&[], &|_| false).is_none());
    }
}
