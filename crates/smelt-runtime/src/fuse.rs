//! Load-time fusion of node chains that exporters and quantizers emit around matmuls, as
//! ONNX Runtime's graph optimizer does (`MatMulIntegerToFloat`, `FusedMatMul`). A chain is
//! fused only when its intermediate values are read by nothing else and are not graph
//! outputs, so the graph computes the same values with fewer passes over memory:
//!
//! - `MatMulInteger → Cast(to = FLOAT) → Mul(·, scale)` (what `quantize_dynamic` and
//!   `smelt convert --quant int8` write after `DynamicQuantizeLinear`) becomes
//!   `MatMulIntegerScaled`: the i32 accumulators are scaled as they are converted, with the
//!   same roundings, so the results are bit-identical;
//! - `Transpose(perm swapping the last two axes) → MatMul` as input `B` (attention's
//!   `Q·Kᵀ`) becomes `MatMulTransB`, which reads `K` in place as a Linear weight instead of
//!   copying it transposed first; the kernel sums in a different order, so results agree
//!   within the matmul kernels' documented bound rather than bit for bit. A `Mul` by a
//!   one-element value between the two (torch's exporter scales `Kᵀ` by `√scale`) commutes
//!   with the transpose and is kept, now scaling `K` (the same products, element by element).
//!
//! Fused nodes live in the internal domain [`FUSED_DOMAIN`], run where the chain's last node
//! ran (every input is ready there), and carry the names of the nodes they replace, joined by
//! `+`, so an error still points at the graph.

use std::collections::{HashMap, HashSet};

use crate::node::{Attr, Node};
use crate::registry::{OpFn, Registry, DEFAULT_DOMAIN, FUSED_DOMAIN};

/// Which fusions a session makes at load ([`crate::Session::load_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fusions {
    /// `MatMulInteger → Cast → Mul` into `MatMulIntegerScaled` (bit-identical).
    pub scaled_integer_matmul: bool,
    /// `Transpose → MatMul` (as `B`) into `MatMulTransB` (within the kernels' bound).
    pub transposed_b: bool,
}

impl Fusions {
    /// Every fusion (what [`crate::Session::load`] makes).
    pub const ALL: Fusions = Fusions { scaled_integer_matmul: true, transposed_b: true };
    /// None: every node runs as the graph has it.
    pub const NONE: Fusions = Fusions { scaled_integer_matmul: false, transposed_b: false };
}

