//! Shape inference at load: where the graph's input and initializer shapes are static, the
//! shapes of values flowing through shape-preserving, broadcasting and matmul ops are
//! propagated and checked before anything runs, so a mismatch is reported naming the node
//! and both shapes without needing inputs. Ops without a rule here make their outputs
//! unknown (they are checked when they run).

use crate::error::RuntimeError;
use crate::node::{Attr, Node};
use crate::ops::broadcast::broadcast_shape;

const UNARY: &[&str] = &[
    "Identity",
    "Neg",
    "Abs",
    "Sign",
    "Sqrt",
    "Reciprocal",
    "Exp",
    "Log",
    "Erf",
    "Tanh",
    "Sigmoid",
    "Relu",
    "Cos",
    "Sin",
    "Tan",
    "Floor",
    "Ceil",
    "Round",
    "Softplus",
    "Softsign",
    "Gelu",
    "LeakyRelu",
    "Elu",
    "Selu",
    "HardSigmoid",
    "HardSwish",
    "Not",
    "IsNaN",
    "IsInf",
    "Cast",
    "CastLike",
    "Softmax",
    "LogSoftmax",
    "Clip",
    "DequantizeLinear",
    "QuantizeLinear",
    "CumSum",
    "Trilu",
    "LayerNormalization",
    "BatchNormalization",
];
const BINARY: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Mod",
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
    "PRelu",
];
const VARIADIC: &[&str] = &["Max", "Min", "Sum", "Mean", "Where"];

fn mismatch(node: &Node, what: &str, a: &[usize], b: &[usize]) -> RuntimeError {
    RuntimeError::ShapeMismatch {
        node: node.name.clone(),
        op_type: node.op_type.clone(),
        what: what.into(),
        a: a.to_vec(),
        b: b.to_vec(),
    }
}

/// Propagates `shapes` (indexed by slot, `None` = unknown) through `nodes` in order, failing
/// on the first inconsistency.
pub(crate) fn infer(nodes: &[Node], shapes: &mut [Option<Vec<usize>>]) -> Result<(), RuntimeError> {
    for node in nodes {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            continue;
        }
        let input = |i: usize| -> Option<Vec<usize>> {
            node.inputs.get(i).copied().flatten().and_then(|s| shapes[s].clone())
        };
        let op = node.op_type.as_str();
        let out: Option<Vec<usize>> = if UNARY.contains(&op) {
            input(0)
        } else if BINARY.contains(&op) || VARIADIC.contains(&op) {
            let mut acc = input(0);
            for i in 1..node.inputs.len() {
                acc = match (acc, input(i)) {
                    (Some(a), Some(b)) => Some(
                        broadcast_shape(&a, &b)
                            .ok_or_else(|| mismatch(node, "operands do not broadcast", &a, &b))?,
                    ),
                    _ => None,
                };
            }
            acc
        } else if op == "MatMul" {
            match (input(0), input(1)) {
                (Some(a), Some(b)) if a.len() >= 2 && b.len() >= 2 => {
                    let (k, k2) = (a[a.len() - 1], b[b.len() - 2]);
                    if k != k2 {
                        return Err(mismatch(node, "inner dimensions differ", &a, &b));
                    }
                    let batch = broadcast_shape(&a[..a.len() - 2], &b[..b.len() - 2])
                        .ok_or_else(|| mismatch(node, "batch dimensions do not broadcast", &a, &b))?;
                    let mut s = batch;
                    s.push(a[a.len() - 2]);
                    s.push(b[b.len() - 1]);
                    Some(s)
                }
                _ => None,
            }
        } else if op == "Gemm" {
            let t = |n: &str| matches!(node.attrs.get(n), Some(Attr::Int(v)) if *v != 0);
            match (input(0), input(1)) {
                (Some(a), Some(b)) if a.len() == 2 && b.len() == 2 => {
                    let (m, k) = if t("transA") { (a[1], a[0]) } else { (a[0], a[1]) };
                    let (k2, n) = if t("transB") { (b[1], b[0]) } else { (b[0], b[1]) };
                    if k != k2 {
                        return Err(mismatch(node, "inner dimensions differ (after transA/transB)", &a, &b));
                    }
                    Some(vec![m, n])
                }
                _ => None,
            }
        } else if op == "Constant" {
            match node.attrs.get("value") {
                Some(Attr::Tensor(v)) => Some(v.shape.clone()),
                _ => None,
            }
        } else {
            None
        };
        if let Some(Some(s)) = node.outputs.first() {
            shapes[*s] = out;
        }
        // Secondary outputs (LayerNormalization's mean, ...) stay unknown.
        for s in node.outputs.iter().skip(1).flatten() {
            shapes[*s] = None;
        }
    }
    Ok(())
}
