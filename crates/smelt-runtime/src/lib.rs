//! smelt's reference runner: an ONNX graph interpreter.
//!
//! [`Session::load`] reads a model through smelt-formats' ONNX reader (or a smelt blob that
//! carries an ONNX graph, its tensors dequantized into the initializers: [`blob`]) (initializers are
//! zero-copy views until decoded here, once), sorts the nodes topologically, looks every node
//! up in the op [`Registry`] by (domain, op_type, opset) — so an unsupported op is reported
//! before anything runs — and plans memory: each intermediate value is dropped right after
//! the last node that reads it. Constant matmul weights are packed once at load
//! ([`prepack`]). [`Session::run`] checks the inputs against the graph's
//! declared dtypes and shapes and executes the nodes in order.
//!
//! Numerics: float ops compute in f64 (or f32 for the matmuls, through smelt-kernels) and
//! round to the tensor's type; quantized ops follow the ONNX reference's rounding
//! (half to even) and saturation.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod blob;
pub mod error;
pub mod fuse;
mod infer;
pub mod node;
pub mod ops;
pub mod prepack;
pub mod registry;
pub mod session;
pub mod value;

pub use error::{RuntimeError, UnsupportedOp};
pub use fuse::Fusions;
pub use registry::Registry;
pub use session::{InputSpec, RunStats, Session};
pub use value::{Data, Value};

/// See [`smelt_tensor::storage::retain_freed_memory`]: `smelt run` and `smelt validate` call it
/// before loading a model.
pub use smelt_tensor::storage::retain_freed_memory;
