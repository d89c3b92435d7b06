//! The GGUF writer and the HF → GGUF mapping: every gguf-py fixture rewritten byte for byte,
//! one test per writer error, the Q/K permutation against numpy's result of the converter's
//! formula, the config and tokenizer metadata of the HF fixtures, and an HF checkpoint written
//! to GGUF and read back by gguf-py (tools/interop/check_gguf.py, run with the pinned venv).

mod common;

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixtures;
use half::f16;
use smelt_formats::gguf::{
    self, hf_config_to_gguf_metadata, hf_tensor_name_to_gguf, llama_file_type, parse_header, permute_qk,
    token_type, tokenizer_to_gguf_metadata, GgufTensorDecl, GgufWriteError, GgufWriter, HfArch,
    HfToGgufError,
};
use smelt_formats::{limits, MetaArray, MetaValue, Model};
use smelt_tensor::DType;

fn gguf_py_fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("gguf"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    files.sort();
    files
}

/// Rewrites a GGUF file from its parsed header and tensor bytes.
fn rewrite_from_header(bytes: &[u8]) -> Vec<u8> {
    let h = parse_header(bytes).unwrap();
    let metadata: Vec<(String, MetaValue)> =
        h.kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
    let decls: Vec<GgufTensorDecl> =
        h.tensors.iter().map(|t| GgufTensorDecl::new(t.name.clone(), t.dtype, t.shape())).collect();
    let mut w = GgufWriter::with_version(Vec::new(), h.version, &metadata, &decls).unwrap();
    assert_eq!(w.data_offset(), h.data_offset);
    for t in &h.tensors {
        let start = (h.data_offset + t.offset) as usize;
        w.write_tensor(&t.name, &bytes[start..start + t.size as usize]).unwrap();
    }
    let predicted = w.file_size();
    let out = w.finish().unwrap();
    assert_eq!(out.len() as u64, predicted);
    out
}

fn assert_same_bytes(name: &str, got: &[u8], want: &[u8]) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{name}: first difference at byte {i} (got {:#04x}, want {:#04x})", got[i], want[i]);
    }
    assert_eq!(got.len(), want.len(), "{name}: length");
}

#[test]
fn every_gguf_py_fixture_is_rewritten_byte_for_byte() {
    let files = gguf_py_fixtures();
    for want in
        ["tiny-llama.gguf", "tiny-llama-v2.gguf", "metadata-types.gguf", "align64.gguf", "no-tensors.gguf"]
    {
        assert!(files.iter().any(|p| p.ends_with(want)), "{want} is among the fixtures");
    }
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        assert_same_bytes(&path.display().to_string(), &rewrite_from_header(&bytes), &bytes);
    }
}

#[test]
fn model_read_by_the_reader_is_rewritten_byte_for_byte() {
    // The requantize path: a Model's metadata and tensors (zero-copy views) written back.
    for path in gguf_py_fixtures() {
        let bytes = std::fs::read(&path).unwrap();
        let version = parse_header(&bytes).unwrap().version;
        let model: Model = gguf::read(&path).unwrap();
        let decls: Vec<GgufTensorDecl> = model.tensors.iter().map(GgufTensorDecl::from).collect();
        let mut w = GgufWriter::with_version(Vec::new(), version, &model.metadata, &decls).unwrap();
        for t in &model.tensors {
            w.write_tensor(&t.name, &t.data).unwrap();
        }
        assert_same_bytes(&path.display().to_string(), &w.finish().unwrap(), &bytes);
    }
}

#[test]
fn output_is_deterministic() {
    let bytes = std::fs::read(fixtures().join("gguf/tiny-llama.gguf")).unwrap();
    assert_eq!(rewrite_from_header(&bytes), rewrite_from_header(&bytes));
}

// ---------------------------------------------------------------------------------------------
// One test per writer error.

fn f32_decl(name: &str, shape: &[u64]) -> GgufTensorDecl {
    GgufTensorDecl::new(name, DType::F32, shape.to_vec())
}

