//! `smelt validate` end to end: its figures for float tiny-llama against each ORT-quantized
//! version agree with numpy's computed from onnxruntime's outputs
//! (fixtures/runtime/validate.numpy.json, tools/fixtures/gen_ort_outputs.py); thresholds give
//! exit 0 / 1, from flags or a recipe's [validate] table; bad input exit 2; random inputs are
//! reproducible from the seed.

mod support;

use std::path::PathBuf;

use support::{fixtures, smelt, stderr, stdout};

fn runtime(name: &str) -> PathBuf {
    fixtures().join("runtime").join(name)
}

fn validate(candidate: &str, extra: &[&str], json: &std::path::Path) -> std::process::Output {
    let reference = fixtures().join("onnx/torch-tiny-llama.onnx");
    let cand = runtime(&format!("{candidate}.onnx"));
    let inputs = runtime("torch-tiny-llama.inputs.npz");
    let mut args: Vec<std::ffi::OsString> =
        vec!["validate".into(), reference.into(), cand.into(), "--inputs".into(), inputs.into()];
    args.extend(extra.iter().map(Into::into));
    args.push("--json".into());
    args.push(json.into());
    smelt(args)
}

#[test]
fn figures_match_numpy_on_onnxruntime_outputs() {
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runtime("validate.numpy.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "tiny-llama.ort-int8-dynamic",
        "tiny-llama.ort-int8-qdq",
        "tiny-llama.ort-matmulnbits4",
        "tiny-llama.ort-bnb4-nf4",
        "tiny-llama.ort-matmulnbits8",
    ] {
        let json = dir.path().join(format!("{name}.json"));
        let o = validate(name, &[], &json);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert!(stdout(&o).contains("PASS"), "{}", stdout(&o));
        let got: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(got["schema"], "smelt.validate/1");
        let out = &got["outputs"][0];
        assert_eq!(out["name"], "logits");
        let w = &want[name];
        // smelt's and onnxruntime's outputs differ by ~1e-7, so the figures agree closely.
        for (key, tol) in [
            ("max_abs", 1e-5),
            ("mean_abs", 1e-6),
            ("cosine", 1e-6),
            ("sqnr_db", 1e-3),
            ("kl_divergence", 1e-7),
        ] {
            let (g, e) = (out[key].as_f64().unwrap(), w[key].as_f64().unwrap());
            assert!((g - e).abs() <= tol, "{name} {key}: smelt {g}, numpy {e}");
        }
        assert_eq!(out["top1_agreement"].as_f64(), w["top1_agreement"].as_f64(), "{name} top1");
    }
}

#[test]
fn thresholds_decide_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("v.json");
    // int8 dynamic: cosine ~0.9998 (numpy), max abs ~0.012.
    let o = validate(
        "tiny-llama.ort-int8-dynamic",
        &["--min-cosine", "0.999", "--max-abs", "0.05", "--min-top1", "0.5"],
        &json,
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = validate("tiny-llama.ort-int8-dynamic", &["--max-abs", "0.001"], &json);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("FAIL logits max_abs"), "{}", stdout(&o));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["checks"][0]["metric"], "max_abs");
    let o = validate("tiny-llama.ort-bnb4-nf4", &["--min-cosine", "0.999"], &json);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}

