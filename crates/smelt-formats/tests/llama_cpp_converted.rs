//! The GGUF reader against files llama.cpp's own converter (`convert_hf_to_gguf.py`, pinned
//! llama.cpp 0c1e57098) wrote from `fixtures/hf/tiny-llama-f32` with `--outtype f32`, `f16` and
//! `q8_0` (tools/fixtures/gen_llama_cpp_converted.py; fixtures/gguf/llama-cpp/README.md).
//! Each is compared with gguf-py's reading of it (`*.reference.json`), its architecture config
//! is checked against the checkpoint's config.json, and its weights against the checkpoint
//! smelt reads from safetensors. Q8_0 decoding lives in smelt-quant's test of the same name.

mod common;

use std::path::PathBuf;

use common::{assert_matches_reference, fixtures};
use smelt_formats::{Format, Model};
use smelt_tensor::convert::to_f32_vec;
use smelt_tensor::DType;

fn converted(outtype: &str) -> PathBuf {
    fixtures().join("gguf").join("llama-cpp").join(format!("tiny-llama-{outtype}.gguf"))
}

/// Opens a converted file through format detection and compares it with its manifest.
fn open_checked(outtype: &str) -> Model {
    let path = converted(outtype);
    let model = smelt_formats::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.format, Format::Gguf, "{outtype}: detected format");
    assert_eq!(model.version, "GGUF v3", "{outtype}: version");
    assert_matches_reference(&model, &PathBuf::from(format!("{}.reference.json", path.display())));
    model
}

fn values(model: &Model, name: &str) -> Vec<f32> {
    let t = model.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
    to_f32_vec(t.dtype, &t.data, t.numel() as usize).unwrap_or_else(|| panic!("{name}: no f32 reading"))
}

/// The converter's tensor names for the checkpoint's, for tensors it copies without change
/// (it permutes the rows of q_proj and k_proj for ggml's RoPE layout, so those are left out).
fn unpermuted_names() -> Vec<(String, String)> {
    let mut names = vec![
        ("model.embed_tokens.weight".to_string(), "token_embd.weight".to_string()),
        ("model.norm.weight".to_string(), "output_norm.weight".to_string()),
        ("lm_head.weight".to_string(), "output.weight".to_string()),
    ];
    for layer in 0..2 {
        for (hf, gguf) in [
            ("input_layernorm", "attn_norm"),
            ("post_attention_layernorm", "ffn_norm"),
            ("self_attn.v_proj", "attn_v"),
            ("self_attn.o_proj", "attn_output"),
            ("mlp.gate_proj", "ffn_gate"),
            ("mlp.up_proj", "ffn_up"),
            ("mlp.down_proj", "ffn_down"),
        ] {
            names.push((format!("model.layers.{layer}.{hf}.weight"), format!("blk.{layer}.{gguf}.weight")));
        }
    }
    names
}

#[test]
fn f32_file_matches_gguf_py() {
    open_checked("f32");
}

#[test]
fn f16_file_matches_gguf_py() {
    open_checked("f16");
}

#[test]
fn q8_0_file_matches_gguf_py() {
    open_checked("q8_0");
}

#[test]
fn config_matches_the_checkpoint() {
    for outtype in ["f32", "f16", "q8_0"] {
        let c = open_checked(outtype).config.unwrap_or_else(|| panic!("{outtype}: no config"));
        assert_eq!(c.model_type, "llama", "{outtype}");
        assert_eq!(c.hidden_size, Some(64), "{outtype}: hidden size");
        assert_eq!(c.num_layers, Some(2), "{outtype}: layers");
        assert_eq!(c.num_heads, Some(4), "{outtype}: heads");
        assert_eq!(c.num_kv_heads, Some(2), "{outtype}: kv heads");
        assert_eq!(c.head_dim, Some(16), "{outtype}: head dim");
        assert_eq!(c.intermediate_size, Some(128), "{outtype}: intermediate size");
        assert_eq!(c.vocab_size, Some(256), "{outtype}: vocab");
        assert_eq!(c.max_position_embeddings, Some(128), "{outtype}: context length");
        assert_eq!(c.rope_theta, Some(10000.0), "{outtype}: rope theta");
        assert_eq!(c.rms_norm_eps, Some(1e-6), "{outtype}: rms norm eps");
        assert_eq!(c.tie_word_embeddings, Some(false), "{outtype}: output.weight is present");
    }
}

