//! HF `config.json` reading: the fixtures' configs in the older (`torch_dtype`, `rope_theta`)
//! and newer (`dtype`, `rope_parameters`) key styles, other Llama-family model types, and one
//! malformed file per error variant.

mod common;

use std::path::PathBuf;

use common::fixtures;
use smelt_formats::config::{parse_hf_config, read_hf_config, ConfigError};
use smelt_formats::{limits, ArchConfig, Error, ErrorKind};

fn config_error(path: &PathBuf) -> ConfigError {
    match read_hf_config(path) {
        Err(Error { path: at, kind: ErrorKind::Config(e) }) => {
            assert_eq!(&at, path, "error names the file");
            e
        }
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(c) => panic!("expected an error, read {c:?}"),
    }
}

fn malformed(name: &str) -> PathBuf {
    fixtures().join("malformed/safetensors").join(name)
}

#[test]
fn old_key_style() {
    let c = read_hf_config(&fixtures().join("safetensors/tiny-llama-f32/config.json")).unwrap();
    assert_eq!(
        c,
        ArchConfig {
            model_type: "llama".into(),
            architecture: Some("LlamaForCausalLM".into()),
            hidden_size: Some(64),
            num_layers: Some(2),
            num_heads: Some(4),
            num_kv_heads: Some(2),
            head_dim: Some(16),
            intermediate_size: Some(128),
            vocab_size: Some(256),
            max_position_embeddings: Some(512),
            rope_theta: Some(10000.0),
            rms_norm_eps: Some(1e-6),
            tie_word_embeddings: Some(false),
            dtype: Some("float32".into()),
        }
    );
}

#[test]
fn new_key_style() {
    let c = read_hf_config(&fixtures().join("safetensors/tiny-llama-bf16/config.json")).unwrap();
    assert_eq!(c.rope_theta, Some(500000.0), "from rope_parameters.rope_theta");
    assert_eq!(c.dtype.as_deref(), Some("bfloat16"), "from dtype");
    assert_eq!((c.hidden_size, c.num_kv_heads), (Some(64), Some(2)));
}

#[test]
fn mistral_qwen2_and_unknown_model_types() {
    let mistral = r#"{"architectures":["MistralForCausalLM"],"model_type":"mistral","hidden_size":4096,
        "num_key_value_heads":8,"sliding_window":4096,"rope_theta":1000000.0,"head_dim":null}"#;
    let c = parse_hf_config(mistral).unwrap();
    assert_eq!((c.model_type.as_str(), c.num_kv_heads, c.head_dim), ("mistral", Some(8), None));
    let qwen2 = r#"{"model_type":"qwen2","tie_word_embeddings":true,"rms_norm_eps":1e-06,"use_sliding_window":false}"#;
    let c = parse_hf_config(qwen2).unwrap();
    assert_eq!((c.tie_word_embeddings, c.rms_norm_eps), (Some(true), Some(1e-6)));
    let other = r#"{"model_type":"something_new","hidden_size":8,"text_config":{"x":1}}"#;
    let c = parse_hf_config(other).unwrap();
    assert_eq!((c.model_type.as_str(), c.hidden_size, c.num_layers), ("something_new", Some(8), None));
    // Per-layer-type rope parameters carry no single theta; the older key is kept if present.
    let layered = r#"{"rope_theta":7.0,"rope_parameters":{"full_attention":{"rope_theta":1e6}}}"#;
    assert_eq!(parse_hf_config(layered).unwrap().rope_theta, Some(7.0));
}

#[test]
fn not_json() {
    let e = config_error(&malformed("config-not-json.json"));
    // '{\n  "hidden_size": 64,\n}': the parser stops at the '}' on line 3.
    assert!(matches!(e, ConfigError::NotJson { line: 3, offset: 23, .. }), "{e:?}");
}

#[test]
fn not_object() {
    assert!(matches!(
        config_error(&malformed("config-not-object.json")),
        ConfigError::NotObject { offset: 0, found: "string" }
    ));
}

#[test]
fn wrong_type() {
    let e = config_error(&malformed("config-wrong-type.json"));
    assert!(
        matches!(e, ConfigError::WrongType { ref key, found: "string", .. } if key == "num_hidden_layers"),
        "{e:?}"
    );
}

#[test]
fn wrong_type_nested() {
    let e = config_error(&malformed("config-wrong-type-nested.json"));
    assert!(
        matches!(e, ConfigError::WrongType { ref key, .. } if key == "rope_parameters.rope_theta"),
        "{e:?}"
    );
}

#[test]
fn duplicate_key() {
    let e = config_error(&malformed("config-duplicate-key.json"));
    assert!(matches!(e, ConfigError::DuplicateKey { ref key, .. } if key == "hidden_size"), "{e:?}");
}

#[test]
fn too_large() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config.json");
    std::fs::File::create(&path).unwrap().set_len(limits::MAX_JSON_FILE + 1).unwrap();
    assert!(matches!(config_error(&path), ConfigError::TooLarge { .. }));
}

#[test]
fn not_utf8_is_not_json_with_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config.json");
    std::fs::write(&path, b"{\"a\": \"\xff\"}").unwrap();
    assert!(matches!(config_error(&path), ConfigError::NotJson { offset: 7, line: 1, column: 8, .. }));
}
