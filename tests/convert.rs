//! `smelt convert` end to end: every scheme into a blob, identical bytes whatever the thread
//! count, nothing left behind on failure, early refusal of a bad destination, the report.

mod support;

use std::ffi::OsStr;
use std::path::Path;

use support::{fixtures, smelt, stderr, stdout};

fn convert(input: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&OsStr> =
        vec![OsStr::new("convert"), input.as_os_str(), OsStr::new("-o"), output.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    smelt(args)
}

/// A one-tensor F32 safetensors file written by hand (not by smelt).
fn write_safetensors_f32(path: &Path, name: &str, shape: &[usize], values: &[f32]) {
    let n: usize = shape.iter().product();
    assert_eq!(n, values.len());
    let mut header =
        format!(r#"{{"{name}":{{"dtype":"F32","shape":{shape:?},"data_offsets":[0,{}]}}}}"#, n * 4);
    while (8 + header.len()) % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const SCHEMES: &[&[&str]] = &[
    &["--quant", "int8"],
    &["--quant", "int8", "--asym", "--per-tensor"],
    &["--quant", "nf4"],
    &["--quant", "nf4", "--double-quant"],
    &["--quant", "int4", "--group-size", "32"],
    &["--quant", "int4", "--group-size", "64", "--asym"],
    &["--quant", "ternary"],
    &["--quant", "ternary", "--base3"],
    &["--quant", "q8_0"],
    &["--quant", "q4_0"],
    &["--quant", "q4_1"],
    &["--quant", "q5_0"],
    &["--quant", "q5_1"],
    &["--quant", "f16"],
    &["--quant", "bf16"],
];

#[test]
fn every_scheme_gives_the_same_bytes_with_1_2_and_3_threads() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("hf/tiny-llama-f32");
    for scheme in SCHEMES {
        let mut outputs = Vec::new();
        for threads in ["1", "2", "3"] {
            let out = dir.path().join(format!("m-{threads}.smelt"));
            let mut args = scheme.to_vec();
            args.extend(["--threads", threads]);
            let o = convert(&input, &out, &args);
            assert_eq!(o.status.code(), Some(0), "{scheme:?}: {}", stderr(&o));
            outputs.push(std::fs::read(&out).unwrap());
        }
        assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{scheme:?}: bytes depend on the thread count");
    }
}

#[test]
fn report_has_every_tensor_with_error_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.smelt");
    let report = dir.path().join("report.json");
    let o = convert(
        &fixtures().join("hf/tiny-llama-f32"),
        &out,
        &["--quant", "q8_0", "--report", report.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "the table goes to stderr");
    assert!(stderr(&o).contains("SQNR"), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["schema"], "smelt.convert-report/1");
    let tensors = r["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 21);
    let q = tensors.iter().find(|t| t["name"] == "model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(q["scheme"], "q8_0");
    // Q8_0 of Gaussian weights: SQNR around 40 dB, cosine above 0.9999.
    assert!(q["sqnr_db"].as_f64().unwrap() > 30.0, "{q}");
    assert!(q["cosine"].as_f64().unwrap() > 0.999, "{q}");
    let norm = tensors.iter().find(|t| t["name"] == "model.norm.weight").unwrap();
    assert_eq!(norm["scheme"], "keep");
    assert!(norm["sqnr_db"].is_null());
    assert_eq!(r["output"]["bytes"].as_u64().unwrap(), std::fs::metadata(&out).unwrap().len());
    let b3 = |p: &std::path::Path| blake3::hash(&std::fs::read(p).unwrap()).to_hex().to_string();
    assert_eq!(r["output"]["blake3"].as_str().unwrap(), b3(&out));
    let input = fixtures().join("hf/tiny-llama-f32/model.safetensors");
    assert_eq!(r["inputs"][0]["blake3"].as_str().unwrap(), b3(&input), "{}", r["inputs"]);
    assert!(r["totals"]["bits_per_weight"].as_f64().unwrap() < 10.0);
}

#[test]
fn nonfinite_weights_are_refused_naming_the_tensor_and_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let mut values = vec![0.5f32; 64];
    values[37] = f32::NAN;
    write_safetensors_f32(&input, "bad.weight", &[2, 32], &values);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.smelt");
    let o = convert(&input, &out, &["--quant", "q8_0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("bad.weight") && err.contains("37"), "{err}");
    assert!(files_in(out_dir.path()).is_empty(), "left behind: {:?}", files_in(out_dir.path()));
    // Accepted on request.
    let o = convert(&input, &out, &["--quant", "q8_0", "--allow-nonfinite"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn all_zero_weights_quantize_without_dividing_by_zero() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("zeros.safetensors");
    write_safetensors_f32(&input, "w", &[4, 64], &[0.0; 256]);
    for scheme in SCHEMES {
        let out = dir.path().join("z.smelt");
        let o = convert(&input, &out, scheme);
        assert_eq!(o.status.code(), Some(0), "{scheme:?}: {}", stderr(&o));
    }
}

#[test]
fn empty_tensors_with_huge_dims_are_kept_without_allocating_for_their_dims() {
    // [2⁴⁰, 0] holds nothing, but per-row scales (int8) or per-column group indices (int4 in
    // the GPTQ layout) for it would be terabytes: every scheme keeps it, saying why.
    let dir = tempfile::tempdir().unwrap();
    for shape in [[1usize << 40, 0], [0, 1 << 40]] {
        let input = dir.path().join("empty.safetensors");
        write_safetensors_f32(&input, "w", &shape, &[]);
        for scheme in SCHEMES {
            for ext in ["smelt", "gguf", "safetensors"] {
                let out = dir.path().join(format!("e.{ext}"));
                let report = dir.path().join("report.json");
                let mut args = scheme.to_vec();
                args.extend(["--report", report.to_str().unwrap()]);
                let o = convert(&input, &out, &args);
                let code = o.status.code();
                // Formats that refuse a scheme do so before any work (exit 2); none may crash.
                assert!(code == Some(0) || code == Some(2), "{shape:?} {scheme:?} {ext}: {}", stderr(&o));
                if code == Some(0) && !matches!(scheme[1], "f16" | "bf16") {
                    let r = std::fs::read_to_string(&report).unwrap();
                    assert!(r.contains("it has no elements"), "{shape:?} {scheme:?} {ext}: {r}");
                }
            }
        }
    }
}

#[test]
fn missing_output_directory_fails_before_reading_the_input() {
    // The input does not exist either: the destination is checked first.
    let o = convert(
        Path::new("/no/such/model.safetensors"),
        Path::new("/no/such/dir/out.smelt"),
        &["--quant", "q8_0"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/no/such/dir"), "{}", stderr(&o));
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.smelt");
    let o = convert(&fixtures().join("hf/tiny-llama-f32"), &out, &["--quant", "q4_0", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan = stdout(&o);
    assert!(
        plan.contains("bits per weight") && plan.contains("q4_0") && plan.contains("1-D, kept"),
        "{plan}"
    );
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn unknown_scheme_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let o = convert(&fixtures().join("hf/tiny-llama-f32"), &dir.path().join("m.smelt"), &["--quant", "q3_k"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nf4") && stderr(&o).contains("tq2_0"), "{}", stderr(&o));
}

#[test]
fn recipe_rules_pick_schemes_per_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("r.toml");
    std::fs::write(
        &recipe,
        "quant = \"q4_0\"\n[defaults]\nembeddings = \"keep\"\n[[rules]]\nmatch = \"*.mlp.down_proj.weight\"\nscheme = \"q8_0\"\n",
    )
    .unwrap();
    let report = dir.path().join("r.json");
    let o = convert(
        &fixtures().join("hf/tiny-llama-f32"),
        &dir.path().join("m.smelt"),
        &["--recipe", recipe.to_str().unwrap(), "--report", report.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let scheme = |name: &str| {
        r["tensors"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["scheme"].clone()
    };
    assert_eq!(scheme("model.layers.1.mlp.down_proj.weight"), "q8_0");
    assert_eq!(scheme("model.layers.1.mlp.up_proj.weight"), "q4_0");
    assert_eq!(scheme("model.embed_tokens.weight"), "keep");
}

#[test]
fn safetensors_nf4_and_gptq_outputs_decode_with_an_independent_numpy_reader() {
    let hf = fixtures().join("hf/tiny-llama-f32");
    for (args, kind) in [
        (&["--quant", "nf4"][..], "nf4"),
        (&["--quant", "nf4", "--double-quant"][..], "nf4"),
        (&["--quant", "int4", "--group-size", "32"][..], "gptq"),
        (&["--quant", "int4", "--group-size", "64", "--asym"][..], "gptq"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("model.safetensors");
        let o = convert(&hf, &out, args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        // config.json travels along, with the quantization_config loaders look for.
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
        let method = if kind == "nf4" { "bitsandbytes" } else { "gptq" };
        assert_eq!(cfg["quantization_config"]["quant_method"], method, "{args:?}");
        assert_eq!(dir.path().join("quantize_config.json").exists(), kind == "gptq");
        // 4-bit weights of Gaussian values: cosine with the originals well above 0.99.
        let text = support::interop(
            "check_convert_safetensors.py",
            &[out.as_os_str(), hf.as_os_str(), OsStr::new(kind), OsStr::new("0.99")],
        );
        assert!(text.contains("16 quantized weights") && text.contains("OK"), "{text}");
    }
}

#[test]
fn safetensors_output_refuses_schemes_it_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let o = convert(
        &fixtures().join("hf/tiny-llama-f32"),
        &dir.path().join("m.safetensors"),
        &["--quant", "q4_0"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("safetensors"), "{}", stderr(&o));
    assert!(files_in(dir.path()).is_empty());
}
