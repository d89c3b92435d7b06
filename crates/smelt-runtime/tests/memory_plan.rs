//! The memory plan frees each value after its last use: on the torch-exported tiny Llama
//! (hundreds of intermediate values) only a handful are alive at once, and the logits still
//! equal the exporter's own output (fixtures/onnx/torch-tiny-llama.output.npy, from torch).

use std::path::Path;

use smelt_runtime::{Data, Session, Value};

#[test]
fn values_die_after_their_last_use_and_the_result_is_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx");
    let session = Session::load(&dir.join("torch-tiny-llama.onnx")).unwrap();
    let ids = smelt_formats::npy::read(&dir.join("torch-tiny-llama.input.npy")).unwrap();
    let shape: Vec<usize> = ids.shape.iter().map(|&d| d as usize).collect();
    let input =
        Value::new(shape.clone(), Data::from_le_bytes(ids.dtype, &ids.data, shape.iter().product()).unwrap());
    let (out, stats) = session.run_with_stats(vec![("input_ids".into(), input)]).unwrap();
    eprintln!("{stats:?} over {} nodes", session.node_count());
    assert!(stats.computed_values > 200, "{stats:?}");
    assert!(stats.peak_live_values * 10 < stats.computed_values, "the plan keeps too much alive: {stats:?}");
    let want = smelt_formats::npy::read(&dir.join("torch-tiny-llama.output.npy")).unwrap().to_f32().unwrap();
    let Data::F32(got) = &out[0].1.data else { panic!("logits are f32") };
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{g} vs torch {w}");
    }
}
