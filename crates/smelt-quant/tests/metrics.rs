//! smelt's error metrics against numpy's float64 computation of the same definitions on real
//! quantization results (fixtures/quant/metrics). numpy sums pairwise in f64 and smelt in f32
//! blocks gathered in f64 (`smelt_kernels::error_lanes`), so the figures agree within the bound
//! smelt documents (each sum within 4e-6 relative: about 4e-5 dB of SQNR, 1.2e-5 of cosine;
//! a few 1e-7 in practice), not bit for bit.

mod quant_refs;

use quant_refs::{f32s, f64s};
use smelt_quant::metrics::{error_metrics, ErrorMetrics};
use smelt_quant::SchemeError;

/// (metrics case, reference dequantized values)
const CASES: &[(&str, &str)] = &[
    ("w_32x256.nf4", "nf4/w_32x256.dequant.npy"),
    ("w_32x256.int8.sym.axis0", "int8/w_32x256.sym.axis0.dequant.npy"),
    ("w_32x256.int4.g128.asym", "int4/w_32x256.g128.asym.dequant.npy"),
    ("w_32x256.ternary", "ternary/w_32x256.dequant.npy"),
];

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "{what}: smelt {got:e}, numpy {want:e}");
}

#[test]
fn matches_numpy_float64() {
    let (_, w) = f32s("inputs/w_32x256.npy");
    for &(case, deq) in CASES {
        let (_, d) = f32s(deq);
        let m = error_metrics(&w, &d).unwrap();
        let want = f64s(&format!("metrics/{case}.npy"));
        close(&format!("{case}: SQNR"), m.sqnr_db, want[0], 4e-5);
        close(&format!("{case}: cosine"), m.cosine, want[1], 1.2e-5);
        // The largest |r − c| is that of the f32 difference: the exact one rounded to f32.
        assert_eq!(m.max_abs, want[2] as f32 as f64, "{case}: max abs");
        close(&format!("{case}: mean abs"), m.mean_abs, want[3], 4e-6 * want[3]);
    }
}

#[test]
fn finer_schemes_score_better() {
    let (_, w) = f32s("inputs/w_32x256.npy");
    let sqnr = |deq: &str| error_metrics(&w, &f32s(deq).1).unwrap().sqnr_db;
    let int8 = sqnr("int8/w_32x256.sym.axis0.dequant.npy");
    let nf4 = sqnr("nf4/w_32x256.dequant.npy");
    let ternary = sqnr("ternary/w_32x256.dequant.npy");
    assert!(int8 > nf4 && nf4 > ternary, "int8 {int8} nf4 {nf4} ternary {ternary}");
}

#[test]
fn documented_edge_cases() {
    let identical = ErrorMetrics { sqnr_db: f64::INFINITY, cosine: 1.0, max_abs: 0.0, mean_abs: 0.0 };
    assert_eq!(error_metrics(&[], &[]).unwrap(), identical);
    assert_eq!(error_metrics(&[0.0; 64], &[0.0; 64]).unwrap(), identical);
    let m = error_metrics(&[0.0; 2], &[1.0, 0.0]).unwrap();
    assert_eq!((m.sqnr_db, m.cosine), (f64::NEG_INFINITY, 0.0));
    assert!(error_metrics(&[f32::NAN], &[0.0]).unwrap().sqnr_db.is_nan());
    assert!(matches!(
        error_metrics(&[1.0; 3], &[1.0; 2]),
        Err(SchemeError::LengthMismatch { reference: 3, candidate: 2 })
    ));
}
