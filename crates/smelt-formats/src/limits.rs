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

/// Maximum nesting depth of protobuf messages in an ONNX model. A subgraph (an `If` branch, a
/// `Loop` body) costs three levels (GraphProto > NodeProto > AttributeProto), so this allows
/// about 20 levels of nested control flow. It is below prost's own recursion limit (100), so the
/// ONNX reader's wire pre-scan refuses a too-deep file first, with a byte offset.
pub const MAX_PROTOBUF_DEPTH: u32 = 64;

/// The decoded messages of an ONNX model may take at most this multiple of the `.onnx` file's
/// size (plus [`ONNX_DECODE_SLACK`]). Real graphs decode to about 10 times their size on disk
/// (a torch-exported Llama graph with external weights: 9.5); a file of empty messages (2 bytes
/// each on disk, hundreds of bytes each in memory) goes far beyond.
pub const MAX_ONNX_DECODE_EXPANSION: u64 = 32;

/// Memory every ONNX model may use for decoded messages regardless of its size.
pub const ONNX_DECODE_SLACK: u64 = 16 << 20;