fn new_err(metadata: &[(String, MetaValue)], tensors: &[GgufTensorDecl]) -> GgufWriteError {
    GgufWriter::new(Vec::new(), metadata, tensors).unwrap_err()
}

fn kv(key: &str, value: MetaValue) -> (String, MetaValue) {
    (key.to_owned(), value)
}

#[test]
fn unsupported_version() {
    let err = GgufWriter::with_version(Vec::new(), 1, &[], &[]).unwrap_err();
    assert!(matches!(err, GgufWriteError::UnsupportedVersion { version: 1 }));
    let err = GgufWriter::with_version(Vec::new(), 4, &[], &[]).unwrap_err();
    assert!(matches!(err, GgufWriteError::UnsupportedVersion { version: 4 }));
}

#[test]
fn too_many_tensors() {
    let decls: Vec<GgufTensorDecl> =
        (0..=limits::MAX_TENSORS).map(|i| f32_decl(&i.to_string(), &[0])).collect();
    assert!(matches!(new_err(&[], &decls), GgufWriteError::TooMany { what: "tensors", .. }));
}

#[test]
fn empty_key() {
    let md = [kv("a", MetaValue::U8(1)), kv("", MetaValue::U8(2))];
    assert!(matches!(new_err(&md, &[]), GgufWriteError::EmptyKey { index: 1 }));
}

#[test]
fn key_too_long() {
    let long = "k".repeat(limits::MAX_NAME_LEN as usize + 1);
    let err = new_err(&[kv(&long, MetaValue::U8(1))], &[]);
    assert!(
        matches!(err, GgufWriteError::KeyTooLong { index: 0, len, .. } if len == limits::MAX_NAME_LEN + 1)
    );
}

#[test]
fn duplicate_key() {
    let md = [kv("a", MetaValue::U8(1)), kv("b", MetaValue::U8(1)), kv("a", MetaValue::U32(2))];
    let err = new_err(&md, &[]);
    assert!(matches!(err, GgufWriteError::DuplicateKey { ref key, index: 2, first_index: 0 } if key == "a"));
}

#[test]
fn string_too_long() {
    let long = "s".repeat(limits::MAX_STRING_LEN as usize + 1);
    let err = new_err(&[kv("t.s", MetaValue::Array(MetaArray::Str(vec!["ok".into(), long])))], &[]);
    assert!(matches!(err, GgufWriteError::StringTooLong { ref key, .. } if key == "t.s"));
}

#[test]
fn nesting_too_deep() {
    let mut a = MetaArray::I8(vec![1]);
    for _ in 0..limits::MAX_NESTING {
        a = MetaArray::Array(vec![a]);
    }
    let err = new_err(&[kv("deep", MetaValue::Array(a))], &[]);
    assert!(matches!(err, GgufWriteError::NestingTooDeep { ref key, .. } if key == "deep"));
}

#[test]
fn alignment_wrong_type() {
    let err = new_err(&[kv("general.alignment", MetaValue::I32(64))], &[]);
    assert!(matches!(err, GgufWriteError::AlignmentWrongType { found: "INT32" }));
}

#[test]
fn alignment_not_power_of_two() {
    let err = new_err(&[kv("general.alignment", MetaValue::U32(96))], &[]);
    assert!(matches!(err, GgufWriteError::AlignmentNotPowerOfTwo { value: 96 }));
}

#[test]
fn name_too_long() {
    let long = "t".repeat(limits::MAX_NAME_LEN as usize + 1);
    let err = new_err(&[], &[f32_decl("ok", &[1]), f32_decl(&long, &[1])]);
    assert!(matches!(err, GgufWriteError::NameTooLong { index: 1, .. }));
}

#[test]
fn duplicate_tensor() {
    let err = new_err(&[], &[f32_decl("a", &[1]), f32_decl("b", &[1]), f32_decl("a", &[2])]);
    assert!(
        matches!(err, GgufWriteError::DuplicateTensor { ref name, index: 2, first_index: 0 } if name == "a")
    );
}

