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
    let only_int8 = Fusions { scaled_integer_matmul: true, transposed_b: false };
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
        let only_t = Fusions { scaled_integer_matmul: false, transposed_b: true };
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

/// `Y = Q · Transpose(K, perm)` built here: the fused node reads `K` in place.
fn transpose_matmul_model(perm: &[i64], q_shape: &[i64], k_shape: &[i64]) -> Session {
    use prost::Message;
    use smelt_formats::onnx::proto::attribute_proto::AttributeType;
    use smelt_formats::onnx::proto::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
    use smelt_formats::onnx::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
    use smelt_formats::onnx::proto::{
        AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
        ValueInfoProto,
    };
    let info = |name: &str, dims: &[i64]| ValueInfoProto {
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
