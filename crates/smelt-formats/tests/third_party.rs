//! Checkpoints written by the real third-party tools — transformers' `save_pretrained` (single
//! file, bf16, f16, sharded, Qwen2 biases, tied embeddings) and `torch.onnx.export` (inline and
//! external data) — read by smelt and compared with what the reference readers (safetensors'
//! `safe_open`, `onnx.load`) read from the same files: tensors, where their bytes sit, the
//! architecture config, and the ONNX graph's interface.
//!
//! The fixtures and their `*.reference.json` manifests come from
//! tools/fixtures/gen_torch_fixtures.py (see fixtures/hf/README.md and fixtures/onnx/README.md).

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use smelt_formats::onnx::{Dim, ElemType, ValueInfo, ValueType};
use smelt_formats::{Format, Model};

fn hf_dir(name: &str) -> PathBuf {
    common::fixtures().join("hf").join(name)
}

fn onnx_fixture(rel: &str) -> PathBuf {
    common::fixtures().join("onnx").join(rel)
}

fn read_manifest(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("{}: {e} (regenerate with tools/fixtures/gen_torch_fixtures.py)", path.display())
    });
    serde_json::from_str(&text).expect("reference manifest is JSON")
}

fn open(path: &Path) -> Model {
    smelt_formats::open(path).unwrap_or_else(|e| panic!("smelt could not open {}: {e}", path.display()))
}

/// Each manifest tensor that names a `file` and `offset` (what the reference side computed from
/// the format's own layout) must sit exactly there in smelt's [`smelt_formats::Location`].
fn assert_locations_match(model: &Model, manifest: &Value) {
    for rt in manifest["tensors"].as_array().expect("tensors array") {
        let (Some(file), Some(offset)) = (rt["file"].as_str(), rt["offset"].as_u64()) else {
            continue;
        };
        let name = rt["name"].as_str().unwrap();
        let t = model.tensor(name).unwrap_or_else(|| panic!("tensor {name} missing"));
        let path = model.files.get(t.location.file).unwrap_or_else(|| {
            panic!("{name}: location names file #{} of {}", t.location.file, model.files.len())
        });
        assert_eq!(path.file_name().and_then(|n| n.to_str()), Some(file), "{name}: file holding its bytes");
        assert_eq!(t.location.offset, offset, "{name}: absolute data offset in {file}");
    }
}

// ------------------------------------------------------------------------------------------
// Hugging Face checkpoints (transformers save_pretrained, safe_serialization=True)
// ------------------------------------------------------------------------------------------

/// Compares `model.config` with the `config` object of the manifest (read from config.json by
/// Python's `json`, `null` where the file gives no value), then with the numbers every tiny
/// checkpoint shares.
fn assert_config_matches(model: &Model, manifest: &Value, dtype: &str) {
    let c = model.config.as_ref().expect("config.json beside the checkpoint was picked up");
    let want = &manifest["config"];
    let u = |k: &str| want[k].as_u64();
    let f = |k: &str| want[k].as_f64();
    assert_eq!(c.model_type, want["model_type"].as_str().unwrap(), "model_type");
    assert_eq!(c.architecture.as_deref(), want["architecture"].as_str(), "architecture");
    assert_eq!(c.hidden_size, u("hidden_size"), "hidden_size");
    assert_eq!(c.num_layers, u("num_layers"), "num_layers");
    assert_eq!(c.num_heads, u("num_heads"), "num_heads");
    assert_eq!(c.num_kv_heads, u("num_kv_heads"), "num_kv_heads");
    assert_eq!(c.head_dim, u("head_dim"), "head_dim");
    assert_eq!(c.intermediate_size, u("intermediate_size"), "intermediate_size");
    assert_eq!(c.vocab_size, u("vocab_size"), "vocab_size");
    assert_eq!(c.max_position_embeddings, u("max_position_embeddings"), "max_position_embeddings");
    assert_eq!(c.rope_theta, f("rope_theta"), "rope_theta");
    assert_eq!(c.rms_norm_eps, f("rms_norm_eps"), "rms_norm_eps");
    assert_eq!(c.tie_word_embeddings, want["tie_word_embeddings"].as_bool(), "tie_word_embeddings");
    assert_eq!(c.dtype.as_deref(), want["dtype"].as_str(), "dtype");

    // The shape gen_torch_fixtures.py gives every tiny checkpoint, independent of the manifest.
    assert_eq!(
        (c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.vocab_size),
        (Some(64), Some(2), Some(4), Some(2), Some(256)),
        "hidden, layers, heads, kv heads, vocab"
    );
    assert_eq!(c.dtype.as_deref(), Some(dtype), "declared dtype");
}

/// Opens an HF checkpoint directory and checks it against `model.reference.json`.
fn check_hf(name: &str, dtype: &str) -> Model {
    let dir = hf_dir(name);
    let model = open(&dir);
    assert_eq!(model.format, Format::Safetensors);
    let manifest_path = dir.join("model.reference.json");
    common::assert_matches_reference(&model, &manifest_path);
    let manifest = read_manifest(&manifest_path);
    assert_locations_match(&model, &manifest);
    assert_config_matches(&model, &manifest, dtype);
    model
}