#[test]
fn dtype_without_ggml_type() {
    for dtype in [DType::I4, DType::U8, DType::F8_E4M3, DType::Bool, DType::C64, DType::String] {
        let err = new_err(&[], &[GgufTensorDecl::new("x", dtype, vec![32])]);
        assert!(matches!(err, GgufWriteError::NoGgmlType { dtype: d, .. } if d == dtype), "{dtype}");
    }
}

#[test]
fn too_many_dims() {
    let err = new_err(&[], &[f32_decl("x", &[1, 1, 1, 1, 1])]);
    assert!(matches!(err, GgufWriteError::TooManyDims { rank: 5, max: 4, .. }));
}

#[test]
fn row_not_block_multiple() {
    let err = new_err(&[], &[GgufTensorDecl::new("q", DType::Q4_K, vec![2, 128])]);
    assert!(matches!(
        err,
        GgufWriteError::RowNotBlockMultiple { row: 128, block: 256, dtype: DType::Q4_K, .. }
    ));
    // A 0-d block tensor has a row of 1.
    let err = new_err(&[], &[GgufTensorDecl::new("s", DType::Q8_0, vec![])]);
    assert!(matches!(err, GgufWriteError::RowNotBlockMultiple { row: 1, .. }));
}

#[test]
fn size_overflow() {
    let err = new_err(&[], &[f32_decl("big", &[1 << 40, 1 << 40])]);
    assert!(matches!(err, GgufWriteError::SizeOverflow { ref name, .. } if name == "big"));
}

#[test]
fn wrong_tensor_order() {
    let decls = [f32_decl("a", &[1]), f32_decl("b", &[1])];
    let mut w = GgufWriter::new(Vec::new(), &[], &decls).unwrap();
    let data_offset = w.data_offset();
    let err = w.write_tensor("b", &[0; 4]).unwrap_err();
    assert!(matches!(err, GgufWriteError::WrongTensor { ref expected, ref found, offset }
        if expected == "a" && found == "b" && offset == data_offset));
}

#[test]
fn wrong_length() {
    let decls = [GgufTensorDecl::new("q", DType::Q8_0, vec![2, 32])];
    let mut w = GgufWriter::new(Vec::new(), &[], &decls).unwrap();
    let err = w.write_tensor("q", &[0; 67]).unwrap_err();
    assert!(matches!(err, GgufWriteError::WrongLength { expected: 68, found: 67, .. }));
    // Nothing was written for the refused tensor: the right bytes still go through.
    assert_eq!(w.next_tensor(), Some(("q", 68)));
    w.write_tensor("q", &[0; 68]).unwrap();
    w.finish().unwrap();
}

#[test]
fn extra_tensor() {
    let mut w = GgufWriter::new(Vec::new(), &[], &[f32_decl("a", &[1])]).unwrap();
    w.write_tensor("a", &[0; 4]).unwrap();
    let err = w.write_tensor("b", &[0; 4]).unwrap_err();
    assert!(matches!(err, GgufWriteError::ExtraTensor { declared: 1, .. }));
}

#[test]
fn missing_tensors() {
    let mut w = GgufWriter::new(Vec::new(), &[], &[f32_decl("a", &[1]), f32_decl("b", &[1])]).unwrap();
    w.write_tensor("a", &[0; 4]).unwrap();
    let err = w.finish().unwrap_err();
    assert!(
        matches!(err, GgufWriteError::MissingTensors { ref next, written: 1, declared: 2, .. } if next == "b")
    );
}

#[test]
fn io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::open(dir.path()).unwrap(); // a directory: writes fail
    let err = GgufWriter::new(file, &[], &[]).unwrap_err();
    assert!(matches!(err, GgufWriteError::Io { offset: 0, .. }));
}

// ---------------------------------------------------------------------------------------------
// HF -> GGUF mapping.

