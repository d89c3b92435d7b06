//! The `tokenizer.*` GGUF metadata `convert_hf_to_gguf.py` writes for an HF checkpoint whose
//! tokenizer is a BPE `tokenizer.json`, so llama.cpp gets the vocabulary with the weights.
//!
//! The converter's `LlamaModel.set_vocab` tries, in order, a SentencePiece `tokenizer.model`,
//! gguf-py's `LlamaHfVocab` (a BPE `tokenizer.json` with `byte_fallback` and a `Sequence`
//! decoder: Llama 2 style), then `_set_vocab_gpt2` (any other BPE, e.g. byte-level). smelt reads
//! only `tokenizer.json`, and follows the last two:
//!
//! - Llama-2-style BPE: `tokenizer.ggml.model` = `llama`, `pre` = `default`, tokens in id order,
//!   scores all -1000 (as `LlamaHfVocab` gives them), token types BYTE for `<0xXX>`, CONTROL for
//!   special added tokens, USER_DEFINED for other added tokens, NORMAL otherwise; no merges.
//! - Other BPE: `tokenizer.ggml.model` = `gpt2`, tokens for ids `0..vocab_size` (`vocab_size`
//!   from `config.json`, holes filled with `[PAD{id}]` typed UNUSED), CONTROL for special added
//!   tokens (or ones that look special, `<|...|>`), USER_DEFINED for other added tokens (with
//!   `▁` turned into spaces), NORMAL otherwise, and the merges. `tokenizer.ggml.pre` is
//!   `default`: the converter names the pre-tokenizer by hashing what the `tokenizers` library
//!   makes of a test string, which smelt cannot run.
//!
//! Then gguf-py's `SpecialVocab` ([`crate::gguf::hf_special_vocab`]): merges, special token
//! ids, `add_bos_token` / `add_eos_token` / `add_sep_token`, chat template. For `llama` and
//! `mistral` checkpoints, `tokenizer_config.json`'s `add_prefix_space` becomes
//! `tokenizer.ggml.add_space_prefix` first, as in `LlamaModel.set_vocab`.
//!
//! Not handled: `Unigram`, `WordPiece` and `WordLevel` models, and a SentencePiece
//! `tokenizer.model` without `tokenizer.json`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::gguf::hf_error::HfToGgufError;
use crate::gguf::hf_json::JsonFile;
use crate::gguf::hf_special_vocab::{load_special_vocab, SpecialVocabSources};
use crate::{MetaArray, MetaValue};

/// The largest vocabulary smelt writes (real ones stay under 300k); a `config.json` asking for
/// more is refused before any token list is allocated.
pub const MAX_VOCAB: u64 = 1 << 22;

