//! Quantized ops the ONNX node tests do not cover (com.microsoft MatMulNBits with 2/4/8 bits,
//! packed and float zero points, g_idx and bias; MatMulBnb4 FP4 and NF4; MatMulInteger with
//! per-column zero points; QLinearMatMul per column; blocked int4 DequantizeLinear), and a
//! Resize that shrinks one axis and grows another, each a single-node model run by [`Session`] and compared with onnxruntime's CPU output on the same
//! inputs (fixtures/runtime/ops, made by tools/fixtures/gen_runtime_ops.py).

use std::path::{Path, PathBuf};

use smelt_runtime::{Data, Session, Value};

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/runtime/ops")
}

fn load_npz(p: &Path) -> Vec<(String, Value)> {
    smelt_formats::npz::read(p)
        .unwrap()
        .into_iter()
        .map(|(n, a)| {
            let shape: Vec<usize> = a.shape.iter().map(|&d| d as usize).collect();
            let numel = shape.iter().product();
            (n, Value::new(shape, Data::from_le_bytes(a.dtype, &a.data, numel).unwrap()))
        })
        .collect()
}

fn check(case: &str) {
    let dir = ops_dir();
    let session = Session::load(&dir.join(format!("{case}.onnx"))).unwrap_or_else(|e| panic!("{case}: {e}"));
    let got = session
        .run(load_npz(&dir.join(format!("{case}.inputs.npz"))))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let want = load_npz(&dir.join(format!("{case}.ort.npz")));
    assert_eq!(got.len(), want.len());
    for ((gn, g), (wn, w)) in got.iter().zip(&want) {
        assert_eq!(gn, wn);
        assert_eq!(g.shape, w.shape, "{case}/{gn}");
        assert_eq!(g.dtype(), w.dtype(), "{case}/{gn}");
        match (&g.data, &w.data) {
            (Data::F32(a), Data::F32(b)) => {
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 1e-5 + 1e-6 * y.abs(),
                        "{case}/{gn}: smelt {x} vs onnxruntime {y}"
                    );
                }
            }
            // Integer outputs (MatMulInteger, QLinearMatMul) are exact.
            _ => assert_eq!(g.data, w.data, "{case}/{gn}"),
        }
    }
}

#[test]
fn matmulnbits_4bit_act_order_g_idx_and_bias() {
    check("matmulnbits-q4-gidx-bias");
}

#[test]
fn matmulnbits_4bit_default_zero_point_k_not_a_block_multiple() {
    check("matmulnbits-q4-nozp-oddk");
}

#[test]
fn matmulnbits_4bit_float_zero_points() {
    check("matmulnbits-q4-floatzp");
}

#[test]
fn matmulnbits_8bit_packed_zero_points() {
    check("matmulnbits-q8-zp");
}

#[test]
fn matmulnbits_8bit_one_row_default_zero_point_k_not_a_block_multiple() {
    check("matmulnbits-q8-nozp-oddk-1row");
}

#[test]
fn matmulnbits_8bit_one_row_packed_zero_points() {
    check("matmulnbits-q8-zp-1row");
}

#[test]
fn matmulnbits_8bit_two_rows_packed_zero_points_and_bias() {
    check("matmulnbits-q8-zp-bias-2rows");
}

#[test]
fn matmulnbits_2bit_packed_zero_points() {
    check("matmulnbits-q2-zp");
}

#[test]
fn matmulbnb4_fp4_and_nf4() {
    check("matmulbnb4-fp4");
    check("matmulbnb4-nf4");
}

#[test]
fn matmulinteger_per_column_zero_point_batched() {
    check("matmulinteger-percol-zp");
}

#[test]
fn qlinearmatmul_per_column_scale_and_zero_point() {
    check("qlinearmatmul-percol");
}

#[test]
fn dequantizelinear_blocked_int4_initializer() {
    check("dequantize-int4-blocked");
}

#[test]
fn resize_shrinking_one_axis_and_growing_another() {
    // [1, 1, 4, 65] to [1, 1, 65, 4], linear: the shrinking axis runs first (the cap side of
    // this is in tests/value_cap.rs).
    check("resize-linear-shrink-and-grow");
}

#[test]
fn malformed_contrib_sizes_are_errors_not_panics() {
    // MatMulNBits with K = 80 but B packed for K = 64 (tools/fixtures/gen_runtime_ops.py): the
    // kernels assert on sizes, so the op must refuse first, naming the node and the shapes.
    let session = Session::load(&ops_dir().join("matmulnbits-bad-k.onnx")).unwrap();
    let err = session.run(vec![("A".into(), Value::f32(vec![2, 3, 80], vec![0.5; 480]))]).unwrap_err();
    match err {
        smelt_runtime::RuntimeError::ShapeMismatch { node, op_type, a, b, .. } => {
            assert_eq!((node.as_str(), op_type.as_str()), ("#0", "MatMulNBits"));
            assert_eq!(a, vec![8, 2, 32]);
            assert_eq!(b, vec![8, 3, 32]);
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
}
