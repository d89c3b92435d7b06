//! Fuzzes the runner on hostile ONNX models: any bytes the ONNX reader accepts must load into a
//! session or give an error, and a loaded session must run to outputs or an error — never a
//! panic, a hang or an allocation past the value cap (lowered here to 2²⁰ elements, so that
//! libFuzzer's memory limit catches an op that allocates before checking).
//!
//! Inputs are fed at their declared shapes (a symbolic or unknown dim as 2, an unknown rank
//! as a scalar, at most 2¹⁶ elements each) with small values of the declared type. Seed it
//! with the conformance harness's node-test models (`model.onnx` of each case) and the
//! fixtures' ONNX files.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use smelt_runtime::{Data, Session, Value};
use smelt_tensor::DType;

fuzz_target!(|data: &[u8]| {
    smelt_runtime::session::set_value_element_cap(1 << 20);
    let path = PathBuf::from("fuzz-model.onnx");
    let Ok(model) = smelt_formats::onnx::parse(bytes::Bytes::copy_from_slice(data), &path) else { return };
    let Ok(session) = Session::from_model(&model, &path) else { return };
    let mut feeds = Vec::new();
    for spec in session.inputs() {
        let shape: Vec<usize> = spec.shape.as_ref().map_or(Vec::new(), |s| s.iter().map(|d| d.unwrap_or(2)).collect());
        let Some(n) = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= 1 << 16) else { return };
        let pattern: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.5).collect();
        let Some(values) = Data::F32(pattern).cast(spec.dtype.unwrap_or(DType::F32)) else { return };
        feeds.push((spec.name.clone(), Value::new(shape, values)));
    }
    let _ = session.run(feeds);
});
