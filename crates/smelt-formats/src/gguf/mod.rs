//! GGUF v2 and v3 (llama.cpp's model format), read with no third-party crate so that every
//! rule is ours and every failure names its field and byte offset.
//!
//! Layout (little-endian; v2 and v3 are identical, v1 used 32-bit counts and is refused):
//! magic `GGUF`, version (u32), tensor count (u64), metadata count (u64), the metadata entries
//! ([`metadata`]), the tensor infos ([`tensor_info`]), padding to the alignment, then the
//! tensor data. [`parse_header`] validates all of it; [`parse`] turns it into a [`Model`]
//! whose tensors are slices of the file's bytes.
//!
//! Rules come from ggml's `docs/gguf.md`, llama.cpp's `ggml/src/gguf.cpp` and gguf-py's
//! `gguf_reader.py`; where they differ, the stricter rule wins except for tensor order (see
//! [`tensor_info`]).

mod arch_config;
mod error;
mod header;
mod hf_error;
mod hf_json;
mod hf_metadata;
mod hf_names;
mod hf_special_vocab;
mod hf_tokenizer;
pub mod metadata;
pub mod tensor_info;
mod write_error;
mod writer;

use std::path::Path;

use bytes::Bytes;

pub use arch_config::arch_config;
pub use error::GgufError;
pub use header::{parse_header, GgufHeader, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC};
pub use hf_error::HfToGgufError;
pub use hf_metadata::{hf_config_to_gguf_metadata, llama_file_type, GGML_QUANT_VERSION};
pub use hf_names::{hf_tensor_name_to_gguf, permute_qk, HfArch, PermuteError};
pub use hf_tokenizer::{token_type, tokenizer_to_gguf_metadata, MAX_VOCAB};
pub use metadata::GgufKv;
pub use tensor_info::{GgufTensorInfo, GGML_MAX_DIMS};
pub use write_error::GgufWriteError;
pub use writer::{GgufTensorDecl, GgufWriter, GGUF_WRITE_VERSION};

use crate::{Error, Format, Location, Model, Tensor};

/// Reads a `.gguf` file: maps it and [`parse`]s it.
pub fn read(path: &Path) -> Result<Model, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bytes = smelt_tensor::storage::map_file(&file).map_err(|e| Error::io(path, e))?;
    parse(bytes, path)
}

/// Parses a whole GGUF file held in `bytes` (`path` only names it in errors and in
/// [`Model::files`]). Tensors borrow `bytes`; nothing is copied.
///
/// [`Model::metadata`] holds every entry in file order; [`Model::config`] is built from the
/// llama.cpp architecture keys (see [`arch_config`]).
pub fn parse(bytes: Bytes, path: &Path) -> Result<Model, Error> {
    let header = parse_header(&bytes).map_err(|e| Error::new(path, e))?;
    let tensors = header
        .tensors
        .iter()
        .map(|t| {
            // parse_header checked data_offset + offset + size <= bytes.len(), so these fit in
            // usize and the slice is in range.
            let start = header.data_offset + t.offset;
            let end = start + t.size;
            Tensor {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape(),
                data: bytes.slice(start as usize..end as usize),
                location: Location { file: 0, offset: start },
            }
        })
        .collect();
    let mut model =
        Model::new(Format::Gguf, format!("GGUF v{}", header.version), vec![path.to_path_buf()], tensors);
    model.metadata = header.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    let config = arch_config(&model.metadata, &|name| model.tensor(name).is_some());
    model.config = config;
    Ok(model)
}