#[test]
fn recipe_thresholds_decide_the_exit_code_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("v.json");
    let recipe = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.into_os_string().into_string().unwrap()
    };
    // int8 dynamic: cosine ~0.9998, max abs ~0.012 (numpy); the conversion keys share the file.
    let holds = recipe(
        "holds.toml",
        "quant = \"int8\"\n[validate]\nmax_abs = 0.05\nmin_cosine = 0.999\nmin_top1 = 0.5\n",
    );
    let o = validate("tiny-llama.ort-int8-dynamic", &["--recipe", &holds], &json);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let metrics: Vec<&str> =
        report["checks"].as_array().unwrap().iter().map(|c| c["metric"].as_str().unwrap()).collect();
    assert_eq!(metrics, ["max_abs", "cosine", "top1_agreement"]);
    assert_eq!(report["checks"][0]["threshold"], 0.05);

    let strict = recipe("strict.toml", "[validate]\nmax_abs = 0.001\n");
    let o = validate("tiny-llama.ort-int8-dynamic", &["--recipe", &strict], &json);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("FAIL logits max_abs"), "{}", stdout(&o));
    // The flag overrides the recipe's threshold.
    let o = validate("tiny-llama.ort-int8-dynamic", &["--recipe", &strict, "--max-abs", "0.05"], &json);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // A per-output table overrides the recipe's table for that output.
    let per_output =
        recipe("per-output.toml", "[validate]\nmax_abs = 0.001\n[validate.outputs.logits]\nmax_abs = 0.05\n");
    let o = validate("tiny-llama.ort-int8-dynamic", &["--recipe", &per_output], &json);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let per_output = recipe("per-output-fails.toml", "[validate.outputs.logits]\nmin_cosine = 0.99999\n");
    let o = validate("tiny-llama.ort-int8-dynamic", &["--recipe", &per_output], &json);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("FAIL logits cosine"), "{}", stdout(&o));
}

#[test]
fn bad_recipe_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("v.json");
    for (text, wanted) in [
        ("[validate]\nmax_abs = 0.1\nmin_cosin = 0.9\n", &["min_cosin", "line 3"][..]),
        ("[validate]\nmin_top1 = 2\n", &["validate.min_top1"][..]),
        ("[validate.outputs.probs]\nmax_abs = 0.1\n", &["validate.outputs.probs", "no output 'probs'"][..]),
    ] {
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, text).unwrap();
        let o = validate("tiny-llama.ort-int8-dynamic", &["--recipe", p.to_str().unwrap()], &json);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{}", stdout(&o));
        for w in wanted {
            assert!(stderr(&o).contains(w), "{text}: wanted {w} in {}", stderr(&o));
        }
        assert!(stderr(&o).contains("bad.toml"), "{}", stderr(&o));
    }
}

#[test]
fn identical_models_have_zero_error() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("v.json");
    let m = fixtures().join("onnx/torch-tiny-llama.onnx");
    let o = smelt([
        "validate".as_ref(),
        m.as_os_str(),
        m.as_os_str(),
        "--random".as_ref(),
        "2".as_ref(),
        "--seed".as_ref(),
        "7".as_ref(),
        "--int-high".as_ref(),
        "256".as_ref(),
        "--max-abs".as_ref(),
        "0".as_ref(),
        "--min-top1".as_ref(),
        "1".as_ref(),
        "--json".as_ref(),
        json.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["input_sets"], 2);
    assert_eq!(report["outputs"][0]["max_abs"], 0.0);
    assert_eq!(report["outputs"][0]["top1_agreement"], 1.0);
}

#[test]
fn random_inputs_are_reproducible_from_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, file: &str| {
        let json = dir.path().join(file);
        let r = fixtures().join("onnx/torch-tiny-llama.onnx");
        let c = runtime("tiny-llama.ort-matmulnbits4.onnx");
        let o = smelt([
            "validate".as_ref(),
            r.as_os_str(),
            c.as_os_str(),
            "--random".as_ref(),
            "1".as_ref(),
            "--seed".as_ref(),
            seed.as_ref(),
            "--json".as_ref(),
            json.as_os_str(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        v["outputs"][0]["max_abs"].as_f64().unwrap()
    };
    assert_eq!(run("3", "a.json"), run("3", "b.json"));
    assert_ne!(run("3", "c.json"), run("4", "d.json"));
}

#[test]
fn bad_input_exits_2() {
    let m = fixtures().join("onnx/torch-tiny-llama.onnx");
    let o = smelt([
        "validate".as_ref(),
        m.as_os_str(),
        "/no/such/model.onnx".as_ref(),
        "--random".as_ref(),
        "1".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/no/such/model.onnx"), "{}", stderr(&o));
    // Neither --inputs nor --random.
    let o = smelt(["validate".as_ref(), m.as_os_str(), m.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    // Models with different outputs.
    let mlp = fixtures().join("onnx/torch-mlp.onnx");
    let o = smelt(["validate".as_ref(), m.as_os_str(), mlp.as_os_str(), "--random".as_ref(), "1".as_ref()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("outputs differ"), "{}", stderr(&o));
}
