//! `smelt inspect` on real fixtures of every format: the JSON report must agree with the
//! reference manifests written by independent libraries, and every malformed fixture must be
//! refused with exit code 2, a message naming the file, and nothing on stdout.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{fixtures, smelt, stderr, stdout};

fn inspect_json(path: &Path) -> Value {
    let o = smelt([std::ffi::OsStr::new("inspect"), path.as_os_str(), std::ffi::OsStr::new("--json")]);
    assert_eq!(o.status.code(), Some(0), "{}: {}", path.display(), stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("inspect --json prints JSON")
}

fn manifest(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks names, dtypes and shapes of every tensor, and the totals, against a manifest.
fn assert_report_matches(report: &Value, manifest: &Value, format: &str) {
    assert_eq!(report["schema"], "smelt.inspect/1");
    assert_eq!(report["format"], format);
    let want = manifest["tensors"].as_array().unwrap();
    let got = report["tensors"].as_array().unwrap();
    assert_eq!(report["tensor_count"].as_u64().unwrap() as usize, want.len());
    assert_eq!(got.len(), want.len());
    let mut params = 0u64;
    for w in want {
        let name = w["name"].as_str().unwrap();
        let g = got.iter().find(|g| g["name"] == name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(g["dtype"], w["dtype"], "{name}");
        assert_eq!(g["shape"], w["shape"], "{name}");
        params += w["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).product::<u64>();
    }
    assert_eq!(report["parameters"].as_u64().unwrap(), params);
    let by_dtype: u64 =
        report["by_dtype"].as_array().unwrap().iter().map(|d| d["tensors"].as_u64().unwrap()).sum();
    assert_eq!(by_dtype as usize, want.len());
}

#[test]
fn hf_sharded_checkpoint_directory() {
    let dir = fixtures().join("hf/tiny-llama-sharded");
    let r = inspect_json(&dir);
    assert_report_matches(&r, &manifest(&dir.join("model.reference.json")), "safetensors");
    let arch = &r["architecture"];
    assert_eq!(arch["model_type"], "llama");
    assert_eq!(arch["hidden_size"], 64);
    assert_eq!(arch["num_layers"], 2);
    assert_eq!(arch["num_kv_heads"], 2);
    // index + 3 shards + config.json
    assert_eq!(r["files"].as_array().unwrap().len(), 5);
}

#[test]
fn hf_bf16_checkpoint_text_summary() {
    let dir = fixtures().join("hf/tiny-llama-bf16");
    let o = smelt([std::ffi::OsStr::new("inspect"), dir.as_os_str(), std::ffi::OsStr::new("--tensors")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("BF16"), "{text}");
    assert!(text.contains("model.layers.0.self_attn.q_proj.weight"), "{text}");
    assert!(text.contains("architecture  llama"), "{text}");
}

#[test]
fn gguf_file() {
    let f = fixtures().join("gguf/tiny-llama.gguf");
    let r = inspect_json(&f);
    assert_report_matches(&r, &manifest(&fixtures().join("gguf/tiny-llama.gguf.reference.json")), "gguf");
    assert_eq!(r["version"], "GGUF v3");
    assert_eq!(r["architecture"]["model_type"], "llama");
    let arch_key =
        r["metadata"].as_array().unwrap().iter().find(|m| m["key"] == "general.architecture").unwrap();
    assert_eq!(arch_key["type"], "STRING");
    assert_eq!(arch_key["value"], "llama");
}

#[test]
fn gguf_long_arrays_are_summarised_unless_full_metadata() {
    let f = fixtures().join("gguf/tiny-llama.gguf");
    let r = inspect_json(&f);
    let tokens =
        r["metadata"].as_array().unwrap().iter().find(|m| m["key"] == "tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens["elem_type"], "STRING");
    assert!(tokens["len"].as_u64().unwrap() > 16);
    assert!(tokens.get("value").is_none());
    let o = smelt([
        std::ffi::OsStr::new("inspect"),
        f.as_os_str(),
        "--json".as_ref(),
        "--full-metadata".as_ref(),
    ]);
    let full: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let tokens =
        full["metadata"].as_array().unwrap().iter().find(|m| m["key"] == "tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens["value"].as_array().unwrap().len() as u64, tokens["len"].as_u64().unwrap());
}

#[test]
fn onnx_exported_by_torch() {
    let f = fixtures().join("onnx/torch-mlp.onnx");
    let r = inspect_json(&f);
    let m = manifest(&fixtures().join("onnx/torch-mlp.reference.json"));
    assert_report_matches(&r, &m, "onnx");
    assert!(r["version"].as_str().unwrap().starts_with("ONNX IR"));
    // Graph interface as onnx.load read it.
    let g = &r["graph"];
    assert_eq!(g["inputs"], m["inputs"]);
    assert_eq!(g["outputs"], m["outputs"]);
    assert_eq!(g["ir_version"], m["ir_version"]);
    assert_eq!(g["opsets"][0]["version"], m["opsets"][0]["version"]);
    assert!(g["nodes"].as_u64().unwrap() > 0);
}

#[test]
fn onnx_with_external_data() {
    let dir = fixtures().join("onnx/torch-tiny-llama-external");
    let r = inspect_json(&dir.join("model.onnx"));
    let files = r["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f.as_str().unwrap().ends_with("model.onnx.data")), "{files:?}");
    assert!(r["tensors"].as_array().unwrap().iter().any(|t| t["file"].as_u64() == Some(1)));
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn every_malformed_fixture_is_refused_with_exit_2() {
    let mut files = Vec::new();
    for fmt in ["gguf", "onnx", "safetensors"] {
        all_files(&fixtures().join("malformed").join(fmt), &mut files);
    }
    // READMEs describe the fixtures; external data and shards are read through their model.
    files.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        let ext = p.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        !name.ends_with(".md") && matches!(ext.as_str(), "gguf" | "onnx" | "safetensors")
            || name.ends_with(".index.json")
    });
    assert!(files.len() >= 30, "expected many malformed fixtures, found {}", files.len());
    let mut refused = 0;
    for f in &files {
        // Shards of a malformed sharded checkpoint may be valid on their own: only their index
        // is the lie.
        if f.extension().is_some_and(|e| e == "safetensors")
            && f.parent().unwrap().join("model.safetensors.index.json").exists()
        {
            continue;
        }
        // The target a malformed index escapes to with '..' is itself a valid file.
        if f.file_name().is_some_and(|n| n == "outside.safetensors") {
            continue;
        }
        let o = smelt([std::ffi::OsStr::new("inspect"), f.as_os_str()]);
        assert_eq!(o.status.code(), Some(2), "{} was not refused: {}", f.display(), stdout(&o));
        assert!(stdout(&o).is_empty(), "{}: printed a report", f.display());
        let err = stderr(&o);
        assert!(err.starts_with("smelt: error: "), "{}: {err}", f.display());
        assert!(
            err.contains(f.file_name().unwrap().to_str().unwrap())
                || err.contains(f.parent().unwrap().to_str().unwrap()),
            "{}: error does not name the file: {err}",
            f.display()
        );
        refused += 1;
    }
    eprintln!("{refused} malformed fixtures refused");
}
