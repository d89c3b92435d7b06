//! Load-time fusion (`smelt_runtime::fuse`) on models quantized by ONNX Runtime's own tools:
//! `MatMulInteger → Cast → Mul` fused gives the unfused graph's bits; `Transpose → MatMul`
//! fused stays within 1e-5 of it; both keep matching ONNX Runtime's stored outputs; the
//! fused nodes replace the chains they name.

use std::path::{Path, PathBuf};

use smelt_runtime::{Data, Fusions, Session, Value};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/runtime").join(name)
}

fn npz(path: &Path) -> Vec<(String, Value)> {
    smelt_formats::npz::read(path)
        .unwrap()
        .into_iter()
        .map(|(name, a)| {
            let shape: Vec<usize> = a.shape.iter().map(|&d| d as usize).collect();
            let numel = shape.iter().product();
            (name, Value::new(shape, Data::from_le_bytes(a.dtype, &a.data, numel).unwrap()))
        })
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    let Data::F32(x) = &v.data else { panic!("f32 output expected, got {}", v.dtype()) };
    x.clone()
}

fn count(s: &Session, op: &str) -> usize {
    s.node_ops().iter().filter(|o| *o == op).count()
}

fn run(model: &str, fusions: Fusions) -> (Session, Vec<(String, Value)>) {
    let s = Session::load_with(&fixture(&format!("{model}.onnx")), fusions).unwrap();
    let out = s.run(npz(&fixture(&format!("{model}.inputs.npz")))).unwrap();
    (s, out)
}

#[test]
fn fused_int8_chain_gives_the_same_bits_and_matches_onnx_runtime() {
    let model = "tiny-llama.ort-int8-dynamic";
    let (plain, want) = run(model, Fusions::NONE);
    let only_int8 = Fusions { scaled_integer_matmul: true, ..Fusions::NONE };
    let (fused, got) = run(model, only_int8);
    let n = count(&plain, "MatMulInteger");
    assert!(n > 0);
    assert_eq!(count(&fused, "smelt.fused.MatMulIntegerScaled"), n, "every chain fused");
    assert_eq!(count(&fused, "MatMulInteger"), 0);
    assert_eq!(fused.node_count(), plain.node_count() - 2 * n, "Cast and Mul folded into each");
    assert_eq!(got.len(), want.len());
    for ((name, g), (_, w)) in got.iter().zip(&want) {
        let (g, w) = (f32s(g), f32s(w));
        assert!(g.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: bits differ");
    }
    check_against_ort(model, &got, 2e-3);
}

#[test]
fn fused_transposed_b_stays_within_the_kernel_bound() {
    for model in ["tiny-llama.ort-int8-dynamic", "tiny-llama.ort-matmulnbits4"] {
        let (plain, want) = run(model, Fusions::NONE);
        let only_t = Fusions { transposed_b: true, ..Fusions::NONE };
        let (fused, got) = run(model, only_t);
        let t = count(&fused, "smelt.fused.MatMulTransB");
        assert!(t > 0, "{model}: attention's Q·Kᵀ fused");
        assert_eq!(count(&fused, "Transpose"), count(&plain, "Transpose") - t);
        assert_eq!(count(&fused, "MatMul"), count(&plain, "MatMul") - t);
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            let (g, w) = (f32s(g), f32s(w));
            let worst = g.iter().zip(&w).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0f32, f32::max);
            assert!(worst < 1e-5, "{model} {name}: fused differs from unfused by {worst}");
        }
        let (_, all) = run(model, Fusions::ALL);
        check_against_ort(model, &all, 2e-3);
    }
}

/// Every output within `tol` (absolute, on values of order 1) of ONNX Runtime's stored ones.
fn check_against_ort(model: &str, got: &[(String, Value)], tol: f32) {
    let ort = npz(&fixture(&format!("{model}.ort.npz")));
    assert!(!ort.is_empty());
    for (name, w) in &ort {
        let g = &got.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{model}: no output {name}")).1;
        let (g, w) = (f32s(g), f32s(w));
        assert_eq!(g.len(), w.len(), "{model} {name}");
        let worst = g.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= tol, "{model} {name}: max |smelt - onnxruntime| = {worst}");
    }
}