#[test]
fn hf_tiny_llama_f32() {
    let model = check_hf("tiny-llama-f32", "float32");
    assert!(model.tensor("lm_head.weight").is_some(), "untied checkpoint keeps its output head");
}

#[test]
fn hf_tiny_llama_bf16() {
    let model = check_hf("tiny-llama-bf16", "bfloat16");
    assert!(model.tensors.iter().all(|t| t.dtype == smelt_tensor::DType::BF16));
}

#[test]
fn hf_tiny_llama_sharded_directory() {
    let model = check_hf("tiny-llama-sharded", "float32");
    let dir = hf_dir("tiny-llama-sharded");
    let index = read_manifest(&dir.join(smelt_formats::SHARD_INDEX_NAME));
    let mut shards: Vec<&str> =
        index["weight_map"].as_object().unwrap().values().filter_map(Value::as_str).collect();
    shards.sort_unstable();
    shards.dedup();
    assert!(shards.len() >= 3, "fixture has {} shards", shards.len());
    for shard in &shards {
        assert!(
            model.files.iter().any(|f| f.file_name().and_then(|n| n.to_str()) == Some(*shard)),
            "{shard} missing from Model::files"
        );
    }
    // The same tensors, byte for byte, as the single-file save of the same weights.
    let single = open(&hf_dir("tiny-llama-f32"));
    assert_eq!(model.tensors.len(), single.tensors.len());
    for t in &single.tensors {
        let s = model.tensor(&t.name).unwrap_or_else(|| panic!("{} missing from the shards", t.name));
        assert_eq!((s.dtype, &s.shape, &s.data), (t.dtype, &t.shape, &t.data), "{}", t.name);
    }
}

#[test]
fn hf_tiny_llama_sharded_via_index_file() {
    let dir = hf_dir("tiny-llama-sharded");
    let model = open(&dir.join(smelt_formats::SHARD_INDEX_NAME));
    common::assert_matches_reference(&model, &dir.join("model.reference.json"));
    assert!(model.config.is_some(), "config.json beside the index was picked up");
}

#[test]
fn hf_tiny_qwen2_attention_biases() {
    let model = check_hf("tiny-qwen2-f32", "float32");
    for layer in 0..2 {
        for proj in ["q_proj", "k_proj", "v_proj"] {
            let name = format!("model.layers.{layer}.self_attn.{proj}.bias");
            assert!(model.tensor(&name).is_some(), "{name} missing");
        }
    }
}

#[test]
fn hf_tiny_mistral_tied_embeddings_f16() {
    let model = check_hf("tiny-mistral-tied-f16", "float16");
    assert_eq!(model.config.as_ref().unwrap().tie_word_embeddings, Some(true));
    assert!(model.tensor("lm_head.weight").is_none(), "save_pretrained drops the tied head");
    assert!(model.tensor("model.embed_tokens.weight").is_some());
}

// ------------------------------------------------------------------------------------------
// torch.onnx.export
// ------------------------------------------------------------------------------------------

fn dim_json(d: &Dim<'_>) -> Value {
    match d {
        Dim::Fixed(n) => Value::from(*n),
        Dim::Symbolic(s) => Value::from(*s),
        // onnx's Python API reads a dimension with neither field as `dim_param == ""`.
        Dim::Unknown => Value::from(""),
    }
}

fn value_info_json(v: &ValueInfo<'_>) -> Value {
    let ValueType::Tensor { elem, shape, sparse: false } = &v.ty else {
        panic!("{}: expected a dense tensor type, found {:?}", v.name, v.ty);
    };
    let ElemType::DType(dtype) = elem else {
        panic!("{}: element type {elem:?} has no smelt dtype", v.name);
    };
    let shape = shape.as_ref().map_or(Vec::new(), |s| s.iter().map(dim_json).collect());
    serde_json::json!({ "name": v.name, "dtype": dtype.name(), "shape": shape })
}

/// The graph's interface and model fields against the manifest's `inputs`, `outputs`, `opsets`,
/// `ir_version`, `producer_name` and `producer_version` (as `onnx.load` read them).
fn assert_graph_matches(model: &Model, manifest: &Value) {
    let g = model.graph.as_ref().expect("an ONNX model has a graph");
    let inputs: Vec<Value> = g.inputs().iter().map(value_info_json).collect();
    assert_eq!(Value::from(inputs), manifest["inputs"], "graph inputs");
    let outputs: Vec<Value> = g.outputs().iter().map(value_info_json).collect();
    assert_eq!(Value::from(outputs), manifest["outputs"], "graph outputs");
    let opsets: Vec<Value> = g
        .opset_imports()
        .iter()
        .map(|o| serde_json::json!({ "domain": o.domain, "version": o.version }))
        .collect();
    assert_eq!(Value::from(opsets), manifest["opsets"], "opset imports");
    assert_eq!(Some(g.ir_version()), manifest["ir_version"].as_i64(), "ir_version");
    assert_eq!(Some(g.producer_name()), manifest["producer_name"].as_str(), "producer_name");
    assert_eq!(Some(g.producer_version()), manifest["producer_version"].as_str(), "producer_version");
    // No initializer doubles as a graph input (torch exports at IR >= 4 without
    // keep_initializers_as_inputs), so what a caller feeds is the whole input list.
    assert_eq!(g.runtime_inputs().len(), g.inputs().len(), "initializers listed as graph inputs");
}

