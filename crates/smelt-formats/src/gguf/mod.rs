//! GGUF v2 and v3.

use std::path::Path;

use crate::{Error, Model};

/// A malformed GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// Placeholder until the reader lands.
    #[error("GGUF reader not built yet")]
    Unimplemented,
}

/// Reads a `.gguf` file.
pub fn read(path: &Path) -> Result<Model, Error> {
    Err(Error::new(path, GgufError::Unimplemented))
}