#[test]
fn permute_matches_the_converters_formula_in_numpy() {
    let dir = fixtures().join("gguf/writer");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("permute-cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let dtype = DType::from_name(c["dtype"].as_str().unwrap()).unwrap();
        let shape: Vec<u64> = c["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        let n_head = c["n_head"].as_u64().unwrap();
        // The converter permutes with n_head_kv whenever it is given and differs.
        let n_heads = c["n_head_kv"].as_u64().unwrap_or(n_head);
        let input = smelt_formats::npy::read(&dir.join(format!("permute-{name}.input.npy"))).unwrap();
        let expected = smelt_formats::npy::read(&dir.join(format!("permute-{name}.expected.npy"))).unwrap();
        assert_eq!(input.shape, shape, "{name}");
        let got = permute_qk(&input.data, dtype, &shape, n_heads).unwrap();
        assert_eq!(got, &expected.data[..], "{name}: permuted bytes");
        assert_ne!(got, &input.data[..], "{name}: the permutation moved rows");
    }
}

const HF_FIXTURES: [&str; 5] =
    ["tiny-llama-f32", "tiny-llama-bf16", "tiny-llama-sharded", "tiny-qwen2-f32", "tiny-mistral-tied-f16"];

#[test]
fn every_hf_fixture_tensor_has_a_gguf_name() {
    for dir in HF_FIXTURES {
        let model = smelt_formats::open(&fixtures().join("hf").join(dir)).unwrap();
        let arch = HfArch::from_model_type(&model.config.as_ref().unwrap().model_type).unwrap();
        let mut names: Vec<String> = model
            .tensors
            .iter()
            .map(|t| {
                hf_tensor_name_to_gguf(&t.name, arch).unwrap_or_else(|| panic!("{dir}: {} unmapped", t.name))
            })
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "{dir}: GGUF names are distinct");
        assert!(names.contains(&"blk.1.ffn_down.weight".to_owned()), "{dir}");
        if arch == HfArch::Qwen2 {
            assert!(names.contains(&"blk.0.attn_q.bias".to_owned()));
        }
    }
}

fn meta<'a>(md: &'a [(String, MetaValue)], key: &str) -> &'a MetaValue {
    md.iter().find(|(k, _)| k == key).map(|(_, v)| v).unwrap_or_else(|| panic!("{key} missing"))
}

#[test]
fn config_metadata_of_the_hf_fixtures() {
    let llama = smelt_formats::open(&fixtures().join("hf/tiny-llama-f32")).unwrap();
    let md = hf_config_to_gguf_metadata(llama.config.as_ref().unwrap(), "tiny-llama-f32", 1).unwrap();
    assert_eq!(meta(&md, "general.architecture"), &MetaValue::Str("llama".into()));
    assert_eq!(meta(&md, "general.name"), &MetaValue::Str("tiny-llama-f32".into()));
    for (key, v) in [
        ("llama.block_count", 2),
        ("llama.context_length", 128),
        ("llama.embedding_length", 64),
        ("llama.feed_forward_length", 128),
        ("llama.attention.head_count", 4),
        ("llama.attention.head_count_kv", 2),
        ("llama.attention.key_length", 16),
        ("llama.attention.value_length", 16),
        ("llama.vocab_size", 256),
        ("llama.rope.dimension_count", 16),
        ("general.file_type", 1),
    ] {
        assert_eq!(meta(&md, key), &MetaValue::U32(v), "{key}");
    }
    // rope_theta from the new `rope_parameters` spelling.
    assert_eq!(meta(&md, "llama.rope.freq_base"), &MetaValue::F32(10000.0));
    assert_eq!(meta(&md, "llama.attention.layer_norm_rms_epsilon"), &MetaValue::F32(1e-6));

    let mistral = smelt_formats::open(&fixtures().join("hf/tiny-mistral-tied-f16")).unwrap();
    let md = hf_config_to_gguf_metadata(
        mistral.config.as_ref().unwrap(),
        "m",
        llama_file_type(DType::F16).unwrap(),
    )
    .unwrap();
    assert_eq!(meta(&md, "general.architecture"), &MetaValue::Str("llama".into()));

    let qwen = smelt_formats::open(&fixtures().join("hf/tiny-qwen2-f32")).unwrap();
    let md = hf_config_to_gguf_metadata(qwen.config.as_ref().unwrap(), "q", 0).unwrap();
    assert_eq!(meta(&md, "general.architecture"), &MetaValue::Str("qwen2".into()));
    assert_eq!(meta(&md, "qwen2.attention.head_count_kv"), &MetaValue::U32(2));
    assert!(md.iter().all(|(k, _)| k != "qwen2.vocab_size"), "the converter writes no vocab_size for qwen2");
}

