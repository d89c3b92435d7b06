//! [`Node`]: one graph node resolved for execution (value slots instead of names, attributes
//! decoded), and [`OpCtx`], what an op implementation sees when it runs.

use std::any::Any;
use std::collections::HashMap;

use smelt_formats::onnx::proto::{AttributeProto, NodeProto};

use crate::error::RuntimeError;
use crate::value::Value;

/// A decoded attribute value.
#[derive(Clone, Debug)]
pub enum Attr {
    /// `f`.
    Float(f32),
    /// `i`.
    Int(i64),
    /// `s`.
    Str(String),
    /// `t`.
    Tensor(Value),
    /// `floats`.
    Floats(Vec<f32>),
    /// `ints`.
    Ints(Vec<i64>),
    /// `strings`.
    Strings(Vec<String>),
    /// A subgraph or a kind the runner does not use.
    Other,
}

/// A node ready to run.
#[derive(Clone, Debug)]
pub struct Node {
    /// Node name, or `#<index>` when it has none.
    pub name: String,
    /// `op_type`.
    pub op_type: String,
    /// Domain, `""` for the default one.
    pub domain: String,
    /// The opset version imported for the node's domain.
    pub opset: i64,
    /// Input slots (`None` for an omitted optional input).
    pub inputs: Vec<Option<usize>>,
    /// Output slots (`None` for an unused optional output).
    pub outputs: Vec<Option<usize>>,
    /// Attributes by name.
    pub attrs: HashMap<String, Attr>,
}

fn decode_attr(node: &str, a: &AttributeProto) -> Result<Attr, RuntimeError> {
    use smelt_formats::onnx::proto::attribute_proto::AttributeType as T;
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(match a.r#type.and_then(|t| T::try_from(t).ok()) {
        Some(T::Float) => Attr::Float(a.f.unwrap_or(0.0)),
        Some(T::Int) => Attr::Int(a.i.unwrap_or(0)),
        Some(T::String) => Attr::Str(s(a.s.as_deref().unwrap_or(&[]))),
        Some(T::Tensor) => match &a.t {
            Some(t) => {
                let label = format!("{node}/{}", a.name.as_deref().unwrap_or(""));
                let (tensor, _) = smelt_formats::onnx::tensor_from_proto(t, &label)
                    .map_err(|e| RuntimeError::BadTensor { name: label.clone(), reason: e.to_string() })?;
                Attr::Tensor(Value::from_tensor(&tensor)?)
            }
            None => Attr::Other,
        },
        Some(T::Floats) => Attr::Floats(a.floats.clone()),
        Some(T::Ints) => Attr::Ints(a.ints.clone()),
        Some(T::Strings) => Attr::Strings(a.strings.iter().map(|b| s(b)).collect()),
        _ => Attr::Other,
    })
}

impl Node {
    /// Decodes `p`'s attributes; slots are filled by the caller.
    pub(crate) fn from_proto(p: &NodeProto, index: usize, opset: i64) -> Result<Node, RuntimeError> {
        let name = p.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| format!("#{index}"));
        let mut attrs = HashMap::new();
        for a in &p.attribute {
            attrs.insert(a.name.clone().unwrap_or_default(), decode_attr(&name, a)?);
        }
        Ok(Node {
            name,
            op_type: p.op_type.clone().unwrap_or_default(),
            domain: p.domain.clone().unwrap_or_default(),
            opset,
            inputs: Vec::new(),
            outputs: Vec::new(),
            attrs,
        })
    }
}

/// What an op implementation gets: its node and its input values.
pub struct OpCtx<'a> {
    /// The node.
    pub node: &'a Node,
    /// Input values, `None` for omitted optional inputs.
    pub inputs: Vec<Option<&'a Value>>,
    /// What the op's [`crate::registry::PrepareFn`] made when the session loaded, if anything.
    pub prepared: Option<&'a (dyn Any + Send + Sync)>,
}