#[test]
fn file_types_and_tensor_types() {
    // general.file_type is llama_ftype: 0 ALL_F32, 1 MOSTLY_F16, 7 MOSTLY_Q8_0. The converter
    // keeps 1-D tensors (the norms) in F32 and stores every matrix in the requested type.
    for (outtype, ftype, matrix_dtype) in
        [("f32", 0, DType::F32), ("f16", 1, DType::F16), ("q8_0", 7, DType::Q8_0)]
    {
        let model = open_checked(outtype);
        let got = model.meta("general.file_type").map(|v| v.to_json());
        assert_eq!(got, Some(serde_json::json!(ftype)), "{outtype}: general.file_type");
        assert_eq!(model.tensors.len(), 21, "{outtype}: tensor count");
        for t in &model.tensors {
            let want = if t.shape.len() == 1 { DType::F32 } else { matrix_dtype };
            assert_eq!(t.dtype, want, "{outtype}: {}", t.name);
        }
    }
}

#[test]
fn f32_weights_equal_the_safetensors_checkpoint() {
    let hf = smelt_formats::open(&fixtures().join("hf/tiny-llama-f32/model.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    let gguf = open_checked("f32");
    for (hf_name, gguf_name) in unpermuted_names() {
        let a = hf.tensor(&hf_name).unwrap_or_else(|| panic!("{hf_name} missing"));
        let b = gguf.tensor(&gguf_name).unwrap_or_else(|| panic!("{gguf_name} missing"));
        assert_eq!(a.shape, b.shape, "{gguf_name}: shape");
        assert_eq!(a.data, b.data, "{gguf_name}: bytes differ from {hf_name}");
    }
    // q and k: same shapes, same multiset of rows' values (the converter permutes rows only).
    for layer in 0..2 {
        for (hf_proj, gguf_proj) in [("q_proj", "attn_q"), ("k_proj", "attn_k")] {
            let hf_name = format!("model.layers.{layer}.self_attn.{hf_proj}.weight");
            let g_name = format!("blk.{layer}.{gguf_proj}.weight");
            let a = hf.tensor(&hf_name).unwrap();
            let b = gguf.tensor(&g_name).unwrap();
            assert_eq!(a.shape, b.shape, "{g_name}: shape");
            let mut ra: Vec<&[u8]> = a.data.chunks(64 * 4).collect();
            let mut rb: Vec<&[u8]> = b.data.chunks(64 * 4).collect();
            ra.sort();
            rb.sort();
            assert_eq!(ra, rb, "{g_name}: not a row permutation of {hf_name}");
        }
    }
}

#[test]
fn f16_tensors_decode_to_the_f32_values_rounded() {
    // Every F16 value is the F32 file's value rounded to half precision: within half an ULP
    // (2^-11 relative) for normal halves, within 2^-25 absolute in the subnormal range.
    let f32_model = open_checked("f32");
    let f16_model = open_checked("f16");
    for t in f16_model.tensors.iter().filter(|t| t.dtype == DType::F16) {
        let got = values(&f16_model, &t.name);
        let want = values(&f32_model, &t.name);
        assert_eq!(got.len(), want.len(), "{}", t.name);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let tol = (w.abs() * 2f32.powi(-11)).max(2f32.powi(-25));
            assert!((g - w).abs() <= tol, "{}[{i}]: f16 file {g}, f32 file {w}", t.name);
        }
    }
}
