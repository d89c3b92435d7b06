//! ONNX models: initializers inline or in external data, and the graph.

use std::path::Path;

use crate::{Error, Model};

/// A malformed or unsafe ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// Placeholder until the reader lands.
    #[error("ONNX reader not built yet")]
    Unimplemented,
}

/// The computation graph of an ONNX model.
#[derive(Clone, Debug, Default)]
pub struct OnnxGraph {}

/// Reads an `.onnx` file.
pub fn read(path: &Path) -> Result<Model, Error> {
    Err(Error::new(path, OnnxError::Unimplemented))
}
