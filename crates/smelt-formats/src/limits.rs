//! Caps every reader applies before it allocates, so that a hostile file costs at most a
//! small multiple of its own size in memory and never a hang.
//!
//! The caps are far above anything real models use (llama.cpp's own limits are noted where
//! they exist) and exist to turn absurd headers into errors rather than allocations.

/// Maximum tensor rank. ONNX allows more than GGUF's 4; no real model goes near 16.
pub const MAX_RANK: usize = 16;

/// Maximum length in bytes of a tensor name (llama.cpp: 64; HF names stay under 200).
pub const MAX_NAME_LEN: u64 = 4096;

/// Maximum length in bytes of one metadata string (a tokenizer's chat template or merges
/// entry is at most some kilobytes; a JSON tokenizer embedded whole is a few MB).
pub const MAX_STRING_LEN: u64 = 64 << 20;

/// Maximum nesting depth of metadata arrays.
pub const MAX_NESTING: u32 = 4;

/// Maximum number of tensors in one model.
pub const MAX_TENSORS: u64 = 1 << 20;

/// Maximum number of metadata entries in one model.
pub const MAX_METADATA: u64 = 1 << 20;

/// Maximum size of a safetensors JSON header (the safetensors crate uses 100 MB).
pub const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// Maximum size of a JSON side file (`config.json`, the shard index).
pub const MAX_JSON_FILE: u64 = 64 << 20;
