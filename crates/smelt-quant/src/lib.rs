//! smelt quantization schemes and codecs.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
