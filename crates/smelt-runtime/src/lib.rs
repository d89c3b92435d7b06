//! smelt's reference runner: an ONNX graph interpreter.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
