//! The element cap under a lowered setting (its own test binary: the cap is per process). A
//! check that at the default cap would need multi-gigabyte inputs to reach runs here on a model
//! of a few kilobytes, and the same model runs at the default cap.

use std::path::Path;

use smelt_runtime::{Session, Value};

#[test]
fn matmulnbits_refuses_to_dequantize_past_the_cap() {
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
