//! One sink per output format: each turns [`Encoded`](crate::encode::Encoded) tensors into
//! its format's layout and streams them into the output file.

use crate::atomic::AtomicFile;
use crate::plan::OutputFormat;
use crate::run::{Sink, SinkContext};
use crate::ConvertError;

mod blob;
mod gguf;
pub(crate) mod onnx;
mod safetensors;

/// Opens the sink for `format`, writing whatever must precede the first tensor.
pub fn open(
    format: OutputFormat,
    file: AtomicFile,
    ctx: &SinkContext<'_>,
) -> Result<Box<dyn Sink>, ConvertError> {
    match format {
        OutputFormat::Blob => Ok(Box::new(blob::BlobSink::open(file, ctx)?)),
        OutputFormat::Gguf => Ok(Box::new(gguf::GgufSink::open(file, ctx)?)),
        OutputFormat::Safetensors => Ok(Box::new(safetensors::SafetensorsSink::open(file, ctx)?)),
        OutputFormat::Onnx | OutputFormat::OnnxQdq => Ok(Box::new(onnx::OnnxSink::open(file, ctx)?)),
    }
}

/// A writer error as a [`ConvertError`] naming the output file.
pub(crate) fn write_err(path: &std::path::Path, e: impl std::fmt::Display) -> ConvertError {
    ConvertError::Write { path: path.display().to_string(), message: e.to_string() }
}
