//! The nodes that replace a MatMul or Gemm whose weight was quantized, one builder per mode:
//! onnxruntime's `quantize_dynamic` structure for int8, MatMulNBits for int4, MatMulBnb4 for
//! NF4, and a DequantizeLinear for weight-only QDQ. Gemm's `transA`, `alpha`, `beta` and `C`
//! become a Transpose, Muls and an Add around the quantized product.

use std::collections::HashSet;

use smelt_formats::onnx::proto::attribute_proto::AttributeType;
use smelt_formats::onnx::proto::{AttributeProto, GraphProto, ModelProto, NodeProto};

use super::weights::{attr_float, attr_int, WeightUse};

/// ONNX `TensorProto.DataType.FLOAT`.
const FLOAT: i64 = 1;
pub(crate) const CONTRIB_DOMAIN: &str = "com.microsoft";

/// How a quantized weight's consumers are rewritten.
#[derive(Clone, Debug)]
pub(crate) enum QWeight {
    /// DynamicQuantizeLinear + MatMulInteger: `q` is `[K, N]`.
    Int8 { q: String, scale: String, zero_point: String },
    /// MatMulNBits.
    NBits { b: String, scales: String, zero_points: Option<String>, block: usize, use_: WeightUse },
    /// MatMulBnb4 (NF4).
    Bnb4 { b: String, absmax: String, block: usize, use_: WeightUse },
    /// A DequantizeLinear outputs the weight under its own name: consumers stay as they are.
    Dequantized,
}

/// Every name in the model, so that new values and nodes never collide with existing ones.
#[derive(Default)]
pub(crate) struct Names {
    used: HashSet<String>,
}

fn collect_graph(g: &GraphProto, used: &mut HashSet<String>) {
    for n in &g.node {
        used.extend(n.input.iter().cloned());
        used.extend(n.output.iter().cloned());
        used.extend(n.name.iter().cloned());
        for a in &n.attribute {
            for sg in a.g.iter().map(|b| b.as_ref()).chain(a.graphs.iter()) {
                collect_graph(sg, used);
            }
        }
    }
    for v in g.input.iter().chain(&g.output).chain(&g.value_info) {
        used.extend(v.name.iter().cloned());
    }
    used.extend(g.initializer.iter().filter_map(|t| t.name.clone()));
}

impl Names {
    pub(crate) fn of_model(m: &ModelProto, initializers: &[String]) -> Names {
        let mut used: HashSet<String> = initializers.iter().cloned().collect();
        if let Some(g) = &m.graph {
            collect_graph(g, &mut used);
        }
        Names { used }
    }

    /// `base`, or `base_1`, `base_2`, ... whichever is free first; reserved from then on.
    pub(crate) fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn ints_attr(name: &str, v: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v,
        ..Default::default()
    }
}

pub(crate) fn node(
    op: &str,
    domain: Option<&str>,
    name: String,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op.to_string()),
        domain: domain.map(str::to_string),
        name: Some(name),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

/// `DequantizeLinear(q, scale[, zero_point]) -> weight`, per axis when `axis` is given, blocked
/// when `block_size` is.
pub(crate) fn dequantize_node(
    names: &mut Names,
    weight: &str,
    q: &str,
    scale: &str,
    zero_point: Option<&str>,
    axis: Option<i64>,
    block_size: Option<i64>,
) -> NodeProto {
    let mut attrs = Vec::new();
    if let Some(a) = axis {
        attrs.push(int_attr("axis", a));
    }
    if let Some(b) = block_size {
        attrs.push(int_attr("block_size", b));
    }
    let mut inputs = vec![q, scale];
    inputs.extend(zero_point);
    node(
        "DequantizeLinear",
        None,
        names.fresh(&format!("{weight}_DequantizeLinear")),
        &inputs,
        &[weight],
        attrs,
    )
}