/// gguf-py's `TokenType` values for `tokenizer.ggml.token_type`.
pub mod token_type {
    #![allow(missing_docs)]
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// The score `LlamaHfVocab` gives every token.
const LLAMA_HF_SCORE: f32 = -1000.0;

#[derive(Deserialize)]
struct TokenizerJson<'a> {
    #[serde(borrow)]
    model: &'a RawValue,
    #[serde(borrow, default)]
    added_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    post_processor: Option<&'a RawValue>,
    #[serde(borrow, default)]
    decoder: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ModelJson<'a> {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(borrow, default)]
    vocab: Option<&'a RawValue>,
    #[serde(borrow, default)]
    merges: Option<&'a RawValue>,
    #[serde(default)]
    byte_fallback: Option<bool>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u64,
    content: String,
    #[serde(default)]
    special: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MergesJson {
    /// `"a b"` (the format before transformers 4.45).
    Strings(Vec<String>),
    /// `["a", "b"]` (allows spaces inside parts).
    Pairs(Vec<Vec<String>>),
}

/// Reads an optional JSON object file.
fn read_object(path: &Path) -> Result<Option<Map<String, Value>>, HfToGgufError> {
    let Some(file) = JsonFile::read_optional(path)? else { return Ok(None) };
    match file.parse::<Value>()? {
        Value::Object(m) => Ok(Some(m)),
        other => Err(HfToGgufError::WrongType {
            file: file.path.clone(),
            field: "(top level)".to_owned(),
            offset: 0,
            message: format!("expected an object, found {other}"),
        }),
    }
}

/// The `tokenizer.*` metadata for the HF checkpoint in `dir` (see the module docs), in the
/// converter's order; empty when `dir` has no `tokenizer.json`.
pub fn tokenizer_to_gguf_metadata(dir: &Path) -> Result<Vec<(String, MetaValue)>, HfToGgufError> {
    let Some(file) = JsonFile::read_optional(&dir.join("tokenizer.json"))? else { return Ok(Vec::new()) };
    let tok: TokenizerJson<'_> = file.parse()?;
    let model: ModelJson<'_> = file.borrowed(tok.model, "model")?;
    let kind = model.kind.clone().unwrap_or_default();
    if kind != "BPE" {
        return Err(HfToGgufError::UnsupportedTokenizer {
            file: file.path.clone(),
            offset: file.offset_of(tok.model),
            kind,
        });
    }
    let Some(vocab_raw) = model.vocab else {
        return Err(file.invalid(tok.model, "model.vocab", "a BPE model needs a vocab".to_owned()));
    };
    let base: HashMap<String, u64> = file.value(vocab_raw, "model.vocab")?;
    let added: Vec<AddedToken> = match tok.added_tokens {
        Some(raw) => file.value(raw, "added_tokens")?,
        None => Vec::new(),
    };
    let decoder: Option<Value> = tok.decoder.map(|raw| file.value(raw, "decoder")).transpose()?;
    let post_processor: Option<Value> =
        tok.post_processor.map(|raw| file.value(raw, "post_processor")).transpose()?;

    let config = read_object(&dir.join("config.json"))?;
    let tokenizer_config = read_object(&dir.join("tokenizer_config.json"))?;
    let generation_config = read_object(&dir.join("generation_config.json"))?;

    let llama_hf = model.byte_fallback == Some(true)
        && decoder.as_ref().and_then(|d| d.get("type")).and_then(Value::as_str) == Some("Sequence");

    // Distinct token strings (HF's `len(tokenizer.vocab)`), the default vocabulary size.
    let distinct = {
        let mut names: std::collections::HashSet<&str> = base.keys().map(String::as_str).collect();
        names.extend(added.iter().map(|t| t.content.as_str()));
        names.len() as u64
    };
    let config_vocab = config.as_ref().and_then(|c| c.get("vocab_size")).and_then(Value::as_u64);
    let vocab_size = config_vocab.unwrap_or(distinct).max(if llama_hf { distinct } else { 0 });
    if vocab_size > MAX_VOCAB {
        return Err(HfToGgufError::VocabTooLarge { vocab_size, max: MAX_VOCAB });
    }

    let slots = fill_slots(&file, vocab_raw, tok.added_tokens, &base, &added, vocab_size)?;
    let mut md: Vec<(String, MetaValue)> = Vec::new();
    let model_type = config.as_ref().and_then(|c| c.get("model_type")).and_then(Value::as_str);
    if matches!(model_type, Some("llama" | "mistral")) {
        if let Some(Value::Bool(b)) = tokenizer_config.as_ref().and_then(|t| t.get("add_prefix_space")) {
            md.push(("tokenizer.ggml.add_space_prefix".to_owned(), MetaValue::Bool(*b)));
        }
    }
    let base_len = base.len();
    let (tokens, types): (Vec<String>, Vec<i32>) = slots
        .into_iter()
        .enumerate()
        .map(|(id, slot)| {
            let Some(Slot { token, added }) = slot else {
                return (format!("[PAD{id}]"), token_type::UNUSED);
            };
            if llama_hf {
                // LlamaHfVocab: BYTE, then CONTROL for special tokens, USER_DEFINED for added
                // tokens past the base vocabulary, NORMAL for the rest.
                let t = match added {
                    _ if is_byte_token(&token) => token_type::BYTE,
                    Some(true) => token_type::CONTROL,
                    Some(false) if id >= base_len => token_type::USER_DEFINED,
                    _ => token_type::NORMAL,
                };
                return (token, t);
            }
            match added {
                None => (token, token_type::NORMAL),
                Some(special) if special || looks_special(&token) => (token, token_type::CONTROL),
                Some(_) => (token.replace('\u{2581}', " "), token_type::USER_DEFINED),
            }
        })
        .unzip();
    let n_vocab = tokens.len() as u64;
    md.push((
        "tokenizer.ggml.model".to_owned(),
        MetaValue::Str(if llama_hf { "llama" } else { "gpt2" }.to_owned()),
    ));
    md.push(("tokenizer.ggml.pre".to_owned(), MetaValue::Str("default".to_owned())));
    if !tokens.is_empty() {
        md.push(("tokenizer.ggml.tokens".to_owned(), MetaValue::Array(MetaArray::Str(tokens))));
        if llama_hf {
            let scores = vec![LLAMA_HF_SCORE; n_vocab as usize];
            md.push(("tokenizer.ggml.scores".to_owned(), MetaValue::Array(MetaArray::F32(scores))));
        }
        md.push(("tokenizer.ggml.token_type".to_owned(), MetaValue::Array(MetaArray::I32(types))));
    }

    let added_pairs: Vec<(u64, String)> = added.iter().map(|t| (t.id, t.content.clone())).collect();
    let mut special = load_special_vocab(SpecialVocabSources {
        dir,
        post_processor: post_processor.as_ref(),
        added_tokens: &added_pairs,
        tokenizer_config,
        config: config.as_ref(),
        generation_config: generation_config.as_ref(),
        n_vocab,
    })?;
    if !llama_hf {
        if let Some(raw) = model.merges {
            special.merges = merges(&file, raw)?;
        }
    }
    md.extend(special.to_gguf());
    Ok(md)
}

/// A vocabulary entry: the token, and for added tokens whether they are special.
struct Slot {
    token: String,
    added: Option<bool>,
}

/// Places every base and added token at its id.
fn fill_slots(
    file: &JsonFile,
    vocab_raw: &RawValue,
    added_raw: Option<&RawValue>,
    base: &HashMap<String, u64>,
    added: &[AddedToken],
    vocab_size: u64,
) -> Result<Vec<Option<Slot>>, HfToGgufError> {
    // vocab_size <= MAX_VOCAB, checked by the caller.
    let mut slots: Vec<Option<Slot>> = Vec::new();
    slots.resize_with(vocab_size as usize, || None);
    let out_of_range = |field: &str, raw: &RawValue, token: &str, id: u64| HfToGgufError::TokenIdOutOfRange {
        file: file.path.clone(),
        field: field.to_owned(),
        offset: file.offset_of(raw),
        token: token.to_owned(),
        id,
        vocab_size,
    };
    let duplicate =
        |field: &str, raw: &RawValue, id: u64, first: &str, second: &str| HfToGgufError::DuplicateTokenId {
            file: file.path.clone(),
            field: field.to_owned(),
            offset: file.offset_of(raw),
            id,
            first: first.to_owned(),
            second: second.to_owned(),
        };
    // Sorted so that which of two clashing tokens is "first" does not depend on hashing.
    let mut base_sorted: Vec<(&String, u64)> = base.iter().map(|(t, &id)| (t, id)).collect();
    base_sorted.sort();
    for (token, id) in base_sorted {
        let slot =
            slots.get_mut(id as usize).ok_or_else(|| out_of_range("model.vocab", vocab_raw, token, id))?;
        if let Some(existing) = slot {
            return Err(duplicate("model.vocab", vocab_raw, id, &existing.token, token));
        }
        *slot = Some(Slot { token: token.clone(), added: None });
    }
    let added_raw = added_raw.unwrap_or(vocab_raw);
    for t in added {
        let slot = slots
            .get_mut(t.id as usize)
            .ok_or_else(|| out_of_range("added_tokens", added_raw, &t.content, t.id))?;
        match slot {
            Some(existing) if existing.token != t.content => {
                return Err(duplicate("added_tokens", added_raw, t.id, &existing.token, &t.content));
            }
            _ => *slot = Some(Slot { token: t.content.clone(), added: Some(t.special) }),
        }
    }
    Ok(slots)
}

/// `<0xXX>`, a SentencePiece byte token.
fn is_byte_token(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 6
        && b.starts_with(b"<0x")
        && b[5] == b'>'
        && b[3].is_ascii_hexdigit()
        && b[4].is_ascii_hexdigit()
}

/// The converter's `does_token_look_special`.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// `model.merges` as gguf-py stores them: `"a b"` strings; pairs are joined with a space
/// after each space inside a part is written as U+0120 (`Ġ`).
fn merges(file: &JsonFile, raw: &RawValue) -> Result<Vec<String>, HfToGgufError> {
    match file.value::<MergesJson>(raw, "model.merges")? {
        MergesJson::Strings(v) => Ok(v),
        MergesJson::Pairs(pairs) => pairs
            .into_iter()
            .enumerate()
            .map(|(i, pair)| match <[String; 2]>::try_from(pair) {
                Ok([a, b]) => Ok(format!("{} {}", a.replace(' ', "\u{0120}"), b.replace(' ', "\u{0120}"))),
                Err(p) => Err(file.invalid(
                    raw,
                    &format!("model.merges[{i}]"),
                    format!("a merge pair has {} parts", p.len()),
                )),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_and_special_looking_tokens() {
        assert!(is_byte_token("<0x0A>"));
        assert!(is_byte_token("<0xff>"));
        assert!(!is_byte_token("<0x0G>"));
        assert!(!is_byte_token("<0x0A"));
        assert!(looks_special("<|im_start|>"));
        assert!(looks_special("<unused12>"));
        assert!(!looks_special("<s>"));
    }
}
