//! Which initializers of an ONNX graph can be quantized, and how they are laid out.
//!
//! ONNX output rewrites nodes, not only tensors, so a weight is quantized only when every
//! reference to it is the `B` input of a main-graph `MatMul` or `Gemm` (any other use, a
//! reference from a subgraph, or the weight being a graph output keeps it float). The plan
//! asks [`OnnxWeights::fit`] for each tensor; the reason a weight stays float goes into the
//! plan and the report.
//!
//! Every scheme quantizes the weight in its `[N, K]` orientation (output channels first, the
//! input dimension contiguous), which is what MatMulNBits and MatMulBnb4 store and what
//! smelt's int4/int8/nf4 code computes groups and channels over. A `MatMul` (or a `Gemm` with
//! `transB = 0`) stores `B` as `[K, N]`, so its values are transposed before quantizing.

use std::collections::{HashMap, HashSet};

use smelt_formats::onnx::proto::{GraphProto, NodeProto};
use smelt_formats::Model;
use smelt_tensor::DType;

use crate::plan::Reason;
use crate::scheme::Scheme;

/// Weights with a smaller input dimension stay float in ONNX output: quantizing them saves a
/// few bytes but quantizes their activation too (dynamic int8 quantizes `A` per tensor). A
/// Llama export's rotary `inv_freq` product (`K = 1`) is the common case: quantizing it
/// rounds the positions: on the e2e benchmark's model (tools/bench/bench_e2e.py), top-1
/// agreement with the float logits over the 128 prefill positions is 0.852 with it kept float
/// and 0.828 with it quantized.
pub(crate) const MIN_QUANT_K: u64 = 16;

/// How the graph stores a weight relative to the product `A · W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `[K, N]`: a MatMul's `B`, or a Gemm's with `transB = 0`.
    Kn,
    /// `[N, K]`: a Gemm's `B` with `transB = 1`.
    Nk,
}

/// A weight every use of which is the `B` of a MatMul or Gemm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WeightUse {
    /// Input dimension.
    pub k: u64,
    /// Output dimension.
    pub n: u64,
    /// Storage layout.
    pub layout: Layout,
}

/// Every main-graph initializer's verdict: quantizable (with its use) or why not.
#[derive(Debug, Default)]
pub(crate) struct OnnxWeights {
    verdicts: HashMap<String, Result<WeightUse, String>>,
}

pub(crate) fn is_default_domain(d: Option<&str>) -> bool {
    matches!(d, None | Some("") | Some("ai.onnx"))
}

pub(crate) fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name.as_deref() == Some(name)).and_then(|a| a.i)
}

pub(crate) fn attr_float(node: &NodeProto, name: &str) -> Option<f32> {
    node.attribute.iter().find(|a| a.name.as_deref() == Some(name)).and_then(|a| a.f)
}

/// The layout a node gives its input `B` when it is a MatMul or a Gemm; `None` otherwise.
pub(crate) fn matmul_layout(node: &NodeProto) -> Option<Layout> {
    if !is_default_domain(node.domain.as_deref()) {
        return None;
    }
    match node.op_type.as_deref() {
        Some("MatMul") => Some(Layout::Kn),
        Some("Gemm") if attr_int(node, "transB").unwrap_or(0) != 0 => Some(Layout::Nk),
        Some("Gemm") => Some(Layout::Kn),
        _ => None,
    }
}

/// Adds every name a subgraph (at any depth) reads or writes.
fn subgraph_names(g: &GraphProto, out: &mut HashSet<String>) {
    for n in &g.node {
        out.extend(n.input.iter().cloned());
        for a in &n.attribute {
            for sg in a.g.iter().map(|b| b.as_ref()).chain(a.graphs.iter()) {
                subgraph_names(sg, out);
            }
        }
    }
    out.extend(g.output.iter().filter_map(|v| v.name.clone()));
}

fn describe(node: &NodeProto) -> String {
    format!("{} node '{}'", node.op_type.as_deref().unwrap_or("?"), node.name.as_deref().unwrap_or(""))
}

impl OnnxWeights {
    /// Looks at every reference to every main-graph initializer.
    pub(crate) fn analyze(model: &Model) -> OnnxWeights {
        let Some(graph) = model.graph.as_ref() else { return OnnxWeights::default() };
        let g = graph.graph();
        let mut in_subgraphs = HashSet::new();
        for n in &g.node {
            for a in &n.attribute {
                for sg in a.g.iter().map(|b| b.as_ref()).chain(a.graphs.iter()) {
                    subgraph_names(sg, &mut in_subgraphs);
                }
            }
        }
        let outputs: HashSet<&str> = g.output.iter().filter_map(|v| v.name.as_deref()).collect();
        let mut verdicts = HashMap::new();
        for t in &model.tensors {
            let verdict = (|| {
                if outputs.contains(t.name.as_str()) {
                    return Err("a graph output".to_string());
                }
                if in_subgraphs.contains(&t.name) {
                    return Err("used inside a subgraph".to_string());
                }
                let mut layout = None;
                for n in &g.node {
                    for (i, input) in n.input.iter().enumerate() {
                        if *input != t.name {
                            continue;
                        }
                        let l = match (i, matmul_layout(n)) {
                            (1, Some(l)) => l,
                            _ => {
                                return Err(format!(
                                    "input {i} of {} (only the B input of MatMul and Gemm is quantized in ONNX output)",
                                    describe(n)
                                ))
                            }
                        };
                        if layout.is_some_and(|prev| prev != l) {
                            return Err(
                                "used both as [K, N] and, by a Gemm with transB=1, as [N, K]".to_string()
                            );
                        }
                        layout = Some(l);
                    }
                }
                let layout = layout.ok_or_else(|| "not used by any node".to_string())?;
                let (k, n) = match (layout, t.shape.as_slice()) {
                    (Layout::Kn, [k, n]) => (*k, *n),
                    (Layout::Nk, [n, k]) => (*k, *n),
                    _ => return Err(format!("a {}-D weight (MatMul weights must be 2-D)", t.shape.len())),
                };
                Ok(WeightUse { k, n, layout })
            })();
            verdicts.insert(t.name.clone(), verdict);
        }
        OnnxWeights { verdicts }
    }