/// A graph input `name` of f32 with fixed dimensions `dims`.
fn info(name: &str, dims: &[i64]) -> smelt_formats::onnx::proto::ValueInfoProto {
    use smelt_formats::onnx::proto::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
    use smelt_formats::onnx::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
    use smelt_formats::onnx::proto::{TensorShapeProto, TypeProto, ValueInfoProto};
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension { value: Some(DimValue::DimValue(d)), ..Default::default() })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `Y = Q · Transpose(K, perm)` built here: the fused node reads `K` in place.
fn transpose_matmul_model(perm: &[i64], q_shape: &[i64], k_shape: &[i64]) -> Session {
    use prost::Message;
    use smelt_formats::onnx::proto::attribute_proto::AttributeType;
    use smelt_formats::onnx::proto::{
        AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto,
    };
    let node = |op: &str, ins: &[&str], out: &str, attribute: Vec<AttributeProto>| NodeProto {
        op_type: Some(op.into()),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        attribute,
        ..Default::default()
    };
    let perm_attr = AttributeProto {
        name: Some("perm".into()),
        ints: perm.to_vec(),
        r#type: Some(AttributeType::Ints as i32),
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(10),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: vec![
                node("Transpose", &["K"], "KT", vec![perm_attr]),
                node("MatMul", &["Q", "KT"], "Y", vec![]),
            ],
            input: vec![info("Q", q_shape), info("K", k_shape)],
            output: vec![ValueInfoProto { name: Some("Y".into()), ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = Path::new("fusion-test.onnx");
    let parsed = smelt_formats::onnx::parse(model.encode_to_vec().into(), path).unwrap();
    Session::from_model(&parsed, path).unwrap()
}

#[test]
fn transpose_then_matmul_reads_k_in_place() {
    // Batch 2 (broadcast against Q's batch of 1 too), 3 rows, k = 4, n = 5.
    for (q_shape, k_shape) in [([2i64, 3, 4], [2i64, 5, 4]), ([1, 3, 4], [2, 5, 4])] {
        let s = transpose_matmul_model(&[0, 2, 1], &q_shape, &k_shape);
        assert_eq!(s.node_ops(), vec!["smelt.fused.MatMulTransB".to_string()]);
        let qn: usize = q_shape.iter().product::<i64>() as usize;
        let kn: usize = k_shape.iter().product::<i64>() as usize;
        let q: Vec<f32> = (0..qn).map(|i| ((i * 37) % 11) as f32 * 0.25 - 1.0).collect();
        let k: Vec<f32> = (0..kn).map(|i| ((i * 53) % 13) as f32 * 0.125 - 0.5).collect();
        let qs: Vec<usize> = q_shape.iter().map(|&d| d as usize).collect();
        let ks: Vec<usize> = k_shape.iter().map(|&d| d as usize).collect();
        let out = s
            .run(vec![("Q".into(), Value::f32(qs, q.clone())), ("K".into(), Value::f32(ks, k.clone()))])
            .unwrap();
        let y = &out[0].1;
        assert_eq!(y.shape, vec![2, 3, 5]);
        let y = f32s(y);
        for b in 0..2 {
            let qb = if q_shape[0] == 1 { 0 } else { b };
            for i in 0..3 {
                for j in 0..5 {
                    let want: f64 =
                        (0..4).map(|kk| q[qb * 12 + i * 4 + kk] as f64 * k[b * 20 + j * 4 + kk] as f64).sum();
                    let got = y[b * 15 + i * 5 + j] as f64;
                    assert!((got - want).abs() < 1e-5, "Y[{b},{i},{j}] = {got}, want {want}");
                }
            }
        }
    }
    // A perm that is not a swap of the last two axes is left alone.
    let s = transpose_matmul_model(&[1, 0, 2], &[2, 2, 4], &[2, 2, 4]);
    assert_eq!(s.node_ops(), vec!["Transpose".to_string(), "MatMul".to_string()]);
}

/// A run's outputs, by name.
type Outputs = Vec<(String, Value)>;

/// torch's export of the tiny Llama (RMSNorm with `Div(1, ·)`, a Cast before the weight,
/// `Constant` nodes) and ONNX Runtime's int8 copy of it, each loaded unfused and with
/// `fusions` and run on its stored inputs; the outputs must have the same bits. Returns, per
/// model: its name, the unfused and fused sessions, and the fused outputs.
fn fused_llamas(fusions: Fusions) -> Vec<(&'static str, Session, Session, Outputs)> {
    let torch = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx/torch-tiny-llama.onnx");
    let ort = fixture("tiny-llama.ort-int8-dynamic.onnx");
    [("torch-tiny-llama", torch), ("tiny-llama.ort-int8-dynamic", ort)]
        .into_iter()
        .map(|(model, path)| {
            let feeds = npz(&fixture(&format!("{model}.inputs.npz")));
            let plain = Session::load_with(&path, Fusions::NONE).unwrap();
            let fused = Session::load_with(&path, fusions).unwrap();
            let (want, got) = (plain.run(feeds.clone()).unwrap(), fused.run(feeds).unwrap());
            assert_eq!(got.len(), want.len());
            for ((name, g), (_, w)) in got.iter().zip(&want) {
                let (g, w) = (f32s(g), f32s(w));
                assert!(
                    g.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{model} {name}: bits differ"
                );
            }
            (model, plain, fused, got)
        })
        .collect()
}

#[test]
fn fused_rms_norm_gives_the_same_bits() {
    for (model, plain, fused, got) in fused_llamas(Fusions { rms_norm: true, ..Fusions::NONE }) {
        let norms = count(&plain, "Pow");
        assert!(norms > 0);
        assert_eq!(count(&fused, "smelt.fused.RmsNorm"), norms, "{model}: every norm fused");
        assert_eq!(count(&fused, "Pow") + count(&fused, "ReduceMean") + count(&fused, "Sqrt"), 0, "{model}");
        // Pow, ReduceMean, Add, Sqrt, Div, Mul, Cast, Mul: eight nodes become one.
        assert_eq!(fused.node_count(), plain.node_count() - 7 * norms, "{model}");
        check_against_ort(model, &got, 2e-3);
    }
}

/// An RMSNorm chain over `X` (`[rows, len]`) as `gen_llama_onnx.py` writes it (Reciprocal,
/// initializers), with the exponent, the reduced axis and the graph outputs given.
fn rms_norm_model(rows: i64, len: i64, exponent: f32, axes: i64, extra_output: Option<&str>) -> Session {
    use prost::Message;
    use smelt_formats::onnx::proto::attribute_proto::AttributeType;
    use smelt_formats::onnx::proto::{
        AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto,
    };
    let node = |op: &str, ins: &[&str], out: &str, attribute: Vec<AttributeProto>| NodeProto {
        op_type: Some(op.into()),
        name: Some(format!("{op}_{out}")),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        attribute,
        ..Default::default()
    };
    let tensor = |name: &str, dims: &[i64], v: Vec<f32>| TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(1),
        float_data: v,
        ..Default::default()
    };
    let attr = |name: &str, ints: Vec<i64>, ty: AttributeType, i: Option<i64>| AttributeProto {
        name: Some(name.into()),
        ints,
        i,
        r#type: Some(ty as i32),
        ..Default::default()
    };
    let x = info("X", &[rows, len]);
    let weight: Vec<f32> =
        (0..len).map(|j| 0.5 + (j % 7) as f32 * 0.125 - if j == 3 { 2.0 } else { 0.0 }).collect();
    let mut outputs = vec![ValueInfoProto { name: Some("Y".into()), ..Default::default() }];
    if let Some(o) = extra_output {
        outputs.push(ValueInfoProto { name: Some(o.into()), ..Default::default() });
    }
    let model = ModelProto {
        ir_version: Some(10),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: vec![
                node("Pow", &["X", "two"], "sq", vec![]),
                node(
                    "ReduceMean",
                    &["sq"],
                    "mean",
                    vec![
                        attr("axes", vec![axes], AttributeType::Ints, None),
                        attr("keepdims", vec![], AttributeType::Int, Some(1)),
                    ],
                ),
                node("Add", &["mean", "eps"], "var", vec![]),
                node("Sqrt", &["var"], "root", vec![]),
                node("Reciprocal", &["root"], "inv", vec![]),
                node("Mul", &["X", "inv"], "normed", vec![]),
                node("Mul", &["w", "normed"], "Y", vec![]),
            ],
            initializer: vec![
                tensor("two", &[], vec![exponent]),
                tensor("eps", &[1], vec![1e-6]),
                tensor("w", &[len], weight),
            ],
            input: vec![x],
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = Path::new("rms-norm-test.onnx");
    let parsed = smelt_formats::onnx::parse(model.encode_to_vec().into(), path).unwrap();
    Session::from_model(&parsed, path).unwrap()
}

#[test]
fn rms_norm_chain_fuses_with_reciprocal_and_keeps_every_bit() {
    // 19 rows (not a multiple of the 8 summed side by side) of 67, with a zero row, a row of
    // huge values (the squares overflow f32), tiny ones (subnormal squares), a NaN and ±∞.
    let (rows, len) = (19usize, 67usize);
    let mut x: Vec<f32> = (0..rows * len).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
    x[2 * len..3 * len].fill(0.0);
    x[4 * len..5 * len].iter_mut().enumerate().for_each(|(j, v)| *v = 3e19 * (j as f32 - 30.0));
    x[5 * len..6 * len].iter_mut().enumerate().for_each(|(j, v)| *v = 1e-30 * (j as f32 + 1.0));
    x[7 * len + 5] = f32::NAN;
    x[9 * len + 1] = f32::INFINITY;
    x[10 * len] = f32::NEG_INFINITY;
    let feeds = vec![("X".to_string(), Value::f32(vec![rows, len], x))];
    let fused = rms_norm_model(rows as i64, len as i64, 2.0, -1, None);
    assert_eq!(fused.node_ops(), vec!["smelt.fused.RmsNorm".to_string()]);
    let got = fused.run(feeds.clone()).unwrap();
    let plain_ops = ["Pow", "ReduceMean", "Add", "Sqrt", "Reciprocal", "Mul", "Mul"];
    // The same graph unfused: every node kept when the chain's conditions fail...
    for (exponent, axes, extra, why) in [
        (3.0, -1, None, "Pow(x, 3)"),
        (2.0, 0, None, "another axis"),
        (2.0, -1, Some("mean"), "mean is an output"),
    ] {
        let s = rms_norm_model(rows as i64, len as i64, exponent, axes, extra);
        assert_eq!(s.node_ops(), plain_ops.map(String::from).to_vec(), "{why}: not fused");
    }
    // ...and with fusion off, the reference bits.
    let s = rms_norm_model(rows as i64, len as i64, 2.0, -1, Some("mean"));
    let want = s.run(feeds).unwrap();
    let (g, w) = (f32s(&got[0].1), f32s(&want[0].1));
    assert_eq!(g.len(), rows * len);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "element {i}: fused {a}, unfused {b}"
        );
    }
    assert!(g[2 * len..3 * len].iter().all(|v| *v == 0.0), "the zero row stays zero (eps keeps 1/√ finite)");
    assert!(g[4 * len..5 * len].iter().all(|v| *v == 0.0 || v.is_nan()), "squares past f32::MAX: 1/∞ = 0");
}

#[test]
fn fused_swiglu_gives_the_same_bits() {
    for (model, plain, fused, _) in fused_llamas(Fusions { swiglu: true, ..Fusions::NONE }) {
        let gates = count(&plain, "Sigmoid");
        assert!(gates > 0);
        assert_eq!(count(&fused, "smelt.fused.SwiGlu"), gates, "{model}: every gate fused");
        assert_eq!(fused.node_count(), plain.node_count() - 2 * gates, "{model}: Sigmoid, Mul, Mul into one");
    }
}

/// `Y = g · σ(g) · up` as three nodes over inputs of the given shapes.
fn swiglu_model(g_shape: &[i64], up_shape: &[i64]) -> (Session, Session) {
    use smelt_formats::onnx::proto::NodeProto;
    let node = |op: &str, ins: &[&str], out: &str| NodeProto {
        op_type: Some(op.into()),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        ..Default::default()
    };
    let nodes = vec![
        node("Sigmoid", &["G"], "s"),
        node("Mul", &["s", "G"], "silu"),
        node("Mul", &["U", "silu"], "Y"),
    ];
    graph_sessions(nodes, vec![], vec![info("G", g_shape), info("U", up_shape)], Fusions::NONE)
}

/// A graph of `nodes` (opset 17) with output `Y`, loaded with every fusion and with `plain`.
fn graph_sessions(
    node: Vec<smelt_formats::onnx::proto::NodeProto>,
    initializer: Vec<smelt_formats::onnx::proto::TensorProto>,
    input: Vec<smelt_formats::onnx::proto::ValueInfoProto>,
    plain: Fusions,
) -> (Session, Session) {
    use prost::Message;
    use smelt_formats::onnx::proto::{GraphProto, ModelProto, OperatorSetIdProto, ValueInfoProto};
    let model = ModelProto {
        ir_version: Some(10),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node,
            initializer,
            input,
            output: vec![ValueInfoProto { name: Some("Y".into()), ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = Path::new("fusion-test.onnx");
    let parsed = smelt_formats::onnx::parse(model.encode_to_vec().into(), path).unwrap();
    (
        Session::from_model_with(&parsed, path, Fusions::ALL).unwrap(),
        Session::from_model_with(&parsed, path, plain).unwrap(),
    )
}

#[test]
fn swiglu_keeps_every_bit_in_chunks_and_when_broadcasting() {
    // 2 × 1250 elements (chunks of 1024 with a tail, over the pool), then an `up` that
    // broadcasts (the general path); NaN, ±∞, huge and tiny gates.
    for (g_shape, up_shape) in
        [([2usize, 1250], [2usize, 1250]), ([2, 1250], [1, 1250]), ([50, 700], [50, 700])]
    {
        let gn = g_shape.iter().product::<usize>();
        let un = up_shape.iter().product::<usize>();
        let mut g: Vec<f32> = (0..gn).map(|i| ((i * 7919) % 2001) as f32 / 100.0 - 10.0).collect();
        g[3] = f32::NAN;
        g[4] = f32::INFINITY;
        g[5] = f32::NEG_INFINITY;
        g[6] = 1e30;
        g[7] = -1e-30;
        g[1100] = -90.0;
        let up: Vec<f32> = (0..un).map(|i| ((i * 104_729) % 997) as f32 / 300.0 - 1.5).collect();
        let (fused, plain) = swiglu_model(&g_shape.map(|d| d as i64), &up_shape.map(|d| d as i64));
        assert_eq!(fused.node_ops(), vec!["smelt.fused.SwiGlu".to_string()]);
        let feeds = vec![
            ("G".to_string(), Value::f32(g_shape.to_vec(), g)),
            ("U".to_string(), Value::f32(up_shape.to_vec(), up)),
        ];
        let (got, want) = (fused.run(feeds.clone()).unwrap(), plain.run(feeds).unwrap());
        let (a, b) = (f32s(&got[0].1), f32s(&want[0].1));
        assert_eq!(got[0].1.shape, want[0].1.shape);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{g_shape:?}: element {i}: {x} vs {y}"
            );
        }
    }
}

/// Grouped-query attention as torch writes `repeat_kv`: `Y = A · Reshape(Expand(Unsqueeze(X,
/// [2]), to), target)`, or with `trans` `A · Transpose(·, [0, 1, 3, 2])`; `to` and `target`
/// are initializers. Returns the sessions with every fusion and with every one but this (with
/// `trans` both read `X` through `MatMulTransB`, whose summation order is its own).
fn grouped_kv_model(
    a: &[i64],
    x: &[i64],
    to: &[i64],
    target: &[i64],
    axis: i64,
    trans: bool,
) -> (Session, Session) {
    grouped_kv_div_model(a, x, to, target, axis, trans, None)
}

/// [`grouped_kv_model`], its product then divided (`Div`) by the initializer `d` of the given
/// dims and values when `div` is given.
fn grouped_kv_div_model(
    a: &[i64],
    x: &[i64],
    to: &[i64],
    target: &[i64],
    axis: i64,
    trans: bool,
    div: Option<(&[i64], &[f32])>,
) -> (Session, Session) {
    use smelt_formats::onnx::proto::attribute_proto::AttributeType;
    use smelt_formats::onnx::proto::{AttributeProto, NodeProto, TensorProto};
    let node = |op: &str, ins: &[&str], out: &str, attribute: Vec<AttributeProto>| NodeProto {
        op_type: Some(op.into()),
        name: Some(format!("{op}_{out}")),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        attribute,
        ..Default::default()
    };
    let ints = |name: &str, v: &[i64]| TensorProto {
        name: Some(name.into()),
        dims: vec![v.len() as i64],
        data_type: Some(7),
        int64_data: v.to_vec(),
        ..Default::default()
    };
    let mut nodes = vec![
        node("Unsqueeze", &["X", "axes"], "u", vec![]),
        node("Expand", &["u", "to"], "e", vec![]),
        node("Reshape", &["e", "target"], "r", vec![]),
    ];
    if trans {
        let perm = AttributeProto {
            name: Some("perm".into()),
            ints: vec![0, 1, 3, 2],
            r#type: Some(AttributeType::Ints as i32),
            ..Default::default()
        };
        nodes.push(node("Transpose", &["r"], "rt", vec![perm]));
    }
    let product = if div.is_some() { "P" } else { "Y" };
    nodes.push(node("MatMul", &["A", if trans { "rt" } else { "r" }], product, vec![]));
    let mut initializer = vec![ints("axes", &[axis]), ints("to", to), ints("target", target)];
    if let Some((dims, values)) = div {
        nodes.push(node("Div", &["P", "d"], "Y", vec![]));
        initializer.push(TensorProto {
            name: Some("d".into()),
            dims: dims.to_vec(),
            data_type: Some(1),
            float_data: values.to_vec(),
            ..Default::default()
        });
    }
    graph_sessions(
        nodes,
        initializer,
        vec![info("A", a), info("X", x)],
        Fusions { grouped_kv: false, ..Fusions::ALL },
    )
}

/// Runs both sessions of a grouped-product model on fixed-pattern `A` and `X` and requires the
/// same shape and bits.
fn same_grouped_products(fused: &Session, plain: &Session, a_shape: &[i64], x_shape: &[i64], what: &str) {
    let an = a_shape.iter().product::<i64>() as usize;
    let xn = x_shape.iter().product::<i64>() as usize;
    let a: Vec<f32> = (0..an).map(|i| ((i * 7919) % 2001) as f32 / 700.0 - 1.3).collect();
    let x: Vec<f32> = (0..xn).map(|i| ((i * 104_729) % 997) as f32 / 300.0 - 1.5).collect();
    let dims = |s: &[i64]| s.iter().map(|&d| d as usize).collect::<Vec<_>>();
    let feeds = vec![
        ("A".to_string(), Value::f32(dims(a_shape), a)),
        ("X".to_string(), Value::f32(dims(x_shape), x)),
    ];
    let (got, want) = (fused.run(feeds.clone()).unwrap(), plain.run(feeds).unwrap());
    assert_eq!(got[0].1.shape, want[0].1.shape, "{a_shape:?} {x_shape:?} {what}");
    let (g, w) = (f32s(&got[0].1), f32s(&want[0].1));
    assert!(
        g.iter().zip(&w).all(|(p, q)| p.to_bits() == q.to_bits()),
        "{a_shape:?} {x_shape:?} {what}: the fused product differs"
    );
}

#[test]
fn grouped_kv_reads_the_heads_in_place_and_keeps_every_bit() {
    // (A, X, Expand's shape, Reshape's target, B transposed): the repeat read in place —
    // 1s in the Expand shape, `0` and `-1` in the target, batch 2, one row of A (decode),
    // enough rows for the blocked kernels (prefill), rep = 1 — then chains of another form,
    // which the fused node must compute as the three ops define them: an Expand that also
    // broadcasts the batch, a Reshape that does not merge the heads.
    type Case<'a> = (&'a [i64], &'a [i64], &'a [i64], &'a [i64], bool);
    let cases: [Case<'_>; 9] = [
        (&[1, 6, 4, 5], &[1, 2, 5, 3], &[1, 2, 3, 1, 1], &[1, 6, -1, 3], false),
        (&[1, 6, 4, 3], &[1, 2, 5, 3], &[1, 2, 3, 1, 1], &[1, 6, -1, 3], true),
        (&[2, 8, 1, 7], &[2, 2, 7, 16], &[2, 2, 4, 7, 16], &[0, 8, -1, 16], false),
        (&[2, 8, 1, 16], &[2, 2, 7, 16], &[2, 2, 4, 7, 16], &[0, 8, -1, 16], true),
        (&[1, 4, 40, 33], &[1, 2, 40, 33], &[1, 2, 2, 1, 1], &[1, 4, 40, 33], true),
        (&[1, 4, 40, 40], &[1, 2, 40, 33], &[1, 2, 2, 1, 1], &[1, 4, 40, 33], false),
        (&[1, 3, 2, 4], &[1, 3, 4, 5], &[1, 3, 1, 4, 5], &[1, 3, 4, 5], false),
        (&[2, 6, 4, 5], &[1, 2, 5, 3], &[2, 2, 3, 5, 3], &[2, 6, 5, 3], false),
        (&[1, 2, 4, 15], &[1, 2, 5, 3], &[1, 2, 3, 1, 1], &[1, 2, 15, 3], false),
    ];
    for (a_shape, x_shape, to, target, trans) in cases {
        let (fused, plain) = grouped_kv_model(a_shape, x_shape, to, target, 2, trans);
        assert_eq!(
            fused.node_ops(),
            vec!["smelt.fused.MatMulGroupedB".to_string()],
            "{a_shape:?} {x_shape:?}"
        );
        same_grouped_products(&fused, &plain, a_shape, x_shape, &format!("{to:?} {target:?} trans={trans}"));
    }
    // Another Unsqueeze axis is another chain: left alone.
    let (fused, _) =
        grouped_kv_model(&[1, 2, 4, 5], &[1, 2, 5, 3], &[1, 2, 1, 1, 1], &[1, 2, 5, 3], 1, false);
    assert_eq!(fused.node_ops(), vec!["Unsqueeze", "Expand", "Reshape", "MatMul"]);
    // A shape Expand cannot take fails as the unfused graph does, naming the fused node.
    let (fused, plain) =
        grouped_kv_model(&[1, 6, 4, 5], &[1, 2, 5, 3], &[1, 3, 3, 1, 1], &[1, 6, -1, 3], 2, false);
    let feeds = vec![
        ("A".to_string(), Value::f32(vec![1, 6, 4, 5], vec![0.5; 120])),
        ("X".to_string(), Value::f32(vec![1, 2, 5, 3], vec![0.25; 30])),
    ];
    let (e1, e2) =
        (fused.run(feeds.clone()).unwrap_err().to_string(), plain.run(feeds).unwrap_err().to_string());
    assert!(e1.contains("does not broadcast") && e2.contains("does not broadcast"), "{e1}\n{e2}");
    assert!(e1.contains("Expand_e"), "{e1}");
}

#[test]
fn the_attention_scale_divides_inside_the_grouped_product() {
    // A `Div` of the grouped product by a one-element f32 constant (rank 0 or 1) becomes part
    // of it, decode and prefill shapes, B transposed or not; a divisor of several values
    // stays a `Div`. The same bits as the unfused graph each time.
    type Case<'a> = (&'a [i64], &'a [i64], &'a [i64], &'a [i64], bool);
    let cases: [Case<'_>; 3] = [
        (&[2, 8, 1, 16], &[2, 2, 7, 16], &[2, 2, 4, 7, 16], &[0, 8, -1, 16], true),
        (&[1, 4, 40, 33], &[1, 2, 40, 33], &[1, 2, 2, 1, 1], &[1, 4, 40, 33], true),
        (&[1, 4, 40, 40], &[1, 2, 40, 33], &[1, 2, 2, 1, 1], &[1, 4, 40, 33], false),
    ];
    for (a_shape, x_shape, to, target, trans) in cases {
        let n = if trans { x_shape[2] } else { x_shape[3] } as usize;
        let many: Vec<f32> = (0..n).map(|j| 1.5 + j as f32 * 0.25).collect();
        let divisors: [(&[i64], &[f32], bool); 3] =
            [(&[], &[2.828_427], true), (&[1], &[0.3], true), (&[n as i64], &many, false)];
        for (dims, values, folds) in divisors {
            let (fused, plain) =
                grouped_kv_div_model(a_shape, x_shape, to, target, 2, trans, Some((dims, values)));
            let mut want_ops = vec!["smelt.fused.MatMulGroupedB".to_string()];
            if !folds {
                want_ops.push("Div".into());
            }
            assert_eq!(fused.node_ops(), want_ops, "{a_shape:?} divisor {dims:?}");
            same_grouped_products(&fused, &plain, a_shape, x_shape, &format!("divisor {dims:?}"));
        }
    }
}

#[test]
fn torch_repeat_kv_fuses_on_both_sides_and_keeps_every_bit() {
    // Alone, the values' side fuses (the keys' MatMul reads a Transpose); beside the
    // transposed-B fusion, the keys' too, with torch's `Mul` by √scale moved onto the
    // unrepeated keys. Either way the same bits as without it.
    for (model, plain, fused, _) in fused_llamas(Fusions { grouped_kv: true, ..Fusions::NONE }) {
        let layers = count(&plain, "Softmax");
        assert!(layers > 0);
        assert_eq!(
            count(&fused, "smelt.fused.MatMulGroupedB"),
            layers,
            "{model}: the values' side of each layer"
        );
        assert_eq!(count(&fused, "Expand"), count(&plain, "Expand") - layers, "{model}");
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx/torch-tiny-llama.onnx");
    let feeds = npz(&fixture("torch-tiny-llama.inputs.npz"));
    let base = Fusions { transposed_b: true, ..Fusions::NONE };
    let plain = Session::load_with(&path, base).unwrap();
    let fused = Session::load_with(&path, Fusions { grouped_kv: true, ..base }).unwrap();
    let layers = count(&plain, "Softmax");
    assert_eq!(count(&fused, "smelt.fused.MatMulGroupedB"), 2 * layers, "keys and values of each layer");
    assert_eq!(count(&fused, "Expand"), count(&plain, "Expand") - 2 * layers);
    let (want, got) = (plain.run(feeds.clone()).unwrap(), fused.run(feeds).unwrap());
    for ((name, g), (_, w)) in got.iter().zip(&want) {
        let (g, w) = (f32s(g), f32s(w));
        assert!(g.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: bits differ");
    }
}
