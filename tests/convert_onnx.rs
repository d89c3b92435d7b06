//! `smelt convert` to quantized ONNX, checked by onnxruntime and numpy (tools/interop/
//! check_onnx_quant.py): every mode (quantized operators, weight-only QDQ) and scheme (int8
//! per channel/per tensor, symmetric/asymmetric; int4 MatMulNBits and opset-21 blocked
//! DequantizeLinear; NF4 MatMulBnb4) on a generated Gemm/MatMul graph and on the
//! torch.onnx.export fixtures, including external data in and out. The check recomputes every
//! quantized weight without smelt's code, runs the output in onnxruntime, and runs it with
//! `smelt run` too (which must match onnxruntime); a missing Python or onnxruntime fails the
//! test.

mod support;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{fixtures, interop, stderr};

/// One conversion and its check.
struct Case<'a> {
    input: &'a str,
    scheme: &'a str,
    mode: &'a str,
    extra: &'a [&'a str],
    quantized: usize,
    /// Max |quantized - float| / max |float| over the outputs.
    tol_float: f64,
    /// Max |quantized - float graph on numpy-dequantized weights| / max |reference|.
    tol_ref: f64,
}

fn smelt_env(args: &[&OsStr], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_smelt"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("smelt runs")
}

fn convert(dir: &Path, case: &Case<'_>, tag: &str, env: &[(&str, &str)]) -> PathBuf {
    let input = fixtures().join("onnx").join(case.input);
    let out = dir.join(format!("{tag}.onnx"));
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("convert"),
        input.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--quant"),
        OsStr::new(case.scheme),
        OsStr::new("--format"),
        OsStr::new(if case.mode == "qdq" { "onnx-qdq" } else { "onnx" }),
    ];
    args.extend(case.extra.iter().map(OsStr::new));
    let o = smelt_env(&args, env);
    assert_eq!(o.status.code(), Some(0), "{tag}: {}", stderr(&o));
    out
}

fn check(case: &Case<'_>, out: &Path, external: bool) -> String {
    let float = fixtures().join("onnx").join(case.input);
    let mut args: Vec<OsString> = vec![
        float.into(),
        out.into(),
        "--scheme".into(),
        case.scheme.into(),
        "--mode".into(),
        case.mode.into(),
        "--expect-quantized".into(),
        case.quantized.to_string().into(),
        "--tol-float".into(),
        case.tol_float.to_string().into(),
        "--tol-ref".into(),
        case.tol_ref.to_string().into(),
    ];
    for e in case.extra {
        match *e {
            "--asym" | "--per-tensor" => args.push((*e).into()),
            _ => {}
        }
    }
    if let Some(i) = case.extra.iter().position(|e| *e == "--group-size") {
        args.push("--group-size".into());
        args.push(case.extra[i + 1].into());
    }
    if case.input.contains("tiny-llama") {
        args.push(
            format!("--input=input_ids={}", fixtures().join("onnx/torch-tiny-llama.input.npy").display())
                .into(),
        );
    }
    if external {
        args.push("--expect-external".into());
    }
    // smelt's own interpreter must compute what onnxruntime computes.
    args.push("--smelt".into());
    args.push(env!("CARGO_BIN_EXE_smelt").into());
    args.push("--tol-smelt".into());
    args.push("1e-5".into());
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    let text = interop("check_onnx_quant.py", &refs);
    assert!(text.contains("OK"), "{text}");
    eprintln!("{}", text.lines().next().unwrap_or(""));
    text
}

