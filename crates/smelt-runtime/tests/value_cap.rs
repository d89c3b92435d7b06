//! The element cap under a lowered setting (its own test binary: the cap is per process). A
//! check that at the default cap would need multi-gigabyte inputs to reach runs here on a model
//! of a few kilobytes, and the same model runs at the default cap.

use std::path::Path;

use smelt_runtime::{Session, Value};

/// The cap is one setting per process and the tests run on threads of one: each test that
/// lowers it holds this for its whole run.
static CAP: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn matmulnbits_refuses_to_dequantize_past_the_cap() {
    let _cap = CAP.lock().unwrap_or_else(|e| e.into_inner());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/malformed/runtime-cap/matmulnbits-dequant-past-cap.onnx");
    let a = Value::f32(vec![1, 64], (0..64).map(|i| i as f32 * 0.01).collect());
    // At the default cap: a valid model (B: 4096 bytes, N·K = 8192 weights).
    let session = Session::load(&path).unwrap();
    let y = session.run(vec![("a".into(), a.clone())]).unwrap();
    assert_eq!(y[0].1.shape, vec![1, 128]);
    // Under 2¹² elements B still fits, but its f32 dequantization (2¹³) does not.
    smelt_runtime::session::set_value_element_cap(1 << 12);
    let err = Session::load(&path).unwrap().run(vec![("a".into(), a)]).unwrap_err().to_string();
    smelt_runtime::session::set_value_element_cap(smelt_runtime::session::MAX_VALUE_ELEMENTS);
    assert!(err.contains("nbits") && err.contains("[128, 64] is too large"), "{err}");
}

#[test]
fn resize_shrinks_before_it_grows_so_its_intermediate_stays_within_the_cap() {
    let _cap = CAP.lock().unwrap_or_else(|e| e.into_inner());
    // [1, 1, 4, 65] to [1, 1, 65, 4] (fixtures/runtime/ops, made by
    // tools/fixtures/gen_runtime_ops.py with onnxruntime's output): input and output hold 260
    // elements, but growing axis 2 before shrinking axis 3 would hold [1, 1, 65, 65] = 4225,
    // past a cap of 2^12. With the shrinking axis first the model runs under that cap, and
    // gives the same values as at the default cap.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/runtime/ops");
    let path = dir.join("resize-linear-shrink-and-grow.onnx");
    let x: Vec<f32> = (0..260).map(|i| ((i * 37) % 101) as f32 * 0.03 - 1.5).collect();
    let feeds = || vec![("X".to_string(), Value::f32(vec![1, 1, 4, 65], x.clone()))];
    let want = Session::load(&path).unwrap().run(feeds()).unwrap();
    smelt_runtime::session::set_value_element_cap(1 << 12);
    let got = Session::load(&path).unwrap().run(feeds());
    smelt_runtime::session::set_value_element_cap(smelt_runtime::session::MAX_VALUE_ELEMENTS);
    let got = got.unwrap();
    assert_eq!(got[0].1.shape, vec![1, 1, 65, 4]);
    assert_eq!(got[0].1.data, want[0].1.data);
}
