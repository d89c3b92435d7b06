//! The runner's error: what was wrong with the model or the inputs, naming the node, the op,
//! the value and the shapes involved.

use std::fmt;

/// An op the runner has no implementation for, found while loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedOp {
    /// Node name (or `#index` when the node has none).
    pub node: String,
    /// `op_type`.
    pub op_type: String,
    /// Domain (`ai.onnx` for the default one).
    pub domain: String,
    /// The opset version the model imports for that domain.
    pub opset: i64,
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "op {} (domain {}, opset {}) at node '{}'",
            self.op_type, self.domain, self.opset, self.node
        )
    }
}

/// Everything that can stop a model from loading or running.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The model file could not be read.
    #[error(transparent)]
    Format(#[from] smelt_formats::Error),
    /// The model has no graph (safetensors, GGUF).
    #[error("{path}: this {format} model carries no graph to run")]
    NoGraph {
        /// The model file.
        path: String,
        /// Its format.
        format: &'static str,
    },
    /// A smelt blob without a graph (made from safetensors or GGUF, which have none).
    #[error(
        "{path}: this smelt blob carries no graph to run (it was made from a {source_format} model; \
         only blobs converted from an ONNX model carry one)"
    )]
    BlobWithoutGraph {
        /// The blob.
        path: String,
        /// The `source_format` its metadata gives.
        source_format: String,
    },
    /// Ops the runner does not implement (all of them, listed before anything runs).
    #[error("unsupported ops: {}", .0.iter().map(|o| o.to_string()).collect::<Vec<_>>().join("; "))]
    UnsupportedOps(Vec<UnsupportedOp>),
    /// A tensor (initializer, attribute value or input) the runner cannot hold.
    #[error("tensor '{name}': {reason}")]
    BadTensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The graph's structure is wrong (a value used before it is produced, a cycle, ...).
    #[error("graph: {0}")]
    Graph(String),
    /// A required graph input was not given.
    #[error("missing input '{name}'; the model expects: {expected}")]
    MissingInput {
        /// The input's name.
        name: String,
        /// Every expected input with dtype and shape.
        expected: String,
    },
    /// An input the graph does not have.
    #[error("unknown input '{name}'; the model expects: {expected}")]
    ExtraInput {
        /// The name given.
        name: String,
        /// Every expected input with dtype and shape.
        expected: String,
    },
    /// An input whose dtype or shape contradicts the graph's declaration.
    #[error("input '{name}': {reason}; the model expects: {expected}")]
    InputMismatch {
        /// Input name.
        name: String,
        /// What differs.
        reason: String,
        /// Every expected input with dtype and shape.
        expected: String,
    },
    /// Two shapes an op needs to agree do not.
    #[error("node '{node}' ({op_type}): shape mismatch: {what}: {a:?} vs {b:?}")]
    ShapeMismatch {
        /// Node name.
        node: String,
        /// Its op.
        op_type: String,
        /// Which shapes.
        what: String,
        /// First shape.
        a: Vec<usize>,
        /// Second shape.
        b: Vec<usize>,
    },
    /// An op refused its inputs or attributes.
    #[error("node '{node}' ({op_type}): {reason}")]
    Op {
        /// Node name.
        node: String,
        /// Its op.
        op_type: String,
        /// What is wrong.
        reason: String,
    },
}
