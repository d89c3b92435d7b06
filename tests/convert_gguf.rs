//! `smelt convert` to GGUF, checked by llama.cpp's own tools: gguf-py must find exactly the
//! bytes its own quantizers make from the HF weights (names from its tensor map, the
//! converter's Q/K permutation), and llama.cpp must load the file and reproduce transformers'
//! logits (the llama.cpp tests build llama.cpp, so they are `#[ignore]`d here and run
//! explicitly by tools/test-all.sh after tools/interop/build-llama-cpp.sh).

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use support::{fixtures, interop, smelt, stderr};

fn convert_to(dir: &Path, hf: &str, quant: &str) -> PathBuf {
    let out = dir.join(format!("{hf}-{quant}.gguf"));
    let input = fixtures().join("hf").join(hf);
    let o = smelt([
        OsStr::new("convert"),
        input.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--quant"),
        OsStr::new(quant),
    ]);
    assert_eq!(o.status.code(), Some(0), "{hf} {quant}: {}", stderr(&o));
    out
}

#[test]
fn ggml_types_equal_gguf_py_quantizers_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for quant in ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f16", "f32"] {
        let out = convert_to(dir.path(), "tiny-llama-f32", quant);
        let hf = fixtures().join("hf/tiny-llama-f32");
        let text = interop("check_convert_gguf.py", &[out.as_os_str(), hf.as_os_str(), OsStr::new(quant)]);
        assert!(text.contains("OK"), "{text}");
    }
}

#[test]
fn every_hf_fixture_converts_like_llama_cpps_converter() {
    let dir = tempfile::tempdir().unwrap();
    for hf in ["tiny-llama-bf16", "tiny-llama-sharded", "tiny-qwen2-f32", "tiny-mistral-tied-f16"] {
        let out = convert_to(dir.path(), hf, "q8_0");
        let hf_dir = fixtures().join("hf").join(hf);
        let text =
            interop("check_convert_gguf.py", &[out.as_os_str(), hf_dir.as_os_str(), OsStr::new("q8_0")]);
        assert!(text.contains("OK"), "{hf}: {text}");
    }
}

#[test]
fn gguf_requantized_keeps_every_metadata_key() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("gguf/tiny-llama.gguf");
    let out = dir.path().join("re.gguf");
    let o = smelt([
        OsStr::new("convert"),
        input.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--quant"),
        OsStr::new("q4_0"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let meta = |p: &Path| -> serde_json::Value {
        let o = smelt([
            OsStr::new("inspect"),
            p.as_os_str(),
            OsStr::new("--json"),
            OsStr::new("--full-metadata"),
        ]);
        serde_json::from_str(&String::from_utf8(o.stdout).unwrap()).unwrap()
    };
    let (a, b) = (meta(&input), meta(&out));
    for entry in a["metadata"].as_array().unwrap() {
        let key = entry["key"].as_str().unwrap();
        let got = b["metadata"].as_array().unwrap().iter().find(|e| e["key"] == key);
        let got = got.unwrap_or_else(|| panic!("{key} lost"));
        if key != "general.file_type" && key != "general.quantization_version" {
            assert_eq!(got, entry, "{key} changed");
        }
    }
    let ft = b["metadata"].as_array().unwrap().iter().find(|e| e["key"] == "general.file_type").unwrap();
    assert_eq!(ft["value"], 2, "LLAMA_FTYPE_MOSTLY_Q4_0");
}

fn llama_eval() -> PathBuf {
    // tools/test-all.sh exports the path build-llama-cpp.sh printed.
    let bin = std::env::var_os("SMELT_LLAMA_EVAL").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/llama.cpp/build/smelt-llama-eval")
    });
    assert!(bin.exists(), "{} missing: run tools/interop/build-llama-cpp.sh", bin.display());
    bin
}

#[test]
#[ignore = "needs llama.cpp built by tools/interop/build-llama-cpp.sh; tools/test-all.sh runs it"]
fn llama_cpp_runs_converted_models() {
    let eval = llama_eval();
    let dir = tempfile::tempdir().unwrap();
    let hf = fixtures().join("hf/tiny-llama-f32");
    // Tolerances on |logit - transformers' logit|: f16 storage rounding, then 8-bit weights;
    // the argmax must agree at every position. (4-bit weights flip the argmax of this random
    // model's nearly flat logits, so Q4_0 is checked byte for byte against gguf-py instead.)
    for (quant, tol) in [("f16", "1e-3"), ("q8_0", "5e-2")] {
        let out = convert_to(dir.path(), "tiny-llama-f32", quant);
        let text = interop(
            "check_llama_cpp.py",
            &[eval.as_os_str(), out.as_os_str(), hf.as_os_str(), OsStr::new("--tolerance"), OsStr::new(tol)],
        );
        eprintln!("{quant}: {text}");
    }
}
