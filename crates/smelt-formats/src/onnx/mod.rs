//! ONNX models: initializers inline or in external data, and the graph.
//!
//! Reading goes in four steps, each refusing a hostile file with the byte offset where it is
//! wrong:
//! 1. `wire`: a pre-scan of the whole protobuf wire structure against onnx.proto (keys, wire
//!    types, varints, lengths, UTF-8, nesting depth), which also bounds the memory decoding
//!    will take and records where each top-level initializer and node starts;
//! 2. prost decodes the file from the mapped [`Bytes`], so `raw_data` fields are slices of the
//!    map, not copies;
//! 3. the main graph's initializers become [`Tensor`](crate::Tensor)s (`initializer`): dtype,
//!    shape and data checked, typed fields converted to stored bytes, external data resolved
//!    safely inside the model's directory (`external`), overlaps refused;
//! 4. tensors left inside the graph (attribute values, subgraph initializers) are checked and
//!    normalized the same way (`nested`), and the rest becomes an [`OnnxGraph`].
//!
//! Nothing here assumes protobuf's 2 GiB limit: sizes and offsets are `u64`/`usize`, and models
//! over 2 GiB keep their weights in external files, which are mapped, never read into memory.
//! Main-graph `sparse_initializer`s and segmented tensors are refused, not converted.

use std::path::Path;

use bytes::Bytes;
use prost::Message as _;

use crate::{limits, Error, Format, MetaValue, Model, Tensor};

mod data_type;
mod error;
mod external;
mod graph;
mod initializer;
mod nested;
pub mod proto;
mod tensor_data;
mod wire;

pub use data_type::{map_data_type, onnx_type_id, onnx_type_name, Mapped};
pub use error::OnnxError;
pub use graph::{Dim, ElemType, OnnxGraph, OpsetImport, ValueInfo, ValueType};

/// Reads an `.onnx` file (mapped, not read into memory), resolving external data relative to
/// its directory.
pub fn read(path: &Path) -> Result<Model, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bytes = smelt_tensor::storage::map_file(&file).map_err(|e| Error::io(path, e))?;
    parse(bytes, path)
}

/// Parses the bytes of an `.onnx` file. `path` names the file in errors and locates external
/// data (relative to its directory); it is not read.
pub fn parse(bytes: Bytes, path: &Path) -> Result<Model, Error> {
    parse_model(bytes, path, external::ExternalFiles::new(path)).map_err(|e| Error::new(path, e))
}

/// Parses a serialized `ModelProto` embedded in another file (a smelt blob's graph) with the
/// same checks as [`parse`], refusing external data (`path` only names the file in errors;
/// the model's [`Model::files`] is `[path]`).
pub fn parse_embedded(bytes: Bytes, path: &Path) -> Result<Model, OnnxError> {
    parse_model(bytes, path, external::ExternalFiles::forbidden(path))
}

fn parse_model(bytes: Bytes, path: &Path, mut ext: external::ExternalFiles) -> Result<Model, OnnxError> {
    let scan = wire::scan(&bytes)?;
    if scan.initializers.len() as u64 > limits::MAX_TENSORS {
        let offset = scan.initializers.get(limits::MAX_TENSORS as usize).map_or(0, |s| s.offset);
        return Err(OnnxError::TooManyTensors { offset, limit: limits::MAX_TENSORS });
    }
    scan.check_decode_size(bytes.len() as u64)?;
    let mut proto = proto::ModelProto::decode(bytes.clone())
        .map_err(|e| OnnxError::Protobuf { message: e.to_string() })?;
    let graph = proto.graph.as_mut().ok_or(OnnxError::MissingGraph)?;
    if let Some(s) = graph.sparse_initializer.first() {
        let name = s.values.as_ref().and_then(|v| v.name.clone()).unwrap_or_default();
        return Err(OnnxError::SparseInitializer {
            name,
            offset: scan.sparse_initializers.first().copied().unwrap_or(0),
        });
    }
    let inits = std::mem::take(&mut graph.initializer);

    let (tensors, strings) = initializer::convert_initializers(inits, &scan.initializers, &bytes, &mut ext)?;
    nested::normalize_model(&mut proto, &scan, &mut ext)?;
    ext.check_overlaps()?;

    let metadata = model_metadata(&proto, &scan)?;
    let version = version_string(&proto);
    let mut files = vec![path.to_path_buf()];
    files.extend(ext.paths());
    let names = tensors.iter().map(|t| t.name.clone()).collect();
    let mut model = Model::new(Format::Onnx, version, files, tensors);
    model.metadata = metadata;
    model.graph = Some(OnnxGraph::new(proto, names, strings));
    Ok(model)
}

