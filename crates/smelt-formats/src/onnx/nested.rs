//! Tensors that are part of the graph rather than its initializer list: node attribute values
//! (`Constant`'s `value`, ...), initializers of subgraphs (`If`/`Loop`/`Scan` bodies), sparse
//! tensors' values and indices, in the main graph, in model-local functions and in training
//! graphs.
//!
//! They are checked exactly like initializers and normalized, so that whoever reads the graph
//! sees one representation: data in `raw_data` (a slice of the `.onnx` file or of a mapped
//! external file, or a buffer built from a typed field), `data_location` DEFAULT, no
//! `external_data`, typed fields cleared; STRING tensors keep `string_data`. Errors name the
//! tensor and give the offset of the top-level node, function or training entry holding it.
//!
//! The walk recurses into subgraphs; its depth is bounded by the wire pre-scan's nesting cap
//! ([`crate::limits::MAX_PROTOBUF_DEPTH`]), which the decoded messages cannot exceed.

use super::error::OnnxError;
use super::external::ExternalFiles;
use super::initializer::{tensor_bytes, Source};
use super::proto::{GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto};
use super::tensor_data::{header, At};
use super::wire::WireScan;

/// Normalizes every nested tensor of `m` (whose main-graph initializers were already taken).
pub(crate) fn normalize_model(
    m: &mut ModelProto,
    scan: &WireScan,
    ext: &mut ExternalFiles,
) -> Result<(), OnnxError> {
    if let Some(g) = &mut m.graph {
        for (i, node) in g.node.iter_mut().enumerate() {
            node_tensors(node, scan.nodes.get(i).copied().unwrap_or(0), ext)?;
        }
    }
    for (i, f) in m.functions.iter_mut().enumerate() {
        let at = scan.functions.get(i).copied().unwrap_or(0);
        for node in &mut f.node {
            node_tensors(node, at, ext)?;
        }
    }
    for (i, t) in m.training_info.iter_mut().enumerate() {
        let at = scan.training_info.get(i).copied().unwrap_or(0);
        for g in [&mut t.initialization, &mut t.algorithm].into_iter().flatten() {
            graph_tensors(g, at, ext)?;
        }
    }
    Ok(())
}

fn graph_tensors(g: &mut GraphProto, at: u64, ext: &mut ExternalFiles) -> Result<(), OnnxError> {
    let graph_name = g.name.clone().unwrap_or_default();
    for t in &mut g.initializer {
        normalize_tensor(t, &graph_name, at, ext)?;
    }
    for s in &mut g.sparse_initializer {
        sparse_tensor(s, &graph_name, at, ext)?;
    }
    for node in &mut g.node {
        node_tensors(node, at, ext)?;
    }
    Ok(())
}

fn node_tensors(node: &mut NodeProto, at: u64, ext: &mut ExternalFiles) -> Result<(), OnnxError> {
    let node_name =
        node.name.clone().filter(|n| !n.is_empty()).or_else(|| node.op_type.clone()).unwrap_or_default();
    for a in &mut node.attribute {
        let label = format!("{node_name}/{}", a.name.as_deref().unwrap_or(""));
        if let Some(t) = &mut a.t {
            normalize_tensor(t, &label, at, ext)?;
        }
        for t in &mut a.tensors {
            normalize_tensor(t, &label, at, ext)?;
        }
        if let Some(s) = &mut a.sparse_tensor {
            sparse_tensor(s, &label, at, ext)?;
        }
        for s in &mut a.sparse_tensors {
            sparse_tensor(s, &label, at, ext)?;
        }
        if let Some(g) = &mut a.g {
            graph_tensors(g, at, ext)?;
        }
        for g in &mut a.graphs {
            graph_tensors(g, at, ext)?;
        }
    }
    Ok(())
}

fn sparse_tensor(
    s: &mut SparseTensorProto,
    label: &str,
    at: u64,
    ext: &mut ExternalFiles,
) -> Result<(), OnnxError> {
    for t in [&mut s.values, &mut s.indices].into_iter().flatten() {
        normalize_tensor(t, label, at, ext)?;
    }
    Ok(())
}

/// Checks `t` and moves its data into `raw_data`. `fallback` names it when it has no name.
fn normalize_tensor(
    t: &mut TensorProto,
    fallback: &str,
    offset: u64,
    ext: &mut ExternalFiles,
) -> Result<(), OnnxError> {
    let name = t.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| fallback.to_string());
    let at = At { name: &name, offset };
    let h = header(t, at)?;
    let (data, source) = tensor_bytes(t, &h, at, ext)?;
    match source {
        Source::Raw => {}
        Source::Typed(super::data_type::TypedField::String) => {}
        Source::Typed(_) => {
            t.float_data = Vec::new();
            t.int32_data = Vec::new();
            t.int64_data = Vec::new();
            t.double_data = Vec::new();
            t.uint64_data = Vec::new();
            t.raw_data = Some(data);
        }
        Source::External { .. } => {
            t.raw_data = Some(data);
            t.data_location = None;
            t.external_data = Vec::new();
        }
    }
    Ok(())
}
