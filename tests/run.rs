//! `smelt run` end to end: the committed ONNX fixtures (float, and quantized by ONNX
//! Runtime's own tools) run on fixed-seed inputs and compared with onnxruntime's outputs
//! stored beside them (tools/fixtures/gen_ort_outputs.py); input forms (.npz, .npy, .pb);
//! the summary; and the refusals of §7 (unsupported ops, shape mismatches, missing/extra
//! inputs), each exit 2 with the node, op and shapes named.

mod support;

use std::path::{Path, PathBuf};

use smelt_formats::npy::NpyArray;
use support::{fixtures, smelt, stderr, stdout};

fn runtime(name: &str) -> PathBuf {
    fixtures().join("runtime").join(name)
}

fn npz(path: &Path) -> Vec<(String, NpyArray)> {
    smelt_formats::npz::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `model` on `<name>.inputs.npz` and checks every output against `<name>.ort.npz`:
/// same names, dtypes and shapes, and |smelt - ort| <= atol + rtol·|ort|.
fn check_against_ort(model: &Path, name: &str, atol: f32, rtol: f32) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npz");
    let inputs = runtime(&format!("{name}.inputs.npz"));
    let o = smelt([
        "run".as_ref(),
        model.as_os_str(),
        "--inputs".as_ref(),
        inputs.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
    let got = npz(&out);
    let want = npz(&runtime(&format!("{name}.ort.npz")));
    assert_eq!(got.len(), want.len(), "{name}: output count");
    for ((gn, g), (wn, w)) in got.iter().zip(&want) {
        assert_eq!(gn, wn, "{name}: output order");
        assert_eq!(g.dtype, w.dtype, "{name}/{gn}: dtype");
        assert_eq!(g.shape, w.shape, "{name}/{gn}: shape");
        let (g, w) = (g.to_f32().unwrap(), w.to_f32().unwrap());
        let mut worst = 0f32;
        for (a, b) in g.iter().zip(&w) {
            let err = (a - b).abs();
            assert!(err <= atol + rtol * b.abs(), "{name}/{gn}: {a} vs onnxruntime {b}");
            worst = worst.max(err);
        }
        eprintln!("{name}/{gn}: max |smelt - onnxruntime| = {worst:e} over {} values", g.len());
    }
}

#[test]
fn torch_mlp_matches_onnxruntime() {
    check_against_ort(&fixtures().join("onnx/torch-mlp.onnx"), "torch-mlp", 1e-5, 1e-4);
}

#[test]
fn torch_tiny_llama_matches_onnxruntime() {
    check_against_ort(&fixtures().join("onnx/torch-tiny-llama.onnx"), "torch-tiny-llama", 1e-5, 1e-4);
}

#[test]
fn ort_dynamic_int8_model_matches_onnxruntime() {
    // DynamicQuantizeLinear + MatMulInteger: integer products are exact, so only the float
    // epilogue (scale multiply) can differ.
    check_against_ort(
        &runtime("tiny-llama.ort-int8-dynamic.onnx"),
        "tiny-llama.ort-int8-dynamic",
        1e-5,
        1e-4,
    );
}

#[test]
fn ort_qdq_int8_model_matches_onnxruntime() {
    check_against_ort(&runtime("tiny-llama.ort-int8-qdq.onnx"), "tiny-llama.ort-int8-qdq", 1e-5, 1e-4);
}

#[test]
fn ort_matmulnbits_model_matches_onnxruntime() {
    check_against_ort(
        &runtime("tiny-llama.ort-matmulnbits4.onnx"),
        "tiny-llama.ort-matmulnbits4",
        1e-5,
        1e-4,
    );
}

#[test]
fn ort_matmulnbits8_model_matches_onnxruntime() {
    check_against_ort(
        &runtime("tiny-llama.ort-matmulnbits8.onnx"),
        "tiny-llama.ort-matmulnbits8",
        1e-5,
        1e-4,
    );
}

#[test]
fn ort_matmulbnb4_model_matches_onnxruntime() {
    check_against_ort(&runtime("tiny-llama.ort-bnb4-nf4.onnx"), "tiny-llama.ort-bnb4-nf4", 1e-5, 1e-4);
}

#[test]
fn npy_input_and_summary_without_output_file() {
    let model = fixtures().join("onnx/torch-mlp.onnx");
    let input = fixtures().join("onnx/torch-mlp.input.npy");
    let spec = format!("x={}", input.display());
    let o = smelt(["run".as_ref(), model.as_os_str(), "--input".as_ref(), spec.as_ref()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    // name, dtype, shape, first values, min/max/mean
    assert!(text.starts_with("y  F32  [4, 8]  ["), "{text}");
    assert!(text.contains("min ") && text.contains("max ") && text.contains("mean "), "{text}");
    // The torch export's own output (fixtures/onnx/torch-mlp.output.npy) agrees too.
    let want =
        smelt_formats::npy::read(&fixtures().join("onnx/torch-mlp.output.npy")).unwrap().to_f32().unwrap();
    let first: f32 = text.split('[').nth(2).unwrap().split(',').next().unwrap().trim().parse().unwrap();
    assert!((first - want[0]).abs() < 1e-5, "{first} vs torch {}", want[0]);
}

#[test]
fn repeat_times_each_run_and_keeps_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixtures().join("onnx/torch-tiny-llama.onnx");
    let inputs = runtime("torch-tiny-llama.inputs.npz");
    let run = |extra: &[&str], out: &str| {
        let out = dir.path().join(out);
        let mut args: Vec<std::ffi::OsString> = vec![
            "run".into(),
            model.clone().into(),
            "--inputs".into(),
            inputs.clone().into(),
            "-o".into(),
            out.clone().into(),
        ];
        args.extend(extra.iter().map(Into::into));
        (smelt(args), out)
    };
    let (once, once_out) = run(&[], "once.npz");
    assert_eq!(once.status.code(), Some(0), "{}", stderr(&once));
    assert!(!stderr(&once).contains("median"), "{}", stderr(&once));
    let (o, out) = run(&["--repeat", "3", "--threads", "2"], "three.npz");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let runs: Vec<&str> = err.lines().filter(|l| l.starts_with("run ")).collect();
    assert_eq!(runs.len(), 3, "{err}");
    assert!(runs.iter().all(|l| l.ends_with(" ms")), "{err}");
    assert!(err.contains("3 runs: median "), "{err}");
    assert_eq!(std::fs::read(out).unwrap(), std::fs::read(once_out).unwrap());
    for bad in [["--repeat", "0"], ["--threads", "0"]] {
        let (o, _) = run(&bad, "bad.npz");
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn unsupported_ops_are_listed_before_running() {
    let o = smelt(["run".as_ref(), runtime("errors/unsupported-op.onnx").as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    // No inputs were given: the op check happens at load, before inputs are even looked at.
    assert!(err.contains("op Einsum (domain ai.onnx, opset 17) at node 'mix'"), "{err}");
    assert!(err.contains("op Frobnicate (domain com.example, opset 1) at node 'custom'"), "{err}");
    assert!(!err.contains("missing input"), "{err}");
}

#[test]
fn shape_mismatches_name_the_node_and_both_shapes_at_load() {
    let o = smelt(["run".as_ref(), runtime("errors/shape-mismatch.onnx").as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("node 'bad_add' (Add)") && err.contains("[2, 3] vs [4, 3]"), "{err}");
    let o = smelt(["run".as_ref(), runtime("errors/matmul-mismatch.onnx").as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("node 'bad_matmul' (MatMul)") && err.contains("[2, 3] vs [4, 5]"), "{err}");
}

#[test]
fn missing_extra_and_misshapen_inputs_list_the_expected_inputs() {
    let model = runtime("errors/two-inputs.onnx");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.npy");
    let data: Vec<u8> = [1f32, 2.0, 3.0, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&a, smelt_formats::npz::npy_bytes("<f4", &[2, 2], &data)).unwrap();
    let spec = |n: &str| format!("{n}={}", a.display());
    let expected = "a F32 [2, batch], b F32 [2, batch]";

    let o = smelt(["run".as_ref(), model.as_os_str(), "--input".as_ref(), spec("a").as_ref()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing input 'b'") && stderr(&o).contains(expected), "{}", stderr(&o));

    let o = smelt([
        "run".as_ref(),
        model.as_os_str(),
        "--input".as_ref(),
        spec("a").as_ref(),
        "--input".as_ref(),
        spec("b").as_ref(),
        "--input".as_ref(),
        spec("c").as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown input 'c'") && stderr(&o).contains(expected), "{}", stderr(&o));

    let wrong = dir.path().join("w.npy");
    std::fs::write(&wrong, smelt_formats::npz::npy_bytes("<f4", &[4], &data)).unwrap();
    let o = smelt([
        "run".as_ref(),
        model.as_os_str(),
        "--input".as_ref(),
        spec("a").as_ref(),
        "--input".as_ref(),
        format!("b={}", wrong.display()).as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("input 'b': shape [4] given") && stderr(&o).contains(expected),
        "{}",
        stderr(&o)
    );

    // Both given: a + a, symbolic `batch` = 2.
    let out = dir.path().join("o.npz");
    let o = smelt([
        "run".as_ref(),
        model.as_os_str(),
        "--input".as_ref(),
        spec("a").as_ref(),
        "--input".as_ref(),
        spec("b").as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(npz(&out)[0].1.to_f32().unwrap(), vec![2.0, 4.0, 6.0, 8.0]);
}

#[test]
fn model_without_a_graph_is_refused() {
    let st = std::fs::read_dir(fixtures().join("safetensors"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .expect("a safetensors fixture");
    let o = smelt(["run".as_ref(), st.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("carries no graph"), "{}", stderr(&o));
}

#[test]
fn a_value_too_large_to_allocate_is_refused() {
    let o = smelt(["run".as_ref(), runtime("errors/huge-constant.onnx").as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("node 'blowup' (ConstantOfShape)") && err.contains("too large"), "{err}");
}
