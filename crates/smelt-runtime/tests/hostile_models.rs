//! Models found by the runtime fuzz target (`tools/fuzz/fuzz_targets/runtime.rs`), or written by
//! hand as their twins, that made an op panic: each in `fixtures/malformed/runtime/` must now
//! load and run to an error naming the node, fed as the fuzz target feeds it (declared shapes,
//! a symbolic dim as 2, small values).

use std::path::{Path, PathBuf};

use smelt_runtime::{Data, RuntimeError, Session, Value};
use smelt_tensor::DType;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/malformed/runtime")
}

/// Loads and runs `path` as the fuzz target does; `Ok` when the run succeeded.
#[allow(clippy::result_large_err)]
fn run(path: &Path) -> Result<(), RuntimeError> {
    let session = Session::load(path)?;
    let mut feeds = Vec::new();
    for spec in session.inputs() {
        let shape: Vec<usize> =
            spec.shape.as_ref().map_or(Vec::new(), |s| s.iter().map(|d| d.unwrap_or(2)).collect());
        let n = shape.iter().product();
        let pattern: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.5).collect();
        let values = Data::F32(pattern).cast(spec.dtype.unwrap_or(DType::F32)).expect("castable input type");
        feeds.push((spec.name.clone(), Value::new(shape, values)));
    }
    session.run(feeds).map(|_| ())
}

#[test]
fn fuzz_found_models_are_errors_not_panics() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir()).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 8, "{cases:?}");
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        match run(&case) {
            Ok(()) => panic!("{name}: ran without an error"),
            Err(e) => {
                let msg = e.to_string();
                // Each is refused by the op (naming its node), not by the reader or the loader.
                assert!(
                    matches!(e, RuntimeError::ShapeMismatch { .. } | RuntimeError::Op { .. }),
                    "{name}: {msg}"
                );
                let expect = match name.as_str() {
                    "attention-v-heads.onnx" => "V does not match K",
                    // 3-D: K's batch differed from Q's and was split into heads unchecked.
                    "attention-3d-v-batch.onnx" => "K does not match Q",
                    "gemm-bias-shape.onnx" => "C does not broadcast",
                    "reshape-target-overflow.onnx" => "target shape",
                    "gather-scalar.onnx" => "out of range for rank 0",
                    // Indices wider than the input off the axis (the second written by hand
                    // as the first's twin).
                    "gatherelements-indices-shape.onnx" => "indices exceed the input off the axis",
                    "scatterelements-indices-shape.onnx" => "indices exceed the data off the axis",
                    // A Slice step near i64::MAX overflowed its count; now it takes one
                    // element, and the product downstream refuses the shapes.
                    "slice-step-overflow.onnx" => "do not broadcast",
                    // Written by hand: an empty value whose other dimensions' product
                    // overflows (Flatten multiplied them); every value now keeps its shape's
                    // product, zeros counted as one, within the cap.
                    "reshape-zero-dim-overflow.onnx" => "zero dimensions counted as one",
                    // Written by hand (an audit of the ops): batch dims unlike the data's
                    // made a tuple's batch index past the data.
                    "gathernd-batch-dims.onnx" => "indices do not fit the data",
                    // Split sizes whose sum wrapped to the axis length; num_outputs of -1.
                    "split-sizes-overflow.onnx" => "split sizes do not add up",
                    "split-num-outputs.onnx" => "num_outputs is -1",
                    // A pad near i64::MAX overflowed the output dim.
                    "pad-overflow.onnx" => "longer than a value may be",
                    // Outputs past the cap from operands within it (an allocation of 16 GiB
                    // before any check): a broadcast, and a product over an empty k.
                    "add-broadcast-past-cap.onnx" => "is too large",
                    "matmul-empty-k-past-cap.onnx" => "is too large",
                    other => panic!("{other}: add its expected error here ({msg})"),
                };
                assert!(msg.contains(expect), "{name}: {msg}");
            }
        }
    }
}