/// Replaces `n` (a MatMul or Gemm whose `B` is `q`'s weight) by the nodes that compute it from
/// the quantized weight, appended to `out`. Scalar constants the Gemm epilogue needs are
/// pushed to `consts` (name, value) and become initializers.
pub(crate) fn rewrite_node(
    n: &NodeProto,
    q: &QWeight,
    names: &mut Names,
    out: &mut Vec<NodeProto>,
    consts: &mut Vec<(String, f32)>,
) {
    let base = n
        .name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| n.output.first().cloned().unwrap_or_default());
    let y = n.output.first().cloned().unwrap_or_default();
    let is_gemm = n.op_type.as_deref() == Some("Gemm");
    let mut a = n.input.first().cloned().unwrap_or_default();
    let (alpha, beta) = (attr_float(n, "alpha").unwrap_or(1.0), attr_float(n, "beta").unwrap_or(1.0));
    let c = n.input.get(2).filter(|s| !s.is_empty() && is_gemm && beta != 0.0).cloned();
    if is_gemm && attr_int(n, "transA").unwrap_or(0) != 0 {
        let t = names.fresh(&format!("{a}_transposed"));
        out.push(node(
            "Transpose",
            None,
            names.fresh(&format!("{base}_transA")),
            &[&a],
            &[&t],
            vec![ints_attr("perm", vec![1, 0])],
        ));
        a = t;
    }
    // The quantized product goes to `y` unless an epilogue follows.
    let epilogue = is_gemm && (alpha != 1.0 || c.is_some());
    let product = if epilogue { names.fresh(&format!("{y}_matmul")) } else { y.clone() };
    match q {
        QWeight::Int8 { q, scale, zero_point, .. } => {
            // One DynamicQuantizeLinear per activation, shared by every consumer after it.
            let aq = format!("{a}_quantized");
            let (a_scale, a_zp) = (format!("{a}_scale"), format!("{a}_zero_point"));
            if !out
                .iter()
                .any(|m| m.op_type.as_deref() == Some("DynamicQuantizeLinear") && m.input.first() == Some(&a))
            {
                let (aq2, s2, z2) = (names.fresh(&aq), names.fresh(&a_scale), names.fresh(&a_zp));
                out.push(node(
                    "DynamicQuantizeLinear",
                    None,
                    names.fresh(&format!("{a}_QuantizeLinear")),
                    &[&a],
                    &[&aq2, &s2, &z2],
                    vec![],
                ));
            }
            let dql = out
                .iter()
                .find(|m| {
                    m.op_type.as_deref() == Some("DynamicQuantizeLinear") && m.input.first() == Some(&a)
                })
                .map(|m| m.output.clone())
                .unwrap_or_default();
            let (aq, a_scale, a_zp) = (&dql[0], &dql[1], &dql[2]);
            let scales = names.fresh(&format!("{base}_scales_mul"));
            out.push(node(
                "Mul",
                None,
                names.fresh(&format!("{base}_scales_mul")),
                &[a_scale, scale],
                &[&scales],
                vec![],
            ));
            let qy = names.fresh(&format!("{y}_quantized"));
            out.push(node(
                "MatMulInteger",
                None,
                names.fresh(&format!("{base}_quant")),
                &[aq, q, a_zp, zero_point],
                &[&qy],
                vec![],
            ));
            let cast = names.fresh(&format!("{y}_quantized_cast"));
            out.push(node(
                "Cast",
                None,
                names.fresh(&format!("{base}_cast")),
                &[&qy],
                &[&cast],
                vec![int_attr("to", FLOAT)],
            ));
            out.push(node(
                "Mul",
                None,
                names.fresh(&format!("{base}_output_scale_mul")),
                &[&cast, &scales],
                &[&product],
                vec![],
            ));
        }
        QWeight::NBits { b, scales, zero_points, block, use_ } => {
            let mut inputs = vec![a.as_str(), b.as_str(), scales.as_str()];
            inputs.extend(zero_points.as_deref());
            let attrs = vec![
                int_attr("K", use_.k as i64),
                int_attr("N", use_.n as i64),
                int_attr("bits", 4),
                int_attr("block_size", *block as i64),
            ];
            out.push(node(
                "MatMulNBits",
                Some(CONTRIB_DOMAIN),
                names.fresh(&format!("{base}_MatMulNBits")),
                &inputs,
                &[&product],
                attrs,
            ));
        }
        QWeight::Bnb4 { b, absmax, block, use_ } => {
            let attrs = vec![
                int_attr("K", use_.k as i64),
                int_attr("N", use_.n as i64),
                int_attr("block_size", *block as i64),
                int_attr("quant_type", 1),
            ];
            out.push(node(
                "MatMulBnb4",
                Some(CONTRIB_DOMAIN),
                names.fresh(&format!("{base}_MatMulBnb4")),
                &[&a, b, absmax],
                &[&product],
                attrs,
            ));
        }
        QWeight::Dequantized => unreachable!("DequantizeLinear weights keep their consumers"),
    }
    if !epilogue {
        return;
    }
    let mut acc = product;
    if alpha != 1.0 {
        let k = names.fresh(&format!("{base}_alpha"));
        consts.push((k.clone(), alpha));
        let next = if c.is_some() { names.fresh(&format!("{y}_alpha")) } else { y.clone() };
        out.push(node("Mul", None, names.fresh(&format!("{base}_alpha_mul")), &[&acc, &k], &[&next], vec![]));
        acc = next;
    }
    if let Some(c) = c {
        let mut c = c;
        if beta != 1.0 {
            let k = names.fresh(&format!("{base}_beta"));
            consts.push((k.clone(), beta));
            let scaled = names.fresh(&format!("{c}_beta"));
            out.push(node(
                "Mul",
                None,
                names.fresh(&format!("{base}_beta_mul")),
                &[&c, &k],
                &[&scaled],
                vec![],
            ));
            c = scaled;
        }
        out.push(node("Add", None, names.fresh(&format!("{base}_bias_add")), &[&acc, &c], &[&y], vec![]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::onnx::weights::Layout;
    use smelt_formats::onnx::proto::AttributeProto;

    fn float_attr(name: &str, v: f32) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Float as i32),
            f: Some(v),
            ..Default::default()
        }
    }

    fn ops(nodes: &[NodeProto]) -> Vec<&str> {
        nodes.iter().map(|n| n.op_type.as_deref().unwrap()).collect()
    }

    #[test]
    fn gemm_with_every_option_gets_its_epilogue() {
        let gemm = node(
            "Gemm",
            None,
            "g".into(),
            &["a", "W", "c"],
            &["y"],
            vec![
                int_attr("transA", 1),
                int_attr("transB", 1),
                float_attr("alpha", 0.5),
                float_attr("beta", 2.0),
            ],
        );
        let q = QWeight::Int8 {
            q: "W_quantized".into(),
            scale: "W_scale".into(),
            zero_point: "W_zero_point".into(),
        };
        let mut names = Names::default();
        let (mut out, mut consts) = (Vec::new(), Vec::new());
        rewrite_node(&gemm, &q, &mut names, &mut out, &mut consts);
        assert_eq!(
            ops(&out),
            [
                "Transpose",
                "DynamicQuantizeLinear",
                "Mul",
                "MatMulInteger",
                "Cast",
                "Mul",
                "Mul",
                "Mul",
                "Add"
            ]
        );
        assert_eq!(out.last().unwrap().output, ["y"]);
        assert_eq!(consts.iter().map(|c| c.1).collect::<Vec<_>>(), [0.5, 2.0]);
        assert_eq!(out[1].input, [out[0].output[0].clone()], "the transposed A is quantized");
    }

    #[test]
    fn matmul_nbits_replaces_the_node_and_activations_are_quantized_once() {
        let use_ = WeightUse { k: 64, n: 16, layout: Layout::Kn };
        let q = QWeight::NBits {
            b: "W_Q4".into(),
            scales: "W_scales".into(),
            zero_points: None,
            block: 32,
            use_,
        };
        let mut names = Names::default();
        let (mut out, mut consts) = (Vec::new(), Vec::new());
        rewrite_node(
            &node("MatMul", None, "m".into(), &["a", "W"], &["y"], vec![]),
            &q,
            &mut names,
            &mut out,
            &mut consts,
        );
        assert_eq!(ops(&out), ["MatMulNBits"]);
        assert_eq!(out[0].domain.as_deref(), Some(CONTRIB_DOMAIN));
        assert_eq!(out[0].input, ["a", "W_Q4", "W_scales"]);
        let a: Vec<_> = out[0].attribute.iter().map(|a| (a.name.clone().unwrap(), a.i.unwrap())).collect();
        assert_eq!(a, [("K".into(), 64), ("N".into(), 16), ("bits".into(), 4), ("block_size".into(), 32)]);

        let q8 = QWeight::Int8 { q: "q".into(), scale: "s".into(), zero_point: "z".into() };
        let mut out = Vec::new();
        for (i, y) in ["y1", "y2"].iter().enumerate() {
            let n = node("MatMul", None, format!("m{i}"), &["a", "W"], &[y], vec![]);
            rewrite_node(&n, &q8, &mut names, &mut out, &mut consts);
        }
        assert_eq!(ops(&out).iter().filter(|o| **o == "DynamicQuantizeLinear").count(), 1);
    }

    #[test]
    fn fresh_names_never_collide() {
        let mut names = Names::default();
        assert_eq!(names.fresh("W_scale"), "W_scale");
        assert_eq!(names.fresh("W_scale"), "W_scale_1");
        assert_eq!(names.fresh("W_scale"), "W_scale_2");
    }
}