/// Opens an exported `.onnx` file and checks it against its manifest.
fn check_onnx(model_path: &Path, manifest_path: &Path) -> Model {
    let model = open(model_path);
    assert_eq!(model.format, Format::Onnx);
    common::assert_matches_reference(&model, manifest_path);
    let manifest = read_manifest(manifest_path);
    assert_locations_match(&model, &manifest);
    assert_graph_matches(&model, &manifest);
    model
}

#[test]
fn torch_onnx_mlp() {
    let model = check_onnx(&onnx_fixture("torch-mlp.onnx"), &onnx_fixture("torch-mlp.reference.json"));
    let g = model.graph.as_ref().unwrap();
    assert!(g.nodes().iter().any(|n| n.op_type.as_deref() == Some("LayerNormalization")), "LayerNorm node");
}

#[test]
fn torch_onnx_tiny_llama() {
    let model =
        check_onnx(&onnx_fixture("torch-tiny-llama.onnx"), &onnx_fixture("torch-tiny-llama.reference.json"));
    // The TorchScript exporter keeps module-path names for weights it uses as is and names the
    // transposed copies it folds for MatMul `onnx::MatMul_<n>`.
    assert!(model.tensor("model.model.embed_tokens.weight").is_some());
    assert!(model.tensors.iter().any(|t| t.name.starts_with("onnx::MatMul_")));
    assert_eq!(model.files.len(), 1, "inline initializers need no other file");
}

#[test]
fn torch_onnx_tiny_llama_external_data() {
    let dir = onnx_fixture("torch-tiny-llama-external");
    let model = check_onnx(&dir.join("model.onnx"), &dir.join("model.reference.json"));
    assert!(
        model.files.iter().any(|f| f.file_name().and_then(|n| n.to_str()) == Some("model.onnx.data")),
        "external data file listed in Model::files"
    );
    // Same weights as the inline export, only stored elsewhere.
    let inline = open(&onnx_fixture("torch-tiny-llama.onnx"));
    assert_eq!(model.tensors.len(), inline.tensors.len());
    for t in &inline.tensors {
        let e = model.tensor(&t.name).unwrap_or_else(|| panic!("{} missing", t.name));
        assert_eq!((e.dtype, &e.shape, &e.data), (t.dtype, &t.shape, &t.data), "{}", t.name);
    }
}

#[test]
fn torch_onnx_tiny_llama_directory_opens_its_model() {
    let dir = onnx_fixture("torch-tiny-llama-external");
    let model = open(&dir);
    assert_eq!(model.format, Format::Onnx);
    common::assert_matches_reference(&model, &dir.join("model.reference.json"));
}

/// The fixed input and torch's output stored beside each export (for the runner's tests) must
/// be readable and agree with the graph's declared interface.
#[test]
fn torch_onnx_io_samples_match_graph_interface() {
    for stem in ["torch-mlp", "torch-tiny-llama"] {
        let manifest = read_manifest(&onnx_fixture(&format!("{stem}.reference.json")));
        for (file, decl) in [("input", &manifest["inputs"][0]), ("output", &manifest["outputs"][0])] {
            let path = onnx_fixture(&format!("{stem}.{file}.npy"));
            let array = smelt_formats::npy::read(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(array.dtype.name(), decl["dtype"], "{stem}.{file}.npy dtype");
            assert_eq!(serde_json::json!(array.shape), decl["shape"], "{stem}.{file}.npy shape");
            let values = array.to_f32().expect("numeric array");
            assert!(values.iter().all(|v| v.is_finite()), "{stem}.{file}.npy holds non-finite values");
        }
    }
}

/// Each HF checkpoint but the sharded copy carries a fixed prompt and torch's logits for it
/// (for the built-in decoder's tests): they must be readable with the expected shapes.
#[test]
fn hf_sample_prompts_and_logits_are_readable() {
    for name in ["tiny-llama-f32", "tiny-llama-bf16", "tiny-qwen2-f32", "tiny-mistral-tied-f16"] {
        let dir = hf_dir(name);
        let ids =
            smelt_formats::npy::read(&dir.join("sample.input_ids.npy")).unwrap_or_else(|e| panic!("{e}"));
        let logits =
            smelt_formats::npy::read(&dir.join("sample.logits.npy")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (ids.dtype, ids.shape.as_slice()),
            (smelt_tensor::DType::I64, &[1u64, 8][..]),
            "{name} prompt"
        );
        assert_eq!(
            (logits.dtype, logits.shape.as_slice()),
            (smelt_tensor::DType::F32, &[1u64, 8, 256][..]),
            "{name} logits"
        );
        assert!(
            ids.to_f32().unwrap().iter().all(|&t| (0.0..256.0).contains(&t)),
            "{name}: token ids within vocab"
        );
    }
}
