//! The ONNX protobuf messages, generated at build time by prost-build from proto/onnx.proto
//! (ONNX 1.23.2, see proto/README.md). `TensorProto::raw_data` is a [`bytes::Bytes`], so a
//! model decoded from a mapped file holds slices of the map, not copies of the weights.
#![allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
