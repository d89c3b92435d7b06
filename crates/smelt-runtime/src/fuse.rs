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
//! - RMSNorm as `torch.onnx.export` writes it for Llama-family models — `Pow(x, 2) →
//!   ReduceMean(last axis) → Add(eps) → Sqrt → Reciprocal | Div(1, ·) → Mul(x, ·)`, then
//!   optionally `Cast(to = FLOAT)` and `Mul(weight, ·)` — becomes `RmsNorm`
//!   (`ops/fused_norm.rs`): one pass per row instead of eight nodes and their intermediate
//!   tensors, with the chain's operations in its order, so bit-identical. The constants (2,
//!   eps, 1, the weight) must be initializers or `Constant` nodes with those values.
//!
//! - the gated SiLU of Llama-family MLPs, `Sigmoid(g) → Mul(g, ·)` and optionally
//!   `→ Mul(·, up)`, becomes `SwiGlu` (`ops/fused_act.rs`): one pass instead of three, the
//!   same operations, so bit-identical.
//!
//! - grouped-query attention's `repeat_kv` — `Unsqueeze(k, axis 2) → Expand([.., rep, ..]) →
//!   Reshape([b, heads, t, d])` feeding `B` of a `MatMul` (or of the `MatMulTransB` above) —
//!   becomes `MatMulGroupedB` (`ops/matmul.rs`), which reads the `kv` heads in place (each
//!   serves `rep` query heads through the matmul's batch broadcasting) instead of copying
//!   them `rep` times per run; every product is the same kernel call on the same operands,
//!   so bit-identical. Whether the shapes have that form is checked at run time; otherwise
//!   the chain's value is built as its three ops define it. torch's keys' side, where the
//!   `Mul` by a scalar moved by the `MatMulTransB` fusion reads the repeated keys, fuses too:
//!   the `Mul` then scales the unrepeated keys (the same products, before the repeat).
//!
//! Fused nodes live in the internal domain [`FUSED_DOMAIN`], run where the chain's last node
//! ran (every input is ready there), and carry the names of the nodes they replace, joined by
//! `+`, so an error still points at the graph.

use std::collections::{HashMap, HashSet};

use crate::node::{Attr, Node};
use crate::registry::{OpFn, Registry, DEFAULT_DOMAIN, FUSED_DOMAIN};
use crate::value::{Data, Value};

/// Which fusions a session makes at load ([`crate::Session::load_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fusions {
    /// `MatMulInteger → Cast → Mul` into `MatMulIntegerScaled` (bit-identical).
    pub scaled_integer_matmul: bool,
    /// `Transpose → MatMul` (as `B`) into `MatMulTransB` (within the kernels' bound).
    pub transposed_b: bool,
    /// The RMSNorm chain into `RmsNorm` (bit-identical).
    pub rms_norm: bool,
    /// `Sigmoid → Mul [→ Mul]` into `SwiGlu` (bit-identical).
    pub swiglu: bool,
    /// Grouped-query attention's repeated keys and values, `Unsqueeze(axis 2) → Expand →
    /// Reshape` into `MatMul`'s `B`, read in place (bit-identical).
    pub grouped_kv: bool,
}

impl Fusions {
    /// Every fusion (what [`crate::Session::load`] makes).
    pub const ALL: Fusions = Fusions {
        scaled_integer_matmul: true,
        transposed_b: true,
        rms_norm: true,
        swiglu: true,
        grouped_kv: true,
    };
    /// None: every node runs as the graph has it.
    pub const NONE: Fusions = Fusions {
        scaled_integer_matmul: false,
        transposed_b: false,
        rms_norm: false,
        swiglu: false,
        grouped_kv: false,
    };
}

