//! Opset imports of the written model. A quantized weight may need a newer default-domain
//! opset than the input has (per-axis DequantizeLinear: 13; blocked int4: 21). Raising it is
//! only sound when no node's operator changed meaning in between, so the nodes whose schema
//! changed incompatibly are upgraded (the `axes` attribute of the Reduce family became an
//! input at 18; `Split` needs `num_outputs` from 18 when it has no `split` input) and the rest
//! refused by name. Inputs below opset 13 are not raised.

use smelt_formats::onnx::proto::attribute_proto::AttributeType;
use smelt_formats::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
};

use super::rewrite::{node, CONTRIB_DOMAIN};
use super::weights::is_default_domain;

/// Reduce operators whose `axes` attribute became an input at opset 18.
const REDUCE_18: &[&str] = &[
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
];

/// Operators whose meaning changed incompatibly at the given opset, which smelt does not
/// upgrade.
const REFUSED: &[(&str, i64)] = &[("DFT", 20), ("GridSample", 20), ("GroupNormalization", 21)];

/// Makes the default-domain opset at least `needed` (no-op for 0), upgrading nodes as needed.
pub(crate) fn require(model: &mut ModelProto, needed: i64) -> Result<(), String> {
    let current = model
        .opset_import
        .iter()
        .find(|o| is_default_domain(o.domain.as_deref()))
        .and_then(|o| o.version)
        .unwrap_or(0);
    if needed == 0 || current >= needed {
        return Ok(());
    }
    if current < 13 {
        return Err(format!(
            "the quantized graph needs opset {needed} and the model has opset {current}; smelt raises opsets from 13 up only"
        ));
    }
    let mut counter = 0usize;
    if let Some(g) = model.graph.as_mut() {
        upgrade_graph(g, current, needed, &mut counter)?;
    }
    for f in &model.functions {
        if let Some(n) =
            f.node.iter().find(|n| is_default_domain(n.domain.as_deref()) && changes(n, current, needed))
        {
            return Err(format!(
                "function '{}' uses {} which changed between opset {current} and {needed}",
                f.name.as_deref().unwrap_or(""),
                n.op_type.as_deref().unwrap_or("")
            ));
        }
    }
    match model.opset_import.iter_mut().find(|o| is_default_domain(o.domain.as_deref())) {
        Some(o) => o.version = Some(needed),
        None => {
            model.opset_import.push(OperatorSetIdProto { domain: Some(String::new()), version: Some(needed) })
        }
    }
    // Opset 21 needs IR 10, opset 13 IR 7.
    let ir = if needed >= 21 {
        10
    } else if needed >= 13 {
        7
    } else {
        5
    };
    if model.ir_version.unwrap_or(0) < ir {
        model.ir_version = Some(ir);
    }
    Ok(())
}

/// True when `n` must be rewritten or refused to move from opset `from` to `to`.
fn changes(n: &NodeProto, from: i64, to: i64) -> bool {
    let op = n.op_type.as_deref().unwrap_or("");
    let crosses = |v: i64| from < v && to >= v;
    (crosses(18) && (REDUCE_18.contains(&op) || op == "Split"))
        || REFUSED.iter().any(|(o, v)| *o == op && crosses(*v))
}

fn upgrade_graph(g: &mut GraphProto, from: i64, to: i64, counter: &mut usize) -> Result<(), String> {
    let crosses = |v: i64| from < v && to >= v;
    let mut out = Vec::with_capacity(g.node.len());
    for mut n in std::mem::take(&mut g.node) {
        for a in &mut n.attribute {
            if let Some(sg) = a.g.as_mut() {
                upgrade_graph(sg, from, to, counter)?;
            }
            for sg in &mut a.graphs {
                upgrade_graph(sg, from, to, counter)?;
            }
        }
        if !is_default_domain(n.domain.as_deref()) {
            out.push(n);
            continue;
        }
        let op = n.op_type.clone().unwrap_or_default();
        if let Some((_, v)) = REFUSED.iter().find(|(o, v)| *o == op && crosses(*v)) {
            return Err(format!(
                "node '{}' ({op}) changed meaning at opset {v}; smelt does not upgrade it, so the quantized graph cannot use opset {to}",
                n.name.as_deref().unwrap_or("")
            ));
        }
        if crosses(18) && REDUCE_18.contains(&op.as_str()) {
            if let Some(i) = n.attribute.iter().position(|a| a.name.as_deref() == Some("axes")) {
                let axes = n.attribute.remove(i).ints;
                *counter += 1;
                let name = format!("{}_axes_opset18_{counter}", n.name.as_deref().unwrap_or(&op));
                out.push(constant_i64(&name, &axes));
                n.input.truncate(1);
                n.input.push(name);
            }
        }
        if crosses(18) && op == "Split" {
            let has_split = n.input.get(1).is_some_and(|s| !s.is_empty());
            let has_num = n.attribute.iter().any(|a| a.name.as_deref() == Some("num_outputs"));
            if !has_split && !has_num {
                n.attribute.push(AttributeProto {
                    name: Some("num_outputs".into()),
                    r#type: Some(AttributeType::Int as i32),
                    i: Some(n.output.len() as i64),
                    ..Default::default()
                });
            }
        }
        out.push(n);
    }
    g.node = out;
    Ok(())
}