    /// The use of a quantizable weight.
    pub(crate) fn get(&self, name: &str) -> Option<WeightUse> {
        self.verdicts.get(name).and_then(|v| v.as_ref().ok()).copied()
    }

    /// The shape a scheme sees: `[N, K]` for a quantizable weight, the stored shape otherwise.
    pub(crate) fn quant_shape(&self, name: &str, shape: &[u64]) -> Vec<u64> {
        self.get(name).map_or_else(|| shape.to_vec(), |u| vec![u.n, u.k])
    }

    /// The scheme a tensor gets in ONNX output: the wanted one when the graph lets smelt
    /// rewrite the weight's consumers, else the tensor kept as it is, with the reason.
    pub(crate) fn fit(
        &self,
        name: &str,
        dtype: DType,
        shape: &[u64],
        scheme: Scheme,
        reason: Reason,
    ) -> (Scheme, Reason) {
        if !matches!(scheme, Scheme::Int8 { .. } | Scheme::Int4 { .. } | Scheme::Nf4 { .. }) {
            return (scheme, reason);
        }
        let keep = |why: String| (Scheme::Keep, Reason::Fallback { wanted: scheme, why });
        if shape.len() != 2 {
            return keep(format!("ONNX output quantizes 2-D MatMul/Gemm weights, this is {}-D", shape.len()));
        }
        let u = match self.verdicts.get(name) {
            Some(Ok(u)) => *u,
            Some(Err(why)) => return keep(format!("kept float: {why}")),
            None => return keep("not an initializer of the main graph".to_string()),
        };
        if dtype != DType::F32 {
            return keep(format!("ONNX output quantizes float32 weights only, this is {}", dtype.name()));
        }
        if u.k < MIN_QUANT_K {
            return keep(format!(
                "input dimension K={} is below {MIN_QUANT_K}: quantizing would save little and would \
                 quantize the activation too",
                u.k
            ));
        }
        if let Scheme::Int4 { group, .. } = scheme {
            if u.k % group as u64 != 0 {
                return keep(format!(
                    "input dimension K={} is not a multiple of the group size {group}",
                    u.k
                ));
            }
        }
        (scheme, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemm_mix() -> OnnxWeights {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx/gemm-mix.onnx");
        OnnxWeights::analyze(&smelt_formats::open(&path).unwrap())
    }

    #[test]
    fn weights_with_a_tiny_input_dimension_stay_float() {
        let mut w = OnnxWeights::default();
        for (name, k) in [("inv_freq", 1u64), ("k15", MIN_QUANT_K - 1), ("k16", MIN_QUANT_K)] {
            w.verdicts.insert(name.into(), Ok(WeightUse { k, n: 32, layout: Layout::Kn }));
        }
        let int8 = Scheme::Int8 { per_channel: true, symmetric: true };
        for name in ["inv_freq", "k15"] {
            let k = w.get(name).unwrap().k;
            let (s, r) = w.fit(name, DType::F32, &[k, 32], int8, Reason::Main);
            assert_eq!(s, Scheme::Keep, "{name}");
            assert!(r.to_string().contains(&format!("K={k} is below {MIN_QUANT_K}")), "{r}");
        }
        assert_eq!(w.fit("k16", DType::F32, &[MIN_QUANT_K, 32], int8, Reason::Main).0, int8);
    }

    #[test]
    fn layouts_and_refusals_of_the_gemm_fixture() {
        let w = gemm_mix();
        assert_eq!(w.get("W1"), Some(WeightUse { k: 64, n: 96, layout: Layout::Kn }));
        assert_eq!(w.get("W2"), Some(WeightUse { k: 96, n: 64, layout: Layout::Nk }));
        assert_eq!(
            w.get("Ws"),
            Some(WeightUse { k: 64, n: 64, layout: Layout::Kn }),
            "shared by two MatMuls"
        );
        assert_eq!(w.get("Wadd"), None);
        let int4 = Scheme::Int4 { group: 32, symmetric: true };
        let (s, r) = w.fit("Wadd", DType::F32, &[4, 64], int4, Reason::Main);
        assert_eq!(s, Scheme::Keep);
        assert!(r.to_string().contains("input 1 of Add node 'add2'"), "{r}");
        let (s, r) = w.fit("W5", DType::F32, &[48, 32], int4, Reason::Main);
        assert_eq!(s, Scheme::Keep);
        assert!(r.to_string().contains("K=48"), "{r}");
        let (s, _) = w.fit("W2", DType::F32, &[64, 96], int4, Reason::Main);
        assert_eq!(s, int4);
        let (s, r) = w.fit("W2", DType::F16, &[64, 96], int4, Reason::Main);
        assert_eq!(s, Scheme::Keep, "{r}");
        assert_eq!(w.quant_shape("W1", &[64, 96]), vec![96, 64]);
    }
}