#[test]
fn tokenizer_metadata_of_tiny_llama() {
    let md = tokenizer_to_gguf_metadata(&fixtures().join("hf/tiny-llama-f32")).unwrap();
    let keys: Vec<&str> = md.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tokenizer.ggml.model",
            "tokenizer.ggml.pre",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.token_type",
            "tokenizer.ggml.merges",
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.add_bos_token",
            "tokenizer.ggml.add_sep_token",
        ]
    );
    // A metaspace BPE without byte fallback: the converter's GPT-2 path.
    assert_eq!(meta(&md, "tokenizer.ggml.model"), &MetaValue::Str("gpt2".into()));
    let MetaValue::Array(MetaArray::Str(tokens)) = meta(&md, "tokenizer.ggml.tokens") else { panic!() };
    assert_eq!(tokens.len(), 256);
    assert_eq!(&tokens[..4], ["<unk>", "<s>", "</s>", "!"]);
    let MetaValue::Array(MetaArray::I32(types)) = meta(&md, "tokenizer.ggml.token_type") else { panic!() };
    assert_eq!(
        &types[..4],
        [token_type::CONTROL, token_type::CONTROL, token_type::CONTROL, token_type::NORMAL]
    );
    let MetaValue::Array(MetaArray::Str(merges)) = meta(&md, "tokenizer.ggml.merges") else { panic!() };
    assert_eq!(merges.len(), 200);
    assert_eq!(merges[0], "\u{2581} t");
    assert_eq!(meta(&md, "tokenizer.ggml.bos_token_id"), &MetaValue::U32(1));
    assert_eq!(meta(&md, "tokenizer.ggml.eos_token_id"), &MetaValue::U32(2));
    assert_eq!(meta(&md, "tokenizer.ggml.unknown_token_id"), &MetaValue::U32(0));
    assert_eq!(meta(&md, "tokenizer.ggml.add_bos_token"), &MetaValue::Bool(true));
    // The pair template `<s> A <s> B` has a separator that is neither SEP nor EOS: gguf-py's
    // SpecialVocab records add_sep_token = false.
    assert_eq!(meta(&md, "tokenizer.ggml.add_sep_token"), &MetaValue::Bool(false));
    // No tokenizer.json: no tokenizer keys.
    assert!(tokenizer_to_gguf_metadata(&fixtures().join("hf/tiny-qwen2-f32")).unwrap().is_empty());
}

/// A checkpoint directory holding `tokenizer.json` with `text` (and a small config.json).
fn tokenizer_dir(text: &str, vocab_size: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), text).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        format!("{{\"model_type\": \"llama\", \"vocab_size\": {vocab_size}}}"),
    )
    .unwrap();
    dir
}

fn tokenizer_err(text: &str, vocab_size: u64) -> HfToGgufError {
    tokenizer_to_gguf_metadata(tokenizer_dir(text, vocab_size).path()).unwrap_err()
}