/// A `Constant` node holding a 1-D int64 tensor.
fn constant_i64(output: &str, v: &[i64]) -> NodeProto {
    let t = TensorProto {
        dims: vec![v.len() as i64],
        data_type: Some(7),
        raw_data: Some(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>().into()),
        ..Default::default()
    };
    let mut n = node("Constant", None, format!("{output}_Constant"), &[], &[output], vec![]);
    n.attribute.push(AttributeProto {
        name: Some("value".into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(Box::new(t)),
        ..Default::default()
    });
    n
}

/// Imports com.microsoft opset 1 unless the model already imports that domain.
pub(crate) fn import_contrib(model: &mut ModelProto) {
    if !model.opset_import.iter().any(|o| o.domain.as_deref() == Some(CONTRIB_DOMAIN)) {
        model.opset_import.push(OperatorSetIdProto { domain: Some(CONTRIB_DOMAIN.into()), version: Some(1) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smelt_formats::onnx::proto::GraphProto;

    fn model(opset: i64, nodes: Vec<NodeProto>) -> ModelProto {
        ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
            graph: Some(GraphProto { node: nodes, ..Default::default() }),
            ..Default::default()
        }
    }

    fn reduce_mean() -> NodeProto {
        let mut n = node("ReduceMean", None, "mean".into(), &["x"], &["y"], vec![]);
        n.attribute.push(AttributeProto {
            name: Some("axes".into()),
            r#type: Some(AttributeType::Ints as i32),
            ints: vec![-1],
            ..Default::default()
        });
        n
    }

    #[test]
    fn raising_past_18_turns_reduce_axes_into_a_constant_input() {
        let mut m =
            model(17, vec![reduce_mean(), node("Split", None, "split".into(), &["y"], &["a", "b"], vec![])]);
        require(&mut m, 21).unwrap();
        assert_eq!(m.opset_import[0].version, Some(21));
        assert_eq!(m.ir_version, Some(10));
        let g = m.graph.unwrap();
        let ops: Vec<_> = g.node.iter().map(|n| n.op_type.clone().unwrap()).collect();
        assert_eq!(ops, ["Constant", "ReduceMean", "Split"]);
        assert_eq!(g.node[1].input, vec!["x".to_string(), g.node[0].output[0].clone()]);
        assert!(g.node[1].attribute.is_empty());
        let t = g.node[0].attribute[0].t.as_ref().unwrap();
        assert_eq!(t.raw_data.as_deref(), Some(&(-1i64).to_le_bytes()[..]));
        assert_eq!(g.node[2].attribute[0].i, Some(2), "Split gets num_outputs");
    }

    #[test]
    fn no_change_when_the_opset_suffices() {
        let mut m = model(21, vec![reduce_mean()]);
        require(&mut m, 13).unwrap();
        assert_eq!(m.graph.unwrap().node[0].attribute.len(), 1);
    }

    #[test]
    fn changed_ops_and_old_opsets_are_refused() {
        let gn = node("GroupNormalization", None, "gn".into(), &["x", "s", "b"], &["y"], vec![]);
        let err = require(&mut model(18, vec![gn]), 21).unwrap_err();
        assert!(err.contains("GroupNormalization"), "{err}");
        let err = require(&mut model(11, vec![]), 13).unwrap_err();
        assert!(err.contains("from 13 up"), "{err}");
    }

    #[test]
    fn contrib_import_added_once() {
        let mut m = model(17, vec![]);
        import_contrib(&mut m);
        import_contrib(&mut m);
        assert_eq!(m.opset_import.iter().filter(|o| o.domain.as_deref() == Some(CONTRIB_DOMAIN)).count(), 1);
    }
}
