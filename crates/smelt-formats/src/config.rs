//! Hugging Face `config.json` for Llama-family checkpoints (Llama, Mistral, Qwen2), old and new
//! key spellings alike.

use std::path::Path;

use crate::{ArchConfig, Error};

/// A `config.json` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Placeholder until the reader lands.
    #[error("config.json reader not built yet")]
    Unimplemented,
}

/// Reads and interprets an HF `config.json`.
pub fn read_hf_config(path: &Path) -> Result<ArchConfig, Error> {
    Err(Error::new(path, crate::ErrorKind::Config(ConfigError::Unimplemented)))
}
