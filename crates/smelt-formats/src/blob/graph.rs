//! The ONNX graph a blob made from an ONNX model carries in its metadata (`onnx_graph`, see
//! docs/blob-format.md): a serialized `ModelProto` without the initializers the blob holds as
//! tensors, and the list mapping each of those initializers to its blob tensor and to the
//! dtype and dims the graph expects. Reading it back goes through the ONNX reader's checks
//! (with external data refused: a blob names no other file), and every mapping is checked
//! against the blob's directory, so a runner gets a graph whose weights all exist.

use std::collections::HashSet;

use smelt_tensor::DType;

use super::error::BlobError;
use super::{proto, Blob};
use crate::onnx::{map_data_type, Mapped};
use crate::{limits, Error, Model};

/// A blob's graph, ready for a runner.
#[derive(Clone, Debug)]
pub struct BlobGraph {
    /// The embedded model: its `graph`, and as `tensors` the initializers it keeps inline
    /// (the graph's [`crate::onnx::OnnxGraph::initializer_names`] also lists
    /// [`BlobGraph::initializers`]).
    pub model: Model,
    /// The initializers whose values are blob tensors, in the graph's order.
    pub initializers: Vec<BlobInitializer>,
}

/// One initializer held as a blob tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInitializer {
    /// Its name in the graph.
    pub name: String,
    /// Index of the blob entry holding its values ([`Blob::entries`]).
    pub entry: usize,
    /// The dtype the graph expects (the blob entry may be quantized or cast).
    pub dtype: DType,
    /// Its dims, outermost first (equal to the entry's).
    pub dims: Vec<u64>,
}

impl Blob {
    /// The ONNX graph the blob carries, `None` when it carries none (made from safetensors or
    /// GGUF, or by an older smelt). Decodes the metadata (checking its CRC first).
    pub fn onnx_graph(&self) -> Result<Option<BlobGraph>, Error> {
        let Some(meta) = self.metadata()? else { return Ok(None) };
        let Some(g) = meta.onnx_graph else { return Ok(None) };
        self.read_graph(g).map(Some).map_err(|e| self.error(e))
    }

    fn read_graph(&self, g: proto::OnnxGraph) -> Result<BlobGraph, BlobError> {
        // The model is a slice of the file's bytes (see build.rs): its offset is where it sits.
        let base = self.bytes().as_ptr() as usize;
        let at = (g.model.as_ptr() as usize).wrapping_sub(base) as u64;
        let offset =
            if !g.model.is_empty() && at.saturating_add(g.model.len() as u64) <= self.bytes().len() as u64 {
                at
            } else {
                self.header().meta_offset
            };
        let mut model = crate::onnx::parse_embedded(g.model, self.path())
            .map_err(|e| BlobError::GraphModel { offset, source: Box::new(e) })?;

        let inline: HashSet<String> = model.tensors.iter().map(|t| t.name.clone()).collect();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut initializers = Vec::with_capacity(g.initializers.len());
        for (index, i) in g.initializers.iter().enumerate() {
            let meta_offset = self.header().meta_offset;
            let bad = |reason: String| BlobError::GraphInitializer {
                offset: meta_offset,
                index,
                name: i.name.clone(),
                reason,
            };
            if i.name.is_empty() {
                return Err(bad("the name is empty".into()));
            }
            if inline.contains(&i.name) || !seen.insert(&i.name) {
                return Err(bad("the graph has another initializer of this name".into()));
            }
            let entry = self
                .entries()
                .iter()
                .position(|e| e.name == i.tensor)
                .ok_or_else(|| bad(format!("the blob has no tensor '{}'", i.tensor)))?;
            let dtype = match map_data_type(i.data_type) {
                Mapped::DType(d) if d != DType::String && !d.is_ggml_block() => d,
                Mapped::DType(d) => {
                    return Err(bad(format!("data_type {} ({d}) cannot hold a blob tensor", i.data_type)))
                }
                Mapped::Unsupported(n) => {
                    return Err(bad(format!("data_type {} ({n}) is not supported", i.data_type)))
                }
                Mapped::Unknown => return Err(bad(format!("data_type {} is not an ONNX type", i.data_type))),
            };
            if i.dims.len() > limits::MAX_RANK {
                return Err(bad(format!("rank {} is over the limit of {}", i.dims.len(), limits::MAX_RANK)));
            }
            let entry_dims = &self.entries()[entry].dims;
            if &i.dims != entry_dims {
                return Err(bad(format!(
                    "dims {:?} differ from blob tensor '{}' dims {:?}",
                    i.dims, i.tensor, entry_dims
                )));
            }
            initializers.push(BlobInitializer { name: i.name.clone(), entry, dtype, dims: i.dims.clone() });
        }
        if let Some(graph) = model.graph.as_mut() {
            graph.add_initializer_names(initializers.iter().map(|i| i.name.clone()));
        }
        Ok(BlobGraph { model, initializers })
    }
}