/// Converts a `TensorProto` held in memory (a node attribute's value, or a standalone `.pb`
/// such as the ONNX backend tests store) into a [`Tensor`], with the same checks as an
/// initializer. Its data must be inline; `fallback` names it when the proto has no name.
/// STRING tensors come back with their values beside.
pub fn tensor_from_proto(
    t: &proto::TensorProto,
    fallback: &str,
) -> Result<(Tensor, Vec<Vec<u8>>), OnnxError> {
    let name = t.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| fallback.to_string());
    let at = tensor_data::At { name: &name, offset: 0 };
    let h = tensor_data::header(t, at)?;
    if tensor_data::data_location(t, at)? != tensor_data::DataLocation::Inline {
        return Err(OnnxError::BadDataLocation { name, offset: 0, value: 1 });
    }
    let (data, _) = tensor_data::inline_data(t, &h, at)?;
    let strings = if h.dtype == smelt_tensor::DType::String { t.string_data.clone() } else { Vec::new() };
    let tensor = Tensor {
        name,
        dtype: h.dtype,
        shape: h.shape,
        data,
        location: crate::Location { file: 0, offset: 0 },
    };
    Ok((tensor, strings))
}

/// Reads a file holding one serialized `TensorProto` (the ONNX backend tests' `input_0.pb`).
pub fn read_tensor_pb(path: &Path) -> Result<(Tensor, Vec<Vec<u8>>), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let t = proto::TensorProto::decode(Bytes::from(bytes))
        .map_err(|e| Error::new(path, OnnxError::Protobuf { message: e.to_string() }))?;
    tensor_from_proto(&t, "").map_err(|e| Error::new(path, e))
}

/// `ONNX IR 8, opset 17` (the default domain's opset), or `ONNX IR 8` without one.
fn version_string(m: &proto::ModelProto) -> String {
    let ir = m.ir_version.unwrap_or(0);
    let opset = m
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version);
    match opset {
        Some(v) => format!("ONNX IR {ir}, opset {v}"),
        None => format!("ONNX IR {ir}"),
    }
}

/// The model's own fields as `onnx.*` keys, then `metadata_props` in file order (duplicate
/// keys refused).
fn model_metadata(
    m: &proto::ModelProto,
    scan: &wire::WireScan,
) -> Result<Vec<(String, MetaValue)>, OnnxError> {
    let mut out: Vec<(String, MetaValue)> = Vec::new();
    if let Some(v) = m.ir_version {
        out.push(("onnx.ir_version".into(), MetaValue::I64(v)));
    }
    let strings = [
        ("onnx.producer_name", &m.producer_name),
        ("onnx.producer_version", &m.producer_version),
        ("onnx.domain", &m.domain),
        ("onnx.doc_string", &m.doc_string),
    ];
    for (k, v) in strings {
        if let Some(v) = v {
            out.push((k.into(), MetaValue::Str(v.clone())));
        }
    }
    if let Some(v) = m.model_version {
        out.push(("onnx.model_version".into(), MetaValue::I64(v)));
    }
    for o in &m.opset_import {
        let domain = o.domain.as_deref().filter(|d| !d.is_empty()).unwrap_or("ai.onnx");
        out.push((format!("onnx.opset.{domain}"), MetaValue::I64(o.version.unwrap_or(0))));
    }
    let mut seen: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for (i, p) in m.metadata_props.iter().enumerate() {
        let key = p.key.as_deref().unwrap_or("");
        let offset = scan.metadata_props.get(i).copied().unwrap_or(0);
        if let Some(&first_offset) = seen.get(key) {
            return Err(OnnxError::DuplicateMetadataKey { key: key.to_string(), offset, first_offset });
        }
        seen.insert(key, offset);
        out.push((key.to_string(), MetaValue::Str(p.value.clone().unwrap_or_default())));
    }
    Ok(out)
}
