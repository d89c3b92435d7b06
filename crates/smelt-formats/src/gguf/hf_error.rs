//! Every way an HF checkpoint's config or tokenizer can fail to map to GGUF metadata.
//!
//! Errors about a JSON side file name the file, the field (a JSON path such as
//! `model.vocab` or `added_tokens[3].id`) and the absolute byte offset of the offending value.

use std::path::PathBuf;

/// An HF `config.json`, `tokenizer.json` or `tokenizer_config.json` that cannot become GGUF
/// metadata.
#[derive(Debug, thiserror::Error)]
pub enum HfToGgufError {
    /// The `model_type` is not one smelt maps (llama, mistral, qwen2).
    #[error(
        "model_type '{model_type}' is not supported for GGUF export (smelt maps llama, mistral and qwen2)"
    )]
    UnsupportedArchitecture {
        /// The `model_type` found.
        model_type: String,
    },
    /// A `config.json` key llama.cpp needs is absent.
    #[error("config.json has no '{key}', which the GGUF metadata needs")]
    MissingConfigKey {
        /// The HF key.
        key: &'static str,
    },
    /// A `config.json` value does not fit the GGUF type llama.cpp reads it as (UINT32).
    #[error("config.json '{key}' is {value}, above the UINT32 range GGUF stores it in")]
    ConfigValueTooLarge {
        /// The HF key.
        key: &'static str,
        /// The value.
        value: u64,
    },
    /// A side file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A side file is larger than `limits::MAX_JSON_FILE`.
    #[error("{}: {len} bytes, above the limit of {max} for a JSON file", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// Its size.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// A side file is not valid JSON (or not UTF-8).
    #[error("{} at byte {offset} (line {line}, column {column}): not valid JSON: {message}", file.display())]
    NotJson {
        /// The file.
        file: PathBuf,
        /// Offset where parsing stopped.
        offset: u64,
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// A field holds a value of the wrong shape.
    #[error("{} field '{field}' at byte {offset}: {message}", file.display())]
    WrongType {
        /// The file.
        file: PathBuf,
        /// JSON path of the field.
        field: String,
        /// Offset of the offending value.
        offset: u64,
        /// What was expected and found.
        message: String,
    },
    /// The tokenizer model is not a BPE (`Unigram`, `WordPiece`, `WordLevel`), which smelt does
    /// not map yet.
    #[error("{} field 'model.type' at byte {offset}: tokenizer model '{kind}' is not supported \
             (smelt maps BPE tokenizers)", file.display())]
    UnsupportedTokenizer {
        /// The file.
        file: PathBuf,
        /// Offset of the `model` object.
        offset: u64,
        /// The model type found.
        kind: String,
    },
    /// Two tokens share an id.
    #[error("{} field '{field}' at byte {offset}: id {id} is given to both '{first}' and '{second}'", file.display())]
    DuplicateTokenId {
        /// The file.
        file: PathBuf,
        /// Where the second token was found (`model.vocab` or `added_tokens`).
        field: String,
        /// Offset of that field's value.
        offset: u64,
        /// The id.
        id: u64,
        /// The first token with it.
        first: String,
        /// The second.
        second: String,
    },
    /// A token id is at or above the vocabulary size (from `config.json`, or the cap).
    #[error("{} field '{field}' at byte {offset}: token '{token}' has id {id}, but the vocabulary \
             has {vocab_size} entries", file.display())]
    TokenIdOutOfRange {
        /// The file.
        file: PathBuf,
        /// Where the token was found.
        field: String,
        /// Offset of that field's value.
        offset: u64,
        /// The token.
        token: String,
        /// Its id.
        id: u64,
        /// The vocabulary size.
        vocab_size: u64,
    },
    /// The vocabulary size is above `MAX_VOCAB`.
    #[error("vocabulary of {vocab_size} tokens is above the limit of {max}")]
    VocabTooLarge {
        /// The size asked for.
        vocab_size: u64,
        /// The cap.
        max: u64,
    },
}