impl<'a> OpCtx<'a> {
    /// The prepared state, when there is one of type `T`.
    pub fn prepared<T: Any>(&self) -> Option<&'a T> {
        self.prepared.and_then(|p| p.downcast_ref::<T>())
    }

    /// Whether the node has input `i` (given or computed; not an omitted optional one).
    pub fn has_input(&self, i: usize) -> bool {
        self.node.inputs.get(i).copied().flatten().is_some()
    }

    /// An error about this node.
    pub fn err(&self, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::Op {
            node: self.node.name.clone(),
            op_type: self.node.op_type.clone(),
            reason: reason.into(),
        }
    }

    /// A shape mismatch at this node.
    pub fn shape_err(&self, what: &str, a: &[usize], b: &[usize]) -> RuntimeError {
        RuntimeError::ShapeMismatch {
            node: self.node.name.clone(),
            op_type: self.node.op_type.clone(),
            what: what.into(),
            a: a.to_vec(),
            b: b.to_vec(),
        }
    }

    /// Required input `i`.
    pub fn input(&self, i: usize) -> Result<&'a Value, RuntimeError> {
        self.inputs.get(i).copied().flatten().ok_or_else(|| self.err(format!("input {i} is required")))
    }

    /// Optional input `i`.
    pub fn opt(&self, i: usize) -> Option<&'a Value> {
        self.inputs.get(i).copied().flatten()
    }

    /// The opset version of the node's domain.
    pub fn opset(&self) -> i64 {
        self.node.opset
    }

    /// Attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&'a Attr> {
        self.node.attrs.get(name)
    }

    /// Integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        match self.attr(name) {
            Some(Attr::Int(v)) => *v,
            _ => default,
        }
    }

    /// Float attribute, or `default`.
    pub fn float(&self, name: &str, default: f32) -> f32 {
        match self.attr(name) {
            Some(Attr::Float(v)) => *v,
            Some(Attr::Int(v)) => *v as f32,
            _ => default,
        }
    }

    /// String attribute, or `default`.
    pub fn string(&self, name: &str, default: &str) -> String {
        match self.attr(name) {
            Some(Attr::Str(v)) => v.clone(),
            _ => default.to_string(),
        }
    }

    /// Integer-list attribute.
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        match self.attr(name) {
            Some(Attr::Ints(v)) => Some(v.clone()),
            Some(Attr::Int(v)) => Some(vec![*v]),
            _ => None,
        }
    }

    /// Float-list attribute.
    pub fn floats(&self, name: &str) -> Option<Vec<f32>> {
        match self.attr(name) {
            Some(Attr::Floats(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// The element count of `shape`, refused when it overflows or passes
    /// [`crate::session::value_element_cap`] (checked before allocating a value whose shape
    /// comes from the model or an input).
    /// Zero dimensions count as one against the cap ([`crate::session::shape_within_cap`]).
    pub fn checked_numel(&self, shape: &[usize]) -> Result<usize, RuntimeError> {
        if !crate::session::shape_within_cap(shape) {
            return Err(self.err(format!("a value of shape {shape:?} is too large")));
        }
        Ok(shape.iter().product())
    }

    /// Normalizes a possibly negative axis against `rank`.
    pub fn axis(&self, axis: i64, rank: usize) -> Result<usize, RuntimeError> {
        let r = rank as i64;
        let a = if axis < 0 { axis + r } else { axis };
        // A scalar has no axis: ops index `shape[axis]`, so rank 0 is refused here.
        if a < 0 || a >= r {
            return Err(self.err(format!("axis {axis} out of range for rank {rank}")));
        }
        Ok(a as usize)
    }

    /// An input holding integers (axes, shapes, indices) as i64s.
    pub fn input_i64s(&self, i: usize) -> Result<Vec<i64>, RuntimeError> {
        let v = self.input(i)?;
        if v.dtype().is_float_like() {
            return Err(self.err(format!("input {i} must hold integers, found {}", v.dtype())));
        }
        Ok(v.data.to_i64_vec())
    }
}

/// Whether a dtype is a floating-point one.
#[allow(clippy::wrong_self_convention)]
pub trait FloatLike {
    /// True for f16, bf16, f32, f64.
    fn is_float_like(self) -> bool;
}

impl FloatLike for smelt_tensor::DType {
    fn is_float_like(self) -> bool {
        matches!(
            self,
            smelt_tensor::DType::F32
                | smelt_tensor::DType::F64
                | smelt_tensor::DType::F16
                | smelt_tensor::DType::BF16
        )
    }
}
