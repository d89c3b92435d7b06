//! safetensors: single files and sharded checkpoints.

use std::path::Path;

use crate::{Error, Model};

/// A malformed safetensors file or sharded checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// Placeholder until the reader lands.
    #[error("safetensors reader not built yet")]
    Unimplemented,
}

/// Reads one `.safetensors` file.
pub fn read_file(path: &Path) -> Result<Model, Error> {
    Err(Error::new(path, SafetensorsError::Unimplemented))
}

/// Reads a sharded checkpoint from its `model.safetensors.index.json`.
pub fn read_sharded(index_path: &Path) -> Result<Model, Error> {
    Err(Error::new(index_path, SafetensorsError::Unimplemented))
}