#[test]
fn tokenizer_llama_hf_style_gets_scores_and_byte_tokens() {
    let text = r#"{"model": {"type": "BPE", "byte_fallback": true, "vocab": {"<unk>": 0, "<s>": 1, "<0x0A>": 2, "a": 3},
        "merges": []}, "decoder": {"type": "Sequence"},
        "added_tokens": [{"id": 1, "content": "<s>", "special": true}, {"id": 4, "content": "<x>", "special": false}]}"#;
    let dir = tokenizer_dir(text, 5);
    let md = tokenizer_to_gguf_metadata(dir.path()).unwrap();
    assert_eq!(meta(&md, "tokenizer.ggml.model"), &MetaValue::Str("llama".into()));
    assert_eq!(meta(&md, "tokenizer.ggml.scores"), &MetaValue::Array(MetaArray::F32(vec![-1000.0; 5])));
    let t = token_type::NORMAL;
    assert_eq!(
        meta(&md, "tokenizer.ggml.token_type"),
        &MetaValue::Array(MetaArray::I32(vec![
            t,
            token_type::CONTROL,
            token_type::BYTE,
            t,
            token_type::USER_DEFINED
        ]))
    );
    assert!(md.iter().all(|(k, _)| k != "tokenizer.ggml.merges"));
}

#[test]
fn tokenizer_gpt2_pads_to_the_config_vocab_size() {
    let text = r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b c"]]},
        "added_tokens": [{"id": 3, "content": "<|eot|>", "special": false}]}"#;
    let dir = tokenizer_dir(text, 5);
    let md = tokenizer_to_gguf_metadata(dir.path()).unwrap();
    let tokens = ["a", "b", "[PAD2]", "<|eot|>", "[PAD4]"].map(String::from).to_vec();
    assert_eq!(meta(&md, "tokenizer.ggml.tokens"), &MetaValue::Array(MetaArray::Str(tokens)));
    let (n, u) = (token_type::NORMAL, token_type::UNUSED);
    assert_eq!(
        meta(&md, "tokenizer.ggml.token_type"),
        &MetaValue::Array(MetaArray::I32(vec![n, n, u, token_type::CONTROL, u]))
    );
    // A space inside a merge part is written as U+0120, as gguf-py does.
    assert_eq!(
        meta(&md, "tokenizer.ggml.merges"),
        &MetaValue::Array(MetaArray::Str(vec!["a b\u{120}c".into()]))
    );
}

#[test]
fn tokenizer_unsupported_model() {
    let err = tokenizer_err(r#"{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}"#, 1);
    assert!(
        matches!(err, HfToGgufError::UnsupportedTokenizer { ref kind, offset: 10, .. } if kind == "Unigram")
    );
}

#[test]
fn tokenizer_not_json() {
    let err = tokenizer_err("{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 0,}}}", 1);
    assert!(matches!(err, HfToGgufError::NotJson { line: 2, .. }));
}

#[test]
fn tokenizer_wrong_type_names_field_and_offset() {
    let text = r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": -1}}}"#;
    let err = tokenizer_err(text, 2);
    let HfToGgufError::WrongType { ref field, offset, .. } = err else { panic!("{err}") };
    assert_eq!(field, "model.vocab");
    let at = text.find("-1").unwrap() as u64;
    assert!((at..=at + 2).contains(&offset), "offset {offset} points at -1 ({at})");
}

#[test]
fn tokenizer_duplicate_token_id() {
    let err = tokenizer_err(r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}}}"#, 2);
    assert!(matches!(err, HfToGgufError::DuplicateTokenId { id: 0, .. }));
}

#[test]
fn tokenizer_token_id_out_of_range() {
    let err = tokenizer_err(r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 7}}}"#, 4);
    assert!(matches!(err, HfToGgufError::TokenIdOutOfRange { id: 7, vocab_size: 4, .. }));
}

#[test]
fn tokenizer_vocab_too_large() {
    let err = tokenizer_err(r#"{"model": {"type": "BPE", "vocab": {"a": 0}}}"#, gguf::MAX_VOCAB + 1);
    assert!(matches!(err, HfToGgufError::VocabTooLarge { .. }));
}

#[test]
fn tokenizer_file_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("tokenizer.json")).unwrap();
    f.set_len(limits::MAX_JSON_FILE + 1).unwrap(); // sparse
    let err = tokenizer_to_gguf_metadata(dir.path()).unwrap_err();
    assert!(matches!(err, HfToGgufError::TooLarge { .. }));
}