/// `nodes` (in execution order, with their `runs`) with the chains above fused. `keep` holds
/// the graph outputs' slots, `shapes` what shape inference knows of each slot.
pub(crate) fn fuse(
    which: Fusions,
    registry: &Registry,
    nodes: Vec<Node>,
    runs: Vec<OpFn>,
    keep: &HashSet<usize>,
    shapes: &[Option<Vec<usize>>],
) -> (Vec<Node>, Vec<OpFn>) {
    let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for s in n.inputs.iter().flatten() {
            readers.entry(*s).or_default().push(i);
        }
    }
    // The single node reading `slot`, when `slot` is no graph output and has one reader.
    let only_reader = |slot: Option<usize>| -> Option<usize> {
        let s = slot?;
        match readers.get(&s).map(Vec::as_slice) {
            Some(&[r]) if !keep.contains(&s) => Some(r),
            _ => None,
        }
    };
    let is = |n: &Node, op: &str| n.op_type == op && (n.domain == DEFAULT_DOMAIN || n.domain == "ai.onnx");
    let sole_output = |n: &Node| match n.outputs.as_slice() {
        [o] => *o,
        _ => None,
    };

    let mut gone = vec![false; nodes.len()];
    let mut fused: HashMap<usize, Node> = HashMap::new();
    // Nodes kept with their op but reading other slots.
    let mut rewired: HashMap<usize, Node> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if gone[i] || fused.contains_key(&i) || rewired.contains_key(&i) {
            continue;
        }
        if which.scaled_integer_matmul && is(n, "MatMulInteger") && n.inputs.len() <= 4 {
            let Some(j) = only_reader(sole_output(n)) else { continue };
            let cast = &nodes[j];
            let to_float = matches!(cast.attrs.get("to"), Some(Attr::Int(1)));
            if !is(cast, "Cast") || !to_float || gone[j] {
                continue;
            }
            let Some(l) = only_reader(sole_output(cast)) else { continue };
            let mul = &nodes[l];
            if !is(mul, "Mul") || gone[l] || fused.contains_key(&l) || mul.inputs.len() != 2 {
                continue;
            }
            let cast_out = sole_output(cast);
            let scale = match (mul.inputs[0], mul.inputs[1]) {
                (a, Some(b)) if a == cast_out && Some(b) != cast_out => b,
                (Some(a), b) if b == cast_out && Some(a) != cast_out => a,
                _ => continue,
            };
            let mut inputs = n.inputs.clone();
            inputs.resize(4, None);
            inputs.push(Some(scale));
            gone[i] = true;
            gone[j] = true;
            fused.insert(
                l,
                Node {
                    name: format!("{}+{}+{}", n.name, cast.name, mul.name),
                    op_type: "MatMulIntegerScaled".into(),
                    domain: FUSED_DOMAIN.into(),
                    opset: 1,
                    inputs,
                    outputs: mul.outputs.clone(),
                    attrs: HashMap::new(),
                },
            );
        } else if which.transposed_b && is(n, "Transpose") && n.inputs.len() == 1 {
            let rank = match n.attrs.get("perm") {
                Some(Attr::Ints(p)) => p.len(),
                None => match n.inputs[0].and_then(|s| shapes.get(s).cloned().flatten()) {
                    Some(shape) => shape.len(),
                    None => continue,
                },
                _ => continue,
            };
            if rank < 2 || !swaps_last_two(n.attrs.get("perm"), rank) {
                continue;
            }
            let t_out = sole_output(n);
            let Some(mut m) = only_reader(t_out) else { continue };
            // Torch's attention scales Kᵀ before the product: a Mul by a one-element constant
            // or value commutes with the transpose, so it is moved before it (it then scales
            // K, and its output keeps K's layout).
            let mut scaled_by = None;
            if is(&nodes[m], "Mul") && !gone[m] && !fused.contains_key(&m) && nodes[m].inputs.len() == 2 {
                let mul = &nodes[m];
                let other = if mul.inputs[0] == t_out { mul.inputs[1] } else { mul.inputs[0] };
                let one_elem = other
                    .and_then(|o| shapes.get(o).cloned().flatten())
                    .is_some_and(|sh| sh.len() <= rank && sh.iter().all(|&d| d == 1));
                if other == t_out || !one_elem {
                    continue;
                }
                let Some(next) = only_reader(sole_output(mul)) else { continue };
                scaled_by = Some(m);
                m = next;
            }
            let b_in = match scaled_by {
                Some(k) => sole_output(&nodes[k]),
                None => t_out,
            };
            let mm = &nodes[m];
            if !is(mm, "MatMul") || gone[m] || fused.contains_key(&m) || mm.inputs.len() != 2 {
                continue;
            }
            if mm.inputs[1] != b_in || mm.inputs[0] == b_in {
                continue;
            }
            gone[i] = true;
            if let Some(k) = scaled_by {
                let mut mul = nodes[k].clone();
                for s in mul.inputs.iter_mut() {
                    if *s == t_out {
                        *s = n.inputs[0];
                    }
                }
                rewired.insert(k, mul);
            }
            fused.insert(
                m,
                Node {
                    name: format!("{}+{}", n.name, mm.name),
                    op_type: "MatMulTransB".into(),
                    domain: FUSED_DOMAIN.into(),
                    opset: 1,
                    // K itself, or the Mul's output, which now holds K scaled.
                    inputs: vec![mm.inputs[0], if scaled_by.is_some() { b_in } else { n.inputs[0] }],
                    outputs: mm.outputs.clone(),
                    attrs: HashMap::new(),
                },
            );
        }
    }

    let mut out_nodes = Vec::with_capacity(nodes.len());
    let mut out_runs = Vec::with_capacity(nodes.len());
    for (i, (node, run)) in nodes.into_iter().zip(runs).enumerate() {
        if let Some(f) = fused.remove(&i) {
            let run = registry.find(FUSED_DOMAIN, &f.op_type, 1).expect("fused ops are registered");
            out_nodes.push(f);
            out_runs.push(run);
        } else if let Some(r) = rewired.remove(&i) {
            out_nodes.push(r);
            out_runs.push(run);
        } else if !gone[i] {
            out_nodes.push(node);
            out_runs.push(run);
        }
    }
    (out_nodes, out_runs)
}

/// Whether a Transpose's `perm` (absent: reversed axes) of a rank-`rank` input swaps the last
/// two axes and keeps the others in place.
fn swaps_last_two(perm: Option<&Attr>, rank: usize) -> bool {
    let want: Vec<i64> = (0..rank as i64 - 2).chain([rank as i64 - 1, rank as i64 - 2]).collect();
    match perm {
        Some(Attr::Ints(p)) => {
            let p: Vec<i64> = p.iter().map(|&a| if a < 0 { a + rank as i64 } else { a }).collect();
            p == want
        }
        None => rank == 2,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_swapping_the_last_two_axes() {
        let ints = |v: &[i64]| Attr::Ints(v.to_vec());
        assert!(swaps_last_two(Some(&ints(&[0, 1, 3, 2])), 4));
        assert!(swaps_last_two(Some(&ints(&[0, -1, -2])), 3));
        assert!(swaps_last_two(Some(&ints(&[1, 0])), 2));
        assert!(swaps_last_two(None, 2));
        assert!(!swaps_last_two(None, 3), "no perm reverses all axes");
        assert!(!swaps_last_two(Some(&ints(&[0, 2, 1, 3])), 4));
        assert!(!swaps_last_two(Some(&ints(&[1, 0, 3, 2])), 4));
    }
}
