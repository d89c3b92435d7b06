//! The crate's error: which file, and what is wrong with it.
//!
//! [`Error`] names the file; [`ErrorKind`] says what went wrong, with one variant family per
//! format (each format's own enum carries the tensor or field name and the byte offset). Tests
//! match on variants, never on message text.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::blob::BlobError;
use crate::gguf::GgufError;
use crate::npy::NpyError;
use crate::npz::NpzError;
use crate::onnx::OnnxError;
use crate::safetensors::SafetensorsError;

/// An error reading a model file.
#[derive(Debug)]
pub struct Error {
    /// The file (or checkpoint directory) the error is about.
    pub path: PathBuf,
    /// What is wrong with it.
    pub kind: ErrorKind,
}

impl Error {
    /// An error about `path`.
    pub fn new(path: impl Into<PathBuf>, kind: impl Into<ErrorKind>) -> Error {
        Error { path: path.into(), kind: kind.into() }
    }

    /// An I/O error about `path`.
    pub fn io(path: &Path, e: std::io::Error) -> Error {
        Error::new(path, ErrorKind::Io(e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)
    }
}

impl std::error::Error for Error {}

/// What is wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The file could not be opened, mapped or read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// Neither the extension nor the first bytes say which format this is.
    #[error(
        "unrecognised format (first bytes {magic:02x?}); smelt reads .safetensors, \
             model.safetensors.index.json, .onnx and .gguf"
    )]
    UnknownFormat {
        /// Up to the first 8 bytes of the file.
        magic: Vec<u8>,
    },
    /// A directory that holds no model file smelt can read.
    #[error(
        "no model file in this directory (looked for model.safetensors.index.json, \
             *.safetensors, *.onnx, *.gguf)"
    )]
    NoModelInDirectory,
    /// A directory with more than one candidate model file and no index to choose.
    #[error("{count} candidate model files in this directory ({first}, ...); name one")]
    AmbiguousDirectory {
        /// How many candidates.
        count: usize,
        /// The first candidate's file name.
        first: String,
    },
    /// A Python pickle checkpoint, which smelt refuses to load.
    #[error(
        "refusing to load a pickle checkpoint (.{ext}): unpickling runs arbitrary code. \
             Convert it to safetensors first (for example transformers' \
             `save_pretrained(..., safe_serialization=True)` or `safetensors.torch.save_file`) \
             and point smelt at that"
    )]
    Pickle {
        /// The extension that identified it.
        ext: String,
    },
    /// A safetensors file or sharded checkpoint is malformed.
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    /// An ONNX model is malformed or unsafe.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// A GGUF file is malformed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// An HF `config.json` is malformed.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A `.npy` file is malformed.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// A `.npz` archive is malformed.
    #[error(transparent)]
    Npz(#[from] NpzError),
    /// A smelt blob is malformed.
    #[error(transparent)]
    Blob(#[from] BlobError),
}