#[test]
fn tokenizer_io_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tokenizer.json")).unwrap();
    assert!(matches!(tokenizer_to_gguf_metadata(dir.path()).unwrap_err(), HfToGgufError::Io { .. }));
}

// ---------------------------------------------------------------------------------------------
// An HF checkpoint to GGUF, read back by gguf-py.

/// Writes the HF Llama-family checkpoint in `dir` to `out` as `convert_hf_to_gguf.py --outtype`
/// `outtype` (F32 or F16) would: names mapped, Q/K permuted for the llama architecture, 2-D
/// weights in `outtype`, norms and 1-D tensors in F32, config and tokenizer metadata. Returns
/// the description tools/interop/check_gguf.py checks the file against.
fn write_hf_as_gguf(dir: &Path, out: &Path, outtype: DType) -> serde_json::Value {
    let model = smelt_formats::open(dir).unwrap();
    let config = model.config.clone().unwrap();
    let arch = HfArch::from_model_type(&config.model_type).unwrap();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut metadata = hf_config_to_gguf_metadata(&config, &name, llama_file_type(outtype).unwrap()).unwrap();
    metadata.extend(tokenizer_to_gguf_metadata(dir).unwrap());

    let n_head = config.num_heads.unwrap();
    let n_head_kv = config.num_kv_heads.unwrap_or(n_head);
    let mut plan = Vec::new();
    for t in &model.tensors {
        let gguf_name = hf_tensor_name_to_gguf(&t.name, arch).unwrap();
        let dtype =
            if t.shape.len() <= 1 || gguf_name.ends_with("_norm.weight") { DType::F32 } else { outtype };
        plan.push((t, gguf_name, dtype));
    }
    let decls: Vec<GgufTensorDecl> =
        plan.iter().map(|(t, n, d)| GgufTensorDecl::new(n.clone(), *d, t.shape.clone())).collect();
    let file = BufWriter::new(std::fs::File::create(out).unwrap());
    let mut w = GgufWriter::new(file, &metadata, &decls).unwrap();
    let mut described = Vec::new();
    for (t, gguf_name, dtype) in &plan {
        let mut data = t.data.to_vec();
        let heads = if t.name.contains(".q_proj.") {
            Some(n_head)
        } else if t.name.contains(".k_proj.") {
            Some(n_head_kv)
        } else {
            None
        };
        if let (Some(heads), true) = (heads, arch.permutes_qk()) {
            data = permute_qk(&data, t.dtype, &t.shape, heads).unwrap();
        }
        let values = smelt_tensor::convert::to_f32_vec(t.dtype, &data, t.numel() as usize).unwrap();
        let bytes: Vec<u8> = match dtype {
            DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::F16 => values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect(),
            other => panic!("outtype {other}"),
        };
        w.write_tensor(gguf_name, &bytes).unwrap();
        described.push(serde_json::json!({
            "name": gguf_name, "hf_name": t.name, "dtype": dtype.name(), "shape": t.shape,
        }));
    }
    w.finish().unwrap();
    let metadata: Vec<serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| {
            let elem = match v {
                MetaValue::Array(a) => Some(a.elem_type_name()),
                _ => None,
            };
            serde_json::json!({"key": k, "type": v.type_name(), "elem_type": elem, "value": v.to_json()})
        })
        .collect();
    serde_json::json!({
        "hf_dir": dir,
        "arch": arch.gguf_arch(),
        "outtype": outtype.name(),
        "permute_qk": arch.permutes_qk(),
        "n_head": n_head,
        "n_head_kv": n_head_kv,
        "tensors": described,
        "metadata": metadata,
    })
}

/// A copy of HF fixture `dir` (in a temporary directory, under the same name) with
/// tiny-llama-f32's tokenizer: llama.cpp refuses a GGUF without a vocabulary, and the other
/// fixtures share its vocabulary size (256) but ship no tokenizer.
fn checkpoint_with_tokenizer(dir: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join(dir);
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(fixtures().join("hf").join(dir)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, copy.join(p.file_name().unwrap())).unwrap();
    }
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("hf/tiny-llama-f32").join(f), copy.join(f)).unwrap();
    }
    tmp
}

