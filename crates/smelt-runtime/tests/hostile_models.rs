//! Models that made an op panic, hang or allocate without bound, found by the runtime fuzz
//! target (`tools/fuzz/fuzz_targets/runtime.rs`) or written by hand
//! (`tools/fixtures/gen_malformed_runtime.py`: an audit of the ops, and the fuzz finds' twins):
//! each in `fixtures/malformed/runtime/` must now load and run to an error naming the node, fed
//! as the fuzz target feeds it (declared shapes, a symbolic dim as 2, small values).

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
fn hostile_models_are_errors_not_panics() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir()).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 33, "{cases:?}");
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
                    // Written by hand (an audit of conv, resize and the quantized matmuls).
                    // Conv/pool attributes whose sums and products overflowed: a pad near
                    // i64::MAX, group·(C/group), kernel_shape's product, dilation·kernel.
                    "conv-pads-overflow.onnx" => "overflow along spatial axis 1",
                    "conv-group-overflow.onnx" => "channels do not match W and group",
                    "maxpool-kernel-overflow.onnx" => "kernel_shape [4611686018427387904",
                    "maxpool-dilation-overflow.onnx" => "overflow along spatial axis 0",
                    // A bias shorter than M was indexed past its end.
                    "conv-bias-length.onnx" => "B must have M elements",
                    // Pads of 2^40 gave an output of 2^41 elements, allocated unchecked.
                    "conv-output-too-large.onnx" => "is too large",
                    // Windows of padding only over an empty axis: MaxPool's column-major index
                    // divided by the axis' length 0.
                    "maxpool-empty-column-major.onnx" => "covers only padding",
                    // A 2^20-tap kernel visited every tap of its 2^20 windows, padding included
                    // (a hang); windows now visit only the taps inside the input, so it runs,
                    // and the Add after it refuses the shapes.
                    "averagepool-huge-kernel.onnx" => "do not broadcast",
                    // Resize of an empty axis to 4 clamped into 0..=-1.
                    "resize-empty-axis.onnx" => "cannot resize axis 1 of length 0",
                    // A roi of 1e30 with tf_crop_and_resize: the tap index saturated to
                    // i64::MAX and overflowed; now it runs, and the Add after it refuses.
                    "resize-roi-overflow-linear.onnx" => "do not broadcast",
                    "resize-roi-overflow-cubic.onnx" => "do not broadcast",
                    // Products past the cap from operands within it (A's rows · B's columns;
                    // N from an attribute).
                    "matmulinteger-output-too-large.onnx" => "[65537, 65537] is too large",
                    "matmulinteger-packed-output-too-large.onnx" => "[65537, 65537] is too large",
                    "matmulnbits-output-too-large.onnx" => "[65537, 65537] is too large",
                    "matmulbnb4-output-too-large.onnx" => "[65537, 65537] is too large",
                    // N = 2^62 or block_size = 2^62: B's expected length overflowed (at load).
                    "matmulnbits-n-overflow.onnx" => "block_size*bits/8 overflows",
                    "matmulnbits-block-overflow.onnx" => "block_size*bits overflows",
                    "matmulbnb4-nk-overflow.onnx" => "N*K overflows",
                    other => panic!("{other}: add its expected error here ({msg})"),
                };
                assert!(msg.contains(expect), "{name}: {msg}");
            }
        }
    }
}