fn run_cases(cases: &[Case<'_>]) {
    let dir = tempfile::tempdir().unwrap();
    for (i, case) in cases.iter().enumerate() {
        let tag = format!("{i}-{}-{}-{}", case.scheme, case.mode, case.extra.join(""));
        let out = convert(dir.path(), case, &tag, &[]);
        check(case, &out, false);
    }
}

const G32: &[&str] = &["--group-size", "32"];
const G32_ASYM: &[&str] = &["--group-size", "32", "--asym"];

#[test]
fn gemm_and_matmul_graph_in_every_mode_runs_in_onnxruntime() {
    let c = |scheme, mode, extra, quantized, tol_float, tol_ref| Case {
        input: "gemm-mix.onnx",
        scheme,
        mode,
        extra,
        quantized,
        tol_float,
        tol_ref,
    };
    run_cases(&[
        c("int8", "operators", &[], 5, 0.05, 1e-5),
        c("int8", "operators", &["--per-tensor", "--asym"], 5, 0.05, 1e-5),
        c("int8", "qdq", &[], 5, 0.05, 1e-5),
        c("int8", "qdq", &["--per-tensor", "--asym"], 5, 0.05, 1e-5),
        c("int4", "operators", G32, 4, 0.35, 1e-5),
        c("int4", "operators", G32_ASYM, 4, 0.35, 1e-5),
        c("int4", "qdq", G32, 4, 0.35, 1e-5),
        c("int4", "qdq", G32_ASYM, 4, 0.35, 1e-5),
        c("nf4", "operators", &[], 5, 0.35, 1e-5),
    ]);
}

#[test]
fn torch_exports_quantized_run_in_onnxruntime() {
    let c = |input, scheme, mode, extra, quantized, tol_float, tol_ref| Case {
        input,
        scheme,
        mode,
        extra,
        quantized,
        tol_float,
        tol_ref,
    };
    run_cases(&[
        c("torch-mlp.onnx", "int8", "operators", &[], 2, 0.05, 1e-5),
        c("torch-mlp.onnx", "int8", "qdq", &[], 2, 0.05, 1e-5),
        c("torch-mlp.onnx", "int4", "operators", G32, 1, 0.35, 1e-5),
        c("torch-mlp.onnx", "nf4", "operators", &[], 2, 0.35, 1e-5),
        c("torch-tiny-llama.onnx", "int8", "operators", &[], 15, 0.05, 1e-5),
        c("torch-tiny-llama.onnx", "int4", "operators", G32_ASYM, 15, 0.35, 1e-5),
        c("torch-tiny-llama.onnx", "int4", "qdq", &["--group-size", "64"], 15, 0.35, 1e-5),
        c("torch-tiny-llama.onnx", "nf4", "operators", &[], 15, 0.35, 1e-5),
    ]);
}

#[test]
fn external_data_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let case = Case {
        input: "torch-tiny-llama-external/model.onnx",
        scheme: "int4",
        mode: "operators",
        extra: G32,
        quantized: 15,
        tol_float: 0.35,
        tol_ref: 1e-5,
    };
    // External input, small output: written inline.
    let inline = convert(dir.path(), &case, "inline", &[]);
    check(&case, &inline, false);
    assert!(!dir.path().join("inline.onnx.data").exists());
    // The 2 GiB switch, lowered: weights go to inline-free `<out>.data`.
    let ext = convert(dir.path(), &case, "ext", &[("SMELT_ONNX_EXTERNAL_THRESHOLD", "10000")]);
    assert!(dir.path().join("ext.onnx.data").exists());
    check(&case, &ext, true);
    // Same graph either way: both loaded with their data give identical initializers (the
    // check above already compares each with the float model's); and the QDQ form too.
    let qdq = Case { mode: "qdq", extra: &["--group-size", "64"], ..case };
    let out = convert(dir.path(), &qdq, "ext-qdq", &[("SMELT_ONNX_EXTERNAL_THRESHOLD", "10000")]);
    check(&qdq, &out, true);
    // onnx's own external-data layout (a Constant's value external too); its float16 weight
    // `w16` stays as it is.
    let small = Case {
        input: "external/model.onnx",
        scheme: "int8",
        mode: "qdq",
        extra: &[],
        quantized: 1,
        tol_float: 0.05,
        tol_ref: 1e-5,
    };
    let out = convert(dir.path(), &small, "small-ext", &[("SMELT_ONNX_EXTERNAL_THRESHOLD", "100")]);
    check(&small, &out, true);
    let out = convert(dir.path(), &Case { mode: "operators", ..small }, "small-inline", &[]);
    check(&Case { mode: "operators", ..small }, &out, false);
}

#[test]
fn same_bytes_with_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    for (scheme, extra) in [("int8", &[][..]), ("int4", G32), ("nf4", &[][..])] {
        let mut outs = Vec::new();
        for threads in ["1", "2"] {
            let case = Case {
                input: "torch-tiny-llama.onnx",
                scheme,
                mode: "operators",
                extra,
                quantized: 0,
                tol_float: 0.0,
                tol_ref: 0.0,
            };
            let mut e: Vec<&str> = extra.to_vec();
            e.extend(["--threads", threads]);
            let case = Case { extra: &e, ..case };
            outs.push(
                std::fs::read(convert(dir.path(), &case, &format!("{scheme}-t{threads}"), &[])).unwrap(),
            );
        }
        assert!(outs[0] == outs[1], "{scheme}: bytes differ between 1 and 2 threads");
    }
}

#[test]
fn report_names_why_weights_stay_float() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("onnx/gemm-mix.onnx");
    let out = dir.path().join("q.onnx");
    let report = dir.path().join("r.json");
    let o = smelt_env(
        &[
            OsStr::new("convert"),
            input.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
            OsStr::new("--quant"),
            OsStr::new("int4"),
            OsStr::new("--group-size"),
            OsStr::new("32"),
            OsStr::new("--report"),
            report.as_os_str(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let t =
        |name: &str| r["tensors"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned().unwrap();
    assert_eq!(r["output_format"], "onnx");
    assert!(t("Wadd")["reason"].as_str().unwrap().contains("Add node 'add2'"), "{}", t("Wadd"));
    assert_eq!(t("Wadd")["fallback"], true);
    assert!(
        t("W5")["reason"].as_str().unwrap().contains("K=48 is not a multiple of the group size 32"),
        "{}",
        t("W5")
    );
    assert!(t("W2")["sqnr_db"].as_f64().unwrap() > 10.0, "{}", t("W2"));
    assert_eq!(t("b1")["scheme"], "keep");
}

#[test]
fn nf4_has_no_qdq_form_and_non_onnx_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("onnx/gemm-mix.onnx");
    let out = dir.path().join("q.onnx");
    let o = smelt_env(
        &[
            OsStr::new("convert"),
            input.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
            OsStr::new("--quant"),
            OsStr::new("nf4"),
            OsStr::new("--format"),
            OsStr::new("onnx-qdq"),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MatMulBnb4"), "{}", stderr(&o));
    assert!(!out.exists());
    let hf = fixtures().join("hf/tiny-llama-f32");
    let o = smelt_env(
        &[
            OsStr::new("convert"),
            hf.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
            OsStr::new("--quant"),
            OsStr::new("int8"),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!out.exists());
}