/// The pinned venv's Python: `$SMELT_PYTHON` (set by tools/test-all.sh), else `.venv` at the
/// repository root. Missing both is a failure, never a skip.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SMELT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.is_file(),
        "no Python for the interop check: set SMELT_PYTHON or run tools/python/setup-venv.sh \
         (creates .venv at the repository root with the pinned gguf, numpy and safetensors)"
    );
    venv
}

fn check_with_gguf_py(gguf_path: &Path, description: &serde_json::Value) {
    let desc_path = gguf_path.with_extension("json");
    std::fs::write(&desc_path, serde_json::to_vec_pretty(description).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/interop/check_gguf.py");
    let out = Command::new(python()).arg(&script).arg(gguf_path).arg(&desc_path).output().unwrap();
    assert!(
        out.status.success(),
        "check_gguf.py failed for {}:\n{}{}",
        gguf_path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hf_checkpoint_written_as_gguf_reads_back_in_gguf_py() {
    let tmp = tempfile::tempdir().unwrap();
    for (dir, outtype) in [
        ("tiny-llama-f32", DType::F32),
        ("tiny-llama-f32", DType::F16),
        ("tiny-qwen2-f32", DType::F16),
        ("tiny-mistral-tied-f16", DType::F16),
    ] {
        let out = tmp.path().join(format!("{dir}-{}.gguf", outtype.name()));
        let with_tokenizer = checkpoint_with_tokenizer(dir);
        let description = write_hf_as_gguf(&with_tokenizer.path().join(dir), &out, outtype);
        // smelt's own reader agrees with the declarations first.
        let model = gguf::read(&out).unwrap();
        assert_eq!(model.tensors.len(), description["tensors"].as_array().unwrap().len());
        check_with_gguf_py(&out, &description);
    }
}

/// llama.cpp itself loads the GGUF smelt wrote and computes transformers' logits. Needs
/// llama.cpp built from source (tools/interop/build-llama-cpp.sh: cmake, a C++ compiler, about
/// ten minutes on 2 cores the first time; cached under target/llama.cpp/), hence opt-in:
/// `cargo test -p smelt-formats --test gguf_writer -- --ignored`.
#[test]
#[ignore = "builds llama.cpp from source (minutes); run with --ignored"]
fn hf_checkpoint_written_as_gguf_runs_in_llama_cpp() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let build = Command::new("bash").arg(root.join("tools/interop/build-llama-cpp.sh")).output().unwrap();
    assert!(build.status.success(), "build-llama-cpp.sh failed:\n{}", String::from_utf8_lossy(&build.stderr));
    let stdout = String::from_utf8_lossy(&build.stdout);
    let eval_bin = PathBuf::from(stdout.trim().lines().last().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    // (checkpoint, stored type, tolerance on |logit - transformers' logit|)
    for (dir, outtype, tolerance) in [
        ("tiny-llama-f32", DType::F32, "1e-5"),
        ("tiny-llama-f32", DType::F16, "2e-3"),
        ("tiny-qwen2-f32", DType::F32, "1e-5"),
        ("tiny-qwen2-f32", DType::F16, "2e-3"),
        ("tiny-mistral-tied-f16", DType::F16, "2e-3"),
    ] {
        let with_tokenizer = checkpoint_with_tokenizer(dir);
        let hf = with_tokenizer.path().join(dir);
        let out = tmp.path().join(format!("{dir}-{}.gguf", outtype.name()));
        write_hf_as_gguf(&hf, &out, outtype);
        let script = root.join("tools/interop/check_llama_cpp.py");
        let r = Command::new(python())
            .arg(&script)
            .arg(&eval_bin)
            .arg(&out)
            .arg(&hf)
            .args(["--tolerance", tolerance])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&r.stdout);
        eprintln!("{}", report.trim());
        assert!(r.status.success(), "{dir} {outtype}: {report}{}", String::from_utf8_lossy(&r.stderr));
    }
}
