//! [`OnnxGraph`]: what an ONNX model is besides its weights, for the interpreter and for
//! `smelt inspect`. It keeps prost's decoded `ModelProto` (nodes, attributes, subgraphs, value
//! infos and functions exactly as the file has them), minus the main graph's initializers,
//! which became [`crate::Model::tensors`], and offers typed accessors for the parts every
//! consumer needs.

use smelt_tensor::DType;

use super::data_type::{map_data_type, Mapped};
use super::proto::{self, type_proto, GraphProto, ModelProto, NodeProto, ValueInfoProto};

/// The computation graph of an ONNX model.
///
/// Every tensor left inside it (node attribute values, subgraph initializers) has been checked
/// and normalized by the reader: its data is in `raw_data` (zero-copy where the file allows),
/// with `data_location` DEFAULT and no `external_data`; STRING tensors keep `string_data`.
#[derive(Clone, Debug, Default)]
pub struct OnnxGraph {
    model: ModelProto,
    initializer_names: Vec<String>,
    string_values: Vec<(String, Vec<Vec<u8>>)>,
}

/// One entry of `opset_import`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpsetImport<'a> {
    /// Operator domain; `""` is the default domain (`ai.onnx`).
    pub domain: &'a str,
    /// Opset version.
    pub version: i64,
}

/// One dimension of a graph input's or output's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim<'a> {
    /// A fixed size.
    Fixed(u64),
    /// A named symbolic size (`batch`, `sequence_length`).
    Symbolic(&'a str),
    /// Neither given (or a negative size, which some exporters write for "dynamic").
    Unknown,
}

/// The element type of a graph input or output tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    /// A type smelt holds.
    DType(DType),
    /// A type ONNX defines and smelt does not hold (named).
    Unsupported(&'static str),
    /// Missing, UNDEFINED or unknown id.
    Unknown(i32),
}

/// The type of a graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueType<'a> {
    /// A tensor (dense or sparse): element type and shape (`None` when the shape is not given,
    /// i.e. even the rank is unknown).
    Tensor {
        /// Element type.
        elem: ElemType,
        /// Dimensions, outermost first.
        shape: Option<Vec<Dim<'a>>>,
        /// True for `sparse_tensor_type`.
        sparse: bool,
    },
    /// A sequence, map, optional or opaque value (described by the proto).
    Other(&'static str),
    /// No type given.
    Missing,
}

/// A graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueInfo<'a> {
    /// Value name.
    pub name: &'a str,
    /// Its type.
    pub ty: ValueType<'a>,
}

fn elem_type(id: Option<i32>) -> ElemType {
    let id = id.unwrap_or(0);
    match map_data_type(id) {
        Mapped::DType(d) => ElemType::DType(d),
        Mapped::Unsupported(name) => ElemType::Unsupported(name),
        Mapped::Unknown => ElemType::Unknown(id),
    }
}

fn shape(s: &Option<proto::TensorShapeProto>) -> Option<Vec<Dim<'_>>> {
    use proto::tensor_shape_proto::dimension::Value;
    s.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(Value::DimValue(v)) => u64::try_from(*v).map_or(Dim::Unknown, Dim::Fixed),
                Some(Value::DimParam(p)) if !p.is_empty() => Dim::Symbolic(p),
                _ => Dim::Unknown,
            })
            .collect()
    })
}

impl<'a> ValueInfo<'a> {
    /// Reads a `ValueInfoProto`.
    pub fn from_proto(v: &'a ValueInfoProto) -> ValueInfo<'a> {
        let ty = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            None => ValueType::Missing,
            Some(type_proto::Value::TensorType(t)) => {
                ValueType::Tensor { elem: elem_type(t.elem_type), shape: shape(&t.shape), sparse: false }
            }
            Some(type_proto::Value::SparseTensorType(t)) => {
                ValueType::Tensor { elem: elem_type(t.elem_type), shape: shape(&t.shape), sparse: true }
            }
            Some(type_proto::Value::SequenceType(_)) => ValueType::Other("sequence"),
            Some(type_proto::Value::MapType(_)) => ValueType::Other("map"),
            Some(type_proto::Value::OptionalType(_)) => ValueType::Other("optional"),
            Some(type_proto::Value::OpaqueType(_)) => ValueType::Other("opaque"),
        };
        ValueInfo { name: v.name.as_deref().unwrap_or(""), ty }
    }
}

