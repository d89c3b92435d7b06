//! OTA updates between two versions of a model file: `diff` makes a small update, `patch`
//! rebuilds the new file from the old one and the update, byte for byte, verified.
//!
//! - Tensor-aware where both files parse (safetensors, GGUF, ONNX, smelt blob — through
//!   smelt-formats' hardened readers): tensors are matched by name, unchanged and moved ones
//!   cost a copy record, changed ones are coded against their old bytes (XOR plus byte
//!   grouping, or zstd with the old tensor as prefix, or plain), whichever is smallest.
//!   Headers, metadata and files no reader accepts are coded at byte level against the old file.
//! - The container ([`format`], specified in docs/delta-format.md) records the base's and the
//!   result's length and BLAKE3, a BLAKE3 per entry, and a BLAKE3 trailer over the update
//!   itself; its parser bounds every length before allocating and reports hostile input as a
//!   [`DeltaError`] with a byte offset.
//! - [`patch()`] refuses a wrong base or a damaged update before writing, streams entry by entry
//!   with memory bounded by the largest entry, and verifies every entry and the result.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod codec;
pub mod diff;
mod error;
pub mod format;
pub mod patch;
pub mod segment;
pub mod transform;

pub use diff::{diff, Diff, DiffOptions, DiffReport, EntryReport};
pub use error::DeltaError;
pub use format::{CodecFamily, EntryKind, Method, Update};
pub use patch::{patch, PatchStats};
pub use segment::FileKind;

/// True when `bytes` starts like an update (its magic), for tools that sniff file types.
pub fn is_update(bytes: &[u8]) -> bool {
    bytes.starts_with(&format::MAGIC)
}