/// `nodes` (in execution order, with their `runs`) with the chains above fused. `keep` holds
/// the graph outputs' slots, `shapes` what shape inference knows of each slot, `consts` the
/// values of the initializers.
pub(crate) fn fuse(
    which: Fusions,
    registry: &Registry,
    nodes: Vec<Node>,
    runs: Vec<OpFn>,
    keep: &HashSet<usize>,
    shapes: &[Option<Vec<usize>>],
    consts: &HashMap<usize, &Value>,
) -> (Vec<Node>, Vec<OpFn>) {
    // Values known at load: initializers, and the outputs of `Constant` nodes.
    let mut known: HashMap<usize, &Value> = consts.clone();
    for n in &nodes {
        if n.op_type == "Constant" && (n.domain == DEFAULT_DOMAIN || n.domain == "ai.onnx") {
            if let (Some(Attr::Tensor(v)), [Some(o)]) = (n.attrs.get("value"), n.outputs.as_slice()) {
                known.insert(*o, v);
            }
        }
    }
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
        } else if which.rms_norm && is(n, "Pow") {
            let Some((chain, node)) = rms_norm_chain(&nodes, i, &only_reader, &known) else { continue };
            if chain.iter().any(|&j| gone[j] || fused.contains_key(&j) || rewired.contains_key(&j)) {
                continue;
            }
            let (&last, rest) = chain.split_last().expect("a chain has nodes");
            for &j in rest {
                gone[j] = true;
            }
            fused.insert(last, node);
        } else if which.swiglu && is(n, "Sigmoid") && n.inputs.len() == 1 {
            let g = n.inputs[0];
            let s_out = sole_output(n);
            let Some(m1) = only_reader(s_out) else { continue };
            if !is(&nodes[m1], "Mul")
                || gone[m1]
                || fused.contains_key(&m1)
                || other_operand(&nodes[m1], s_out) != Some(g)
            {
                continue;
            }
            let mut chain = vec![i, m1];
            let mut inputs = vec![g];
            let m1_out = sole_output(&nodes[m1]);
            if let Some(m2) = only_reader(m1_out) {
                if is(&nodes[m2], "Mul")
                    && !gone[m2]
                    && !fused.contains_key(&m2)
                    && !rewired.contains_key(&m2)
                {
                    if let Some(up) = other_operand(&nodes[m2], m1_out).filter(|u| u.is_some()) {
                        chain.push(m2);
                        inputs.push(up);
                    }
                }
            }
            let (&last, rest) = chain.split_last().expect("a chain has nodes");
            for &j in rest {
                gone[j] = true;
            }
            fused.insert(
                last,
                Node {
                    name: chain.iter().map(|&j| nodes[j].name.as_str()).collect::<Vec<_>>().join("+"),
                    op_type: "SwiGlu".into(),
                    domain: FUSED_DOMAIN.into(),
                    opset: 1,
                    inputs,
                    outputs: nodes[last].outputs.clone(),
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
    if which.grouped_kv {
        // Over the graph as fused so far (a `MatMulTransB` may read the repeated keys).
        for (i, n) in nodes.iter().enumerate() {
            let mm = fused.get(&i).unwrap_or(n);
            if gone[i] || rewired.contains_key(&i) {
                continue;
            }
            let trans_b = match (mm.domain.as_str(), mm.op_type.as_str()) {
                (FUSED_DOMAIN, "MatMulTransB") => 1,
                (d, "MatMul") if d == DEFAULT_DOMAIN || d == "ai.onnx" => 0,
                _ => continue,
            };
            if mm.inputs.len() != 2
                || mm.inputs[0].is_none()
                || consts.contains_key(&mm.inputs[1].unwrap_or(usize::MAX))
            {
                continue;
            }
            // torch's scaled `Kᵀ`: the `Mul` by a scalar moved before the transpose reads the
            // repeated keys; it then scales `x` instead (the same products, element by element,
            // before the repeat rather than after), and the fused node reads its output.
            let mut scaled = None;
            let mut b_slot = mm.inputs[1];
            if let Some(k) = producer(&nodes, b_slot).filter(|k| trans_b == 1 && rewired.contains_key(k)) {
                let mul = &rewired[&k];
                let scalar = |s: Option<usize>| {
                    s.and_then(|s| shapes.get(s).cloned().flatten())
                        .is_some_and(|sh| sh.len() <= 1 && sh.iter().all(|&d| d == 1))
                };
                let pos = match mul.inputs.as_slice() {
                    [p, q] if scalar(*q) && !scalar(*p) => 0,
                    [p, q] if scalar(*p) && !scalar(*q) => 1,
                    _ => continue,
                };
                scaled = Some((k, pos));
                b_slot = mul.inputs[pos];
            }
            let Some(chain) = repeat_kv_chain(&nodes, b_slot, &only_reader, &known, &is) else {
                continue;
            };
            if chain.iter().any(|&j| gone[j] || fused.contains_key(&j) || rewired.contains_key(&j)) {
                continue;
            }
            let [u, e, r] = chain;
            let (mut x, expand_to, target) = (nodes[u].inputs[0], nodes[e].inputs[1], nodes[r].inputs[1]);
            if let Some((k, pos)) = scaled {
                let mut mul = rewired[&k].clone();
                mul.inputs[pos] = x;
                rewired.insert(k, mul);
                x = mm.inputs[1];
            }
            let mut attrs = HashMap::new();
            attrs.insert("trans_b".to_string(), Attr::Int(trans_b));
            attrs.insert(
                "allowzero".to_string(),
                Attr::Int(match nodes[r].attrs.get("allowzero") {
                    Some(Attr::Int(v)) => *v,
                    _ => 0,
                }),
            );
            let node = Node {
                name: format!("{}+{}+{}+{}", nodes[u].name, nodes[e].name, nodes[r].name, mm.name),
                op_type: "MatMulGroupedB".into(),
                domain: FUSED_DOMAIN.into(),
                opset: 1,
                inputs: vec![mm.inputs[0], x, expand_to, target],
                outputs: mm.outputs.clone(),
                attrs,
            };
            for j in chain {
                gone[j] = true;
            }
            fused.insert(i, node);
        }
        // The attention scale: a `Div` of the grouped product by a one-element f32 constant
        // (torch's `scores / √d`) becomes the node's input 4, each product divided by it as the
        // `Div` computes it (in f32), while the batch item is still in cache.
        for i in 0..nodes.len() {
            let Some(f) = fused.get(&i).filter(|f| f.op_type == "MatMulGroupedB" && f.inputs.len() == 4)
            else {
                continue;
            };
            let f_out = sole_output(f);
            let Some(j) = only_reader(f_out) else { continue };
            let div = &nodes[j];
            if !is(div, "Div") || gone[j] || fused.contains_key(&j) || rewired.contains_key(&j) {
                continue;
            }
            let (divisor, scalar) = match div.inputs.as_slice() {
                [a, Some(d)] if *a == f_out && Some(*d) != f_out => {
                    let v = known.get(d);
                    (
                        *d,
                        v.is_some_and(|v| {
                            v.shape.len() <= 1 && matches!(&v.data, Data::F32(x) if x.len() == 1)
                        }),
                    )
                }
                _ => continue,
            };
            if !scalar {
                continue;
            }
            let mut node = fused.remove(&i).expect("checked above");
            node.name = format!("{}+{}", node.name, div.name);
            node.inputs.push(Some(divisor));
            node.outputs = div.outputs.clone();
            gone[j] = true;
            fused.insert(i, node);
        }
    }
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

/// The RMSNorm chain starting at the `Pow` node `p` (see the module doc): the indices of its
/// nodes, the last one last, and the fused node that replaces them.
fn rms_norm_chain(
    nodes: &[Node],
    p: usize,
    only_reader: &dyn Fn(Option<usize>) -> Option<usize>,
    known: &HashMap<usize, &Value>,
) -> Option<(Vec<usize>, Node)> {
    let is = |j: usize, op: &str| {
        let n = &nodes[j];
        n.op_type == op && (n.domain == DEFAULT_DOMAIN || n.domain == "ai.onnx")
    };
    let out = |j: usize| match nodes[j].outputs.as_slice() {
        [o] => *o,
        _ => None,
    };
    // A known one-element value (shape [] or [1]) equal to `want`, of type f32 when asked.
    let scalar = |slot: Option<usize>, want: Option<f64>, f32_only: bool| -> Option<usize> {
        let s = slot?;
        let v = known.get(&s)?;
        let ok = v.numel() == 1
            && v.shape.len() <= 1
            && (!f32_only || matches!(v.data, Data::F32(_)))
            && want.is_none_or(|w| v.data.to_f64_vec()[0] == w);
        ok.then_some(s)
    };
    let pow = &nodes[p];
    let x = *pow.inputs.first()?;
    x?;
    if pow.inputs.len() != 2 || pow.inputs[1] == x {
        return None;
    }
    scalar(pow.inputs[1], Some(2.0), false)?;
    let rm = only_reader(out(p))?;
    if !is(rm, "ReduceMean") || nodes[rm].attrs.get("keepdims").is_some_and(|k| !matches!(k, Attr::Int(1))) {
        return None;
    }
    let axes: Vec<i64> = match (nodes[rm].inputs.as_slice(), nodes[rm].attrs.get("axes")) {
        ([_], Some(Attr::Ints(a))) => a.clone(),
        ([_, Some(a)], None) => known.get(a)?.data.to_i64_vec(),
        _ => return None,
    };
    if axes != [-1] {
        return None;
    }
    let add = only_reader(out(rm))?;
    if !is(add, "Add") {
        return None;
    }
    let eps = scalar(other_operand(&nodes[add], out(rm))?, None, true)?;
    let sqrt = only_reader(out(add))?;
    if !is(sqrt, "Sqrt") || nodes[sqrt].inputs.len() != 1 {
        return None;
    }
    let inv = only_reader(out(sqrt))?;
    if is(inv, "Div") {
        let [one, s] = nodes[inv].inputs.as_slice() else { return None };
        if *s != out(sqrt) || *one == out(sqrt) {
            return None;
        }
        scalar(*one, Some(1.0), true)?;
    } else if !is(inv, "Reciprocal") || nodes[inv].inputs.len() != 1 {
        return None;
    }
    let mul = only_reader(out(inv))?;
    if !is(mul, "Mul") || other_operand(&nodes[mul], out(inv))? != x {
        return None;
    }
    let mut chain = vec![p, rm, add, sqrt, inv, mul];
    let mut inputs = vec![x, Some(eps)];
    let mut last = mul;
    // Then, optionally, Cast(to = FLOAT) (the identity on f32) and Mul by a constant f32
    // weight of one dimension.
    let mut next = only_reader(out(last));
    if let Some(c) = next.filter(|&c| is(c, "Cast") && matches!(nodes[c].attrs.get("to"), Some(Attr::Int(1))))
    {
        let Some(w) = only_reader(out(c)) else { return Some(finish(nodes, chain, inputs)) };
        next = Some(w);
        if weight(nodes, w, out(c), known, &is).is_none() {
            return Some(finish(nodes, chain, inputs));
        }
        chain.push(c);
        last = c;
    }
    if let Some(w) = next {
        if let Some(ws) = weight(nodes, w, out(last), known, &is) {
            chain.push(w);
            inputs.push(Some(ws));
        }
    }
    Some(finish(nodes, chain, inputs))
}

/// The weight slot when node `w` is `Mul(y, weight)` (either order) with `weight` a known
/// one-dimensional f32 value.
fn weight(
    nodes: &[Node],
    w: usize,
    y: Option<usize>,
    known: &HashMap<usize, &Value>,
    is: &dyn Fn(usize, &str) -> bool,
) -> Option<usize> {
    if !is(w, "Mul") || nodes[w].outputs.len() != 1 {
        return None;
    }
    let s = other_operand(&nodes[w], y)??;
    let v = known.get(&s)?;
    (v.shape.len() == 1 && matches!(v.data, Data::F32(_))).then_some(s)
}

/// The `[Unsqueeze, Expand, Reshape]` nodes computing `slot` as `repeat_kv` does, each read
/// only by the next (and the last only by the matmul): `Unsqueeze` with the constant axes
/// `[2]`, `Expand` and `Reshape` (opset 5 or later) with their shapes as inputs, whatever
/// their values (checked when the fused node runs).
fn repeat_kv_chain(
    nodes: &[Node],
    slot: Option<usize>,
    only_reader: &dyn Fn(Option<usize>) -> Option<usize>,
    known: &HashMap<usize, &Value>,
    is: &dyn Fn(&Node, &str) -> bool,
) -> Option<[usize; 3]> {
    let producer = |s: Option<usize>| producer(nodes, s);
    // The matmul must be the repeat's only reader.
    only_reader(slot)?;
    let r = producer(slot)?;
    let rn = &nodes[r];
    if !is(rn, "Reshape") || rn.opset < 5 || rn.inputs.len() != 2 || rn.inputs[1].is_none() {
        return None;
    }
    let e = producer(rn.inputs[0])?;
    let en = &nodes[e];
    if !is(en, "Expand")
        || en.inputs.len() != 2
        || en.inputs[1].is_none()
        || only_reader(rn.inputs[0]) != Some(r)
    {
        return None;
    }
    let u = producer(en.inputs[0])?;
    let un = &nodes[u];
    if !is(un, "Unsqueeze")
        || un.inputs.first().copied().flatten().is_none()
        || only_reader(en.inputs[0]) != Some(e)
    {
        return None;
    }
    let axes: Vec<i64> = if un.opset >= 13 {
        let v = known.get(&un.inputs.get(1).copied().flatten()?)?;
        v.data.to_i64_vec()
    } else {
        match un.attrs.get("axes") {
            Some(Attr::Ints(a)) => a.clone(),
            _ => return None,
        }
    };
    (axes == [2]).then_some([u, e, r])
}

/// The node whose only output is `slot`.
fn producer(nodes: &[Node], slot: Option<usize>) -> Option<usize> {
    slot?;
    nodes.iter().position(|n| n.outputs.len() == 1 && n.outputs[0] == slot)
}

/// The input of two-input node `n` that is not `slot`, when `slot` is exactly one of them.
fn other_operand(n: &Node, slot: Option<usize>) -> Option<Option<usize>> {
    match n.inputs.as_slice() {
        [a, b] if *a == slot && *b != slot => Some(*b),
        [a, b] if *b == slot && *a != slot => Some(*a),
        _ => None,
    }
}

/// The fused `RmsNorm` node of `chain` (its last node's outputs, the names joined by `+`).
fn finish(nodes: &[Node], chain: Vec<usize>, inputs: Vec<Option<usize>>) -> (Vec<usize>, Node) {
    let last = &nodes[*chain.last().expect("a chain has nodes")];
    let node = Node {
        name: chain.iter().map(|&j| nodes[j].name.as_str()).collect::<Vec<_>>().join("+"),
        op_type: "RmsNorm".into(),
        domain: FUSED_DOMAIN.into(),
        opset: 1,
        inputs,
        outputs: last.outputs.clone(),
        attrs: HashMap::new(),
    };
    (chain, node)
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