impl OnnxGraph {
    pub(crate) fn new(
        model: ModelProto,
        initializer_names: Vec<String>,
        string_values: Vec<(String, Vec<Vec<u8>>)>,
    ) -> OnnxGraph {
        OnnxGraph { model, initializer_names, string_values }
    }

    /// Declares more initializers held elsewhere (a smelt blob's tensors), so that
    /// [`OnnxGraph::runtime_inputs`] leaves them out.
    pub(crate) fn add_initializer_names(&mut self, names: impl IntoIterator<Item = String>) {
        self.initializer_names.extend(names);
    }

    /// The decoded model, without the main graph's initializers (see
    /// [`OnnxGraph::initializer_names`]).
    pub fn proto(&self) -> &ModelProto {
        &self.model
    }

    /// `ir_version` (0 when absent).
    pub fn ir_version(&self) -> i64 {
        self.model.ir_version.unwrap_or(0)
    }

    /// `producer_name` (empty when absent).
    pub fn producer_name(&self) -> &str {
        self.model.producer_name.as_deref().unwrap_or("")
    }

    /// `producer_version` (empty when absent).
    pub fn producer_version(&self) -> &str {
        self.model.producer_version.as_deref().unwrap_or("")
    }

    /// The `opset_import` entries, in file order.
    pub fn opset_imports(&self) -> Vec<OpsetImport<'_>> {
        self.model
            .opset_import
            .iter()
            .map(|o| OpsetImport {
                domain: o.domain.as_deref().unwrap_or(""),
                version: o.version.unwrap_or(0),
            })
            .collect()
    }

    /// The opset version imported for `domain` (`""` and `"ai.onnx"` both name the default
    /// domain).
    pub fn opset_version(&self, domain: &str) -> Option<i64> {
        let default = |d: &str| d.is_empty() || d == "ai.onnx";
        self.opset_imports()
            .into_iter()
            .find(|o| o.domain == domain || (default(domain) && default(o.domain)))
            .map(|o| o.version)
    }

    /// The main graph. (The reader refuses a model without one.)
    pub fn graph(&self) -> &GraphProto {
        static EMPTY: GraphProto = GraphProto {
            node: Vec::new(),
            name: None,
            initializer: Vec::new(),
            sparse_initializer: Vec::new(),
            doc_string: None,
            input: Vec::new(),
            output: Vec::new(),
            value_info: Vec::new(),
            quantization_annotation: Vec::new(),
            metadata_props: Vec::new(),
        };
        self.model.graph.as_ref().unwrap_or(&EMPTY)
    }

    /// The main graph's name.
    pub fn name(&self) -> &str {
        self.graph().name.as_deref().unwrap_or("")
    }

    /// Graph inputs, in order. Models before IR 4 also list initializers here; see
    /// [`OnnxGraph::runtime_inputs`].
    pub fn inputs(&self) -> Vec<ValueInfo<'_>> {
        self.graph().input.iter().map(ValueInfo::from_proto).collect()
    }

    /// Graph inputs that are not initializers: what a caller must feed.
    pub fn runtime_inputs(&self) -> Vec<ValueInfo<'_>> {
        let initializers: std::collections::HashSet<&str> =
            self.initializer_names.iter().map(String::as_str).collect();
        self.graph()
            .input
            .iter()
            .filter(|v| !initializers.contains(v.name.as_deref().unwrap_or("")))
            .map(ValueInfo::from_proto)
            .collect()
    }

    /// Graph outputs, in order.
    pub fn outputs(&self) -> Vec<ValueInfo<'_>> {
        self.graph().output.iter().map(ValueInfo::from_proto).collect()
    }

    /// The main graph's nodes, in file order (ONNX requires topological order).
    pub fn nodes(&self) -> &[NodeProto] {
        &self.graph().node
    }

    /// Names of the main graph's initializers, in file order; their data is in
    /// [`crate::Model::tensors`] under the same names.
    pub fn initializer_names(&self) -> &[String] {
        &self.initializer_names
    }

    /// The values of a STRING initializer (whose [`crate::Tensor`] holds no bytes), each the
    /// UTF-8 bytes the file stores.
    pub fn string_values(&self, name: &str) -> Option<&[Vec<u8>]> {
        self.string_values.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}
