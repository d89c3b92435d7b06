//! The GGUF reader against files gguf-py wrote (compared with gguf-py's own reading of them,
//! in `*.reference.json`), against one malformed file per error variant, and against ggml's
//! type sizes as gguf-py defines them.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{assert_matches_reference, fixtures};
use smelt_formats::gguf::{self, GgufError};
use smelt_formats::{ErrorKind, Format, MetaArray, MetaValue, Model};
use smelt_tensor::DType;

fn gguf_fixture(name: &str) -> PathBuf {
    fixtures().join("gguf").join(name)
}

fn malformed(name: &str) -> PathBuf {
    fixtures().join("malformed").join("gguf").join(name)
}

fn reference_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{}.reference.json", path.display())).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Reads a valid fixture, compares it with its reference manifest, and checks what the manifest
/// records beyond tensors and metadata (version, alignment, data offset, key order).
fn read_valid(name: &str) -> Model {
    let path = gguf_fixture(name);
    let model = gguf::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let reference = PathBuf::from(format!("{}.reference.json", path.display()));
    assert_matches_reference(&model, &reference);

    let r = reference_json(&path);
    let bytes = std::fs::read(&path).unwrap();
    let header = gguf::parse_header(&bytes).unwrap();
    assert_eq!(u64::from(header.version), r["version"].as_u64().unwrap(), "{name}: version");
    assert_eq!(header.alignment, r["alignment"].as_u64().unwrap(), "{name}: alignment");
    assert_eq!(header.data_offset, r["data_offset"].as_u64().unwrap(), "{name}: data offset");
    assert_eq!(model.version, format!("GGUF v{}", header.version));
    assert_eq!(model.format, Format::Gguf);

    // Every entry, in file order (the manifest keeps gguf-py's order).
    let want_keys: Vec<&str> = r["metadata"].as_object().unwrap().keys().map(String::as_str).collect();
    let got_keys: Vec<&str> = model.metadata.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(got_keys, want_keys, "{name}: metadata keys and order");

    // Tensors in file order, each located where its info says.
    let want_names: Vec<&str> =
        r["tensors"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    let got_names: Vec<&str> = model.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(got_names, want_names, "{name}: tensor order");
    for (t, info) in model.tensors.iter().zip(&header.tensors) {
        assert_eq!(t.location.offset, header.data_offset + info.offset, "{}: location", t.name);
        assert_eq!(t.location.file, 0);
        assert_eq!(t.location.offset % header.alignment, 0, "{}: aligned", t.name);
        assert_eq!(t.data.len() as u64, t.dtype.storage_bytes(&t.shape).unwrap(), "{}: size", t.name);
        assert_eq!(&bytes[t.location.offset as usize..][..t.data.len()], &t.data[..], "{}: bytes", t.name);
    }
    assert_eq!(model.files, vec![path]);
    model
}

#[test]
fn tiny_llama_matches_gguf_py() {
    let model = read_valid("tiny-llama.gguf");
    assert_eq!(model.version, "GGUF v3");
    assert_eq!(model.tensors.len(), 21);
    let q = model.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!((q.dtype, q.shape.as_slice()), (DType::Q8_0, &[32u64, 32][..]));
    let k = model.tensor("blk.1.attn_k.weight").unwrap();
    assert_eq!((k.dtype, k.shape.as_slice()), (DType::F16, &[16u64, 32][..]));
}

#[test]
fn tiny_llama_config_from_llama_keys() {
    let model = read_valid("tiny-llama.gguf");
    let c = model.config.expect("llama keys give a config");
    assert_eq!(c.model_type, "llama");
    assert_eq!(c.hidden_size, Some(32));
    assert_eq!(c.num_layers, Some(2));
    assert_eq!(c.num_heads, Some(4));
    assert_eq!(c.num_kv_heads, Some(2));
    assert_eq!(c.head_dim, Some(8));
    assert_eq!(c.intermediate_size, Some(64));
    assert_eq!(c.vocab_size, Some(32));
    assert_eq!(c.max_position_embeddings, Some(256));
    assert_eq!(c.rope_theta, Some(10000.0));
    // Stored as FLOAT32 1e-5; read back as the decimal that was written.
    assert_eq!(c.rms_norm_eps, Some(1e-5));
    // output.weight is present, so the head is not tied.
    assert_eq!(c.tie_word_embeddings, Some(false));
    assert_eq!(c.architecture, None);
}

#[test]
fn v2_file_reads_like_v3() {
    let v2 = read_valid("tiny-llama-v2.gguf");
    let v3 = read_valid("tiny-llama.gguf");
    assert_eq!(v2.version, "GGUF v2");
    assert_eq!(v2.metadata, v3.metadata);
    assert_eq!(v2.config, v3.config);
    for (a, b) in v2.tensors.iter().zip(&v3.tensors) {
        assert_eq!(
            (&a.name, a.dtype, &a.shape, &a.data, &a.location),
            (&b.name, b.dtype, &b.shape, &b.data, &b.location)
        );
    }
}

#[test]
fn every_metadata_value_type_keeps_its_exact_type() {
    let model = read_valid("metadata-types.gguf");
    let m = |k: &str| model.meta(k).unwrap_or_else(|| panic!("{k} missing"));
    assert_eq!(m("t.uint8"), &MetaValue::U8(255));
    assert_eq!(m("t.int8"), &MetaValue::I8(-128));
    assert_eq!(m("t.uint16"), &MetaValue::U16(65535));
    assert_eq!(m("t.int16"), &MetaValue::I16(-32768));
    assert_eq!(m("t.uint32"), &MetaValue::U32(u32::MAX));
    assert_eq!(m("t.int32"), &MetaValue::I32(i32::MIN));
    assert_eq!(m("t.float32"), &MetaValue::F32(0.25));
    assert_eq!(m("t.bool_true"), &MetaValue::Bool(true));
    assert_eq!(m("t.bool_false"), &MetaValue::Bool(false));
    assert_eq!(m("t.string"), &MetaValue::Str("héllo, 世界 🐟".into()));
    assert_eq!(m("t.string_empty"), &MetaValue::Str(String::new()));
    assert_eq!(m("t.uint64"), &MetaValue::U64(u64::MAX));
    assert_eq!(m("t.int64"), &MetaValue::I64(i64::MIN));
    assert_eq!(m("t.float64"), &MetaValue::F64(-1.5e300));
    assert_eq!(m("t.float64_neg_inf"), &MetaValue::F64(f64::NEG_INFINITY));
    assert_eq!(m("t.array.uint8"), &MetaValue::Array(MetaArray::U8(vec![0, 1, 255])));
    assert_eq!(m("t.array.bool"), &MetaValue::Array(MetaArray::Bool(vec![true, false, true])));
    assert_eq!(m("t.array.uint64"), &MetaValue::Array(MetaArray::U64(vec![0, u64::MAX])));
    assert_eq!(m("t.array.empty_uint32"), &MetaValue::Array(MetaArray::U32(vec![])));
    assert_eq!(m("t.array.empty_string"), &MetaValue::Array(MetaArray::Str(vec![])));
    assert_eq!(m("t.array.empty_of_arrays"), &MetaValue::Array(MetaArray::Array(vec![])));
    assert_eq!(
        m("t.array.nested_mixed"),
        &MetaValue::Array(MetaArray::Array(vec![
            MetaArray::Str(vec!["x".into(), "y".into()]),
            MetaArray::F64(vec![0.5]),
            MetaArray::U8(vec![]),
        ]))
    );
    assert_eq!(
        m("t.array.nested_depth4"),
        &MetaValue::Array(MetaArray::Array(vec![MetaArray::Array(vec![MetaArray::Array(vec![
            MetaArray::U16(vec![9])
        ])])]))
    );
    // Every GGUF value type appears, as a scalar and as an array element type.
    let scalar_types: BTreeSet<&str> = model.metadata.iter().map(|(_, v)| v.type_name()).collect();
    let elem_types: BTreeSet<&str> = model
        .metadata
        .iter()
        .filter_map(|(_, v)| match v {
            MetaValue::Array(a) => Some(a.elem_type_name()),
            _ => None,
        })
        .collect();
    let all = [
        "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL", "STRING", "ARRAY",
        "UINT64", "INT64", "FLOAT64",
    ];
    assert_eq!(scalar_types, all.into_iter().collect());
    assert_eq!(elem_types, all.into_iter().collect());
    // The exact types and offsets are also on the header, for a writer.
    let header = gguf::parse_header(&std::fs::read(gguf_fixture("metadata-types.gguf")).unwrap()).unwrap();
    assert_eq!(header.get("t.int16"), Some(&MetaValue::I16(-32768)));
    assert_eq!(header.kvs[0].offset, 24);
}

#[test]
fn plain_tensor_types_scalar_and_empty_tensors() {
    let model = read_valid("metadata-types.gguf");
    let scalar = model.tensor("scalar").unwrap();
    assert_eq!((scalar.shape.as_slice(), scalar.data.len()), (&[][..], 4));
    let empty = model.tensor("empty").unwrap();
    assert_eq!((empty.shape.as_slice(), empty.data.len()), (&[0u64, 4][..], 0));
    // A zero-size tensor shares its offset with the next one; that is not an overlap.
    let after = model.tensor("after_empty").unwrap();
    assert_eq!(empty.location.offset, after.location.offset);
    let dtypes: Vec<DType> = model.tensors.iter().map(|t| t.dtype).collect();
    for d in [DType::F32, DType::F16, DType::F64, DType::I8, DType::I16, DType::I32, DType::I64, DType::BF16]
    {
        assert!(dtypes.contains(&d), "{d} missing");
    }
    // No architecture keys beyond the name: a config with the model type only.
    let c = model.config.unwrap();
    assert_eq!((c.model_type.as_str(), c.num_layers, c.tie_word_embeddings), ("smelt-test", None, None));
}

#[test]
fn custom_alignment_64() {
    let model = read_valid("align64.gguf");
    let header = gguf::parse_header(&std::fs::read(gguf_fixture("align64.gguf")).unwrap()).unwrap();
    assert_eq!(header.alignment, 64);
    assert!(header.tensors.iter().all(|t| t.offset % 64 == 0));
    assert_eq!(model.tensor("b").unwrap().dtype, DType::Q8_0);
}

#[test]
fn file_without_tensors() {
    let model = read_valid("no-tensors.gguf");
    assert!(model.tensors.is_empty());
    assert_eq!(model.config.unwrap().num_layers, Some(0));
}

#[test]
fn every_ggml_block_type_reads_like_gguf_py() {
    // fixtures/gguf/all-types.gguf is written for the dequantization tests (gen_ggml_blocks.py);
    // it has one tensor per type gguf-py can write.
    let path = gguf_fixture("all-types.gguf");
    let model = gguf::read(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_matches_reference(&model, &gguf_fixture("all-types.reference.json"));
}

#[test]
fn open_detects_gguf() {
    let model = smelt_formats::open(&gguf_fixture("tiny-llama.gguf")).unwrap();
    assert_eq!(model.format, Format::Gguf);
}

#[test]
fn tensors_are_zero_copy_slices_of_the_input() {
    let bytes = Bytes::from(std::fs::read(gguf_fixture("tiny-llama.gguf")).unwrap());
    let range = bytes.as_ptr_range();
    let model = gguf::parse(bytes.clone(), Path::new("tiny-llama.gguf")).unwrap();
    for t in &model.tensors {
        let p = t.data.as_ptr_range();
        assert!(range.start <= p.start && p.end <= range.end, "{} was copied", t.name);
    }
}

/// gguf-py's GGML_QUANT_SIZES and GGMLQuantizationType, dumped by gen_gguf.py.
#[test]
fn ggml_type_sizes_match_gguf_py() {
    // Types gguf-py 0.19 knows that smelt does not read yet (newer than MXFP4). A new type in a
    // gguf-py update fails here until it is added to DType or to this list.
    const NOT_IN_SMELT: &[&str] = &["NVFP4", "Q1_0"];
    // Where gguf-py's table is stale: Q8_1 is `{ ggml_half d; ggml_half s; int8_t qs[32]; }`,
    // 36 bytes, in ggml-common.h (static_assert `2*sizeof(ggml_half) + QK8_1`); gguf-py 0.19
    // still has the old f32 layout's 40. smelt follows ggml. (name, gguf-py's bytes, ggml's)
    const GGUF_PY_STALE: &[(&str, u64, u64)] = &[("Q8_1", 40, 36)];
    let text = std::fs::read_to_string(gguf_fixture("ggml-type-sizes.reference.json")).unwrap();
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut seen = BTreeSet::new();
    for t in r["types"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let id = t["id"].as_u64().unwrap() as u32;
        let (elems, bytes) = (t["block_elems"].as_u64().unwrap(), t["block_bytes"].as_u64().unwrap());
        match DType::from_ggml_id(id) {
            Some(d) => {
                assert_eq!(d.name(), name, "ggml id {id}");
                assert_eq!(d.ggml_id(), Some(id), "{name}");
                let bytes = match GGUF_PY_STALE.iter().find(|(n, _, _)| *n == name) {
                    Some(&(_, stale, ggml)) => {
                        assert_eq!(bytes, stale, "{name}: gguf-py changed; drop it from GGUF_PY_STALE");
                        ggml
                    }
                    None => bytes,
                };
                assert_eq!((d.block_elems(), d.block_bytes()), (elems, bytes), "{name}: block geometry");
                seen.insert(id);
            }
            None => assert!(NOT_IN_SMELT.contains(&name), "gguf-py type {name} (id {id}) unknown to smelt"),
        }
    }
    // And no smelt ggml id is missing from gguf-py.
    for &d in smelt_tensor::ALL_DTYPES {
        if let Some(id) = d.ggml_id() {
            assert!(seen.contains(&id), "{d} (ggml id {id}) not in gguf-py");
        }
    }
    assert_eq!(seen.len(), 32);
}

// ---------------------------------------------------------------------------------------------
// Malformed files: one per error variant (some variants have several), each refused with that
// variant, quickly.

fn read_err(name: &str) -> GgufError {
    let path = malformed(name);
    match gguf::read(&path) {
        Ok(_) => panic!("{name}: accepted"),
        Err(e) => {
            assert_eq!(e.path, path);
            match e.kind {
                ErrorKind::Gguf(g) => g,
                other => panic!("{name}: not a GGUF error: {other}"),
            }
        }
    }
}

/// One test per malformed file, named after it, matching the variant it must give.
macro_rules! malformed_tests {
    ($($test:ident: $file:literal => $pat:pat),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let e = read_err($file);
                assert!(matches!(e, $pat), "{}: got {e:?}", $file);
            }
        )*

        /// (file, does the error match) for the exhaustive check below.
        const MALFORMED: &[(&str, fn(&GgufError) -> bool)] = &[
            $(($file, |e| matches!(e, $pat)),)*
        ];
    };
}

malformed_tests! {
    empty_file: "empty.gguf" => GgufError::Truncated { offset: 0, needed: 4, available: 0, .. },
    bad_magic: "bad-magic.gguf" => GgufError::BadMagic { offset: 0, found: [b'G', b'G', b'M', b'L'] },
    version_1: "version-1.gguf" => GgufError::VersionOne { offset: 4 },
    version_4: "version-4.gguf" => GgufError::UnsupportedVersion { version: 4, offset: 4 },
    big_endian: "big-endian.gguf" => GgufError::BigEndian { swapped: 3, offset: 4, .. },
    truncated_header: "truncated-header.gguf" => GgufError::Truncated { offset: 16, .. },
    truncated_metadata: "truncated-metadata.gguf" => GgufError::Truncated { offset: 52, needed: 4, available: 2, .. },
    truncated_tensor_info: "truncated-tensor-info.gguf" => GgufError::Truncated { offset: 115, needed: 8, available: 3, .. },
    truncated_data: "truncated-data.gguf" => GgufError::TensorPastEnd { .. },
    tensor_count_over_limit: "tensor-count-over-limit.gguf" => GgufError::CountTooLarge { offset: 8, .. },
    kv_count_past_end: "kv-count-past-end.gguf" => GgufError::CountPastEnd { offset: 16, count: 1000, .. },
    tensor_count_past_end: "tensor-count-past-end.gguf" => GgufError::CountPastEnd { offset: 8, count: 1000, .. },
    array_count_absurd: "array-count-absurd.gguf" => GgufError::CountPastEnd { count: 0x1000_0000_0000_0000, .. },
    string_past_eof: "string-past-eof.gguf" => GgufError::StringPastEnd { len: 0x10_0000, .. },
    key_too_long: "key-too-long.gguf" => GgufError::StringTooLong { len: 5000, .. },
    tensor_name_too_long: "tensor-name-too-long.gguf" => GgufError::StringTooLong { len: 5000, .. },
    nesting_too_deep: "nesting-too-deep.gguf" => GgufError::NestingTooDeep { depth: 5, max: 4, .. },
    bad_bool: "bad-bool.gguf" => GgufError::InvalidBool { value: 2, .. },
    bad_bool_in_array: "bad-bool-in-array.gguf" => GgufError::InvalidBool { value: 0xff, .. },
    invalid_utf8_value: "invalid-utf8-value.gguf" => GgufError::InvalidUtf8 { .. },
    invalid_utf8_key: "invalid-utf8-key.gguf" => GgufError::InvalidUtf8 { .. },
    invalid_utf8_tensor_name: "invalid-utf8-tensor-name.gguf" => GgufError::InvalidUtf8 { .. },
    empty_key: "empty-key.gguf" => GgufError::EmptyKey { index: 1, .. },
    duplicate_key: "duplicate-key.gguf" => GgufError::DuplicateKey { .. },
    unknown_value_type: "unknown-value-type.gguf" => GgufError::UnknownValueType { type_id: 13, .. },
    unknown_array_element_type: "unknown-array-element-type.gguf" => GgufError::UnknownValueType { type_id: 99, .. },
    duplicate_tensor: "duplicate-tensor.gguf" => GgufError::DuplicateTensor { .. },
    too_many_dims: "too-many-dims.gguf" => GgufError::TooManyDims { n_dims: 5, max: 4, .. },
    negative_dim: "negative-dim.gguf" => GgufError::NegativeDim { index: 1, value: u64::MAX, .. },
    dims_overflow: "dims-overflow.gguf" => GgufError::DimsOverflow { .. },
    byte_size_overflow: "byte-size-overflow.gguf" => GgufError::DimsOverflow { .. },
    unknown_tensor_type: "unknown-tensor-type.gguf" => GgufError::UnknownTensorType { type_id: 4, .. },
    row_not_block_multiple: "row-not-block-multiple.gguf" => GgufError::RowNotBlockMultiple { row: 48, block: 32, dtype: DType::Q8_0, .. },
    offset_misaligned: "offset-misaligned.gguf" => GgufError::MisalignedOffset { data_offset: 36, alignment: 32, .. },
    tensor_past_eof: "tensor-past-eof.gguf" => GgufError::TensorPastEnd { .. },
    tensor_offset_wraps: "tensor-offset-wraps.gguf" => GgufError::TensorPastEnd { .. },
    overlapping_tensors: "overlapping-tensors.gguf" => GgufError::TensorsOverlap { .. },
    alignment_not_power_of_two: "alignment-not-power-of-two.gguf" => GgufError::AlignmentNotPowerOfTwo { value: 48, .. },
    alignment_zero: "alignment-zero.gguf" => GgufError::AlignmentNotPowerOfTwo { value: 0, .. },
    alignment_wrong_type: "alignment-wrong-type.gguf" => GgufError::AlignmentWrongType { found: "UINT64", .. },
}

/// Names every variant, with no wildcard: a new variant does not compile until it is listed
/// here, and then the test below demands a fixture for it.
fn variant_name(e: &GgufError) -> &'static str {
    use GgufError::*;
    match e {
        Truncated { .. } => "Truncated",
        BadMagic { .. } => "BadMagic",
        VersionOne { .. } => "VersionOne",
        BigEndian { .. } => "BigEndian",
        UnsupportedVersion { .. } => "UnsupportedVersion",
        CountTooLarge { .. } => "CountTooLarge",
        CountPastEnd { .. } => "CountPastEnd",
        StringTooLong { .. } => "StringTooLong",
        StringPastEnd { .. } => "StringPastEnd",
        InvalidUtf8 { .. } => "InvalidUtf8",
        EmptyKey { .. } => "EmptyKey",
        DuplicateKey { .. } => "DuplicateKey",
        UnknownValueType { .. } => "UnknownValueType",
        NestingTooDeep { .. } => "NestingTooDeep",
        InvalidBool { .. } => "InvalidBool",
        AlignmentWrongType { .. } => "AlignmentWrongType",
        AlignmentNotPowerOfTwo { .. } => "AlignmentNotPowerOfTwo",
        DuplicateTensor { .. } => "DuplicateTensor",
        TooManyDims { .. } => "TooManyDims",
        NegativeDim { .. } => "NegativeDim",
        DimsOverflow { .. } => "DimsOverflow",
        UnknownTensorType { .. } => "UnknownTensorType",
        RowNotBlockMultiple { .. } => "RowNotBlockMultiple",
        MisalignedOffset { .. } => "MisalignedOffset",
        TensorPastEnd { .. } => "TensorPastEnd",
        TensorsOverlap { .. } => "TensorsOverlap",
    }
}

/// The number of arms in `variant_name`.
const ALL_VARIANTS: usize = 26;

#[test]
fn every_malformed_file_is_listed_and_every_variant_has_a_file() {
    let dir = fixtures().join("malformed").join("gguf");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".gguf"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = MALFORMED.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "files in {} vs the table in this test", dir.display());

    // All of them, in one go: each fails with its variant.
    let start = std::time::Instant::now();
    let mut variants = BTreeSet::new();
    for (file, matches) in MALFORMED {
        let e = read_err(file);
        assert!(matches(&e), "{file}: got {e:?}");
        let offset = e.offset();
        assert!(
            offset <= std::fs::metadata(malformed(file)).unwrap().len(),
            "{file}: offset {offset} outside the file"
        );
        eprintln!("{file}: {e}");
        variants.insert(variant_name(&e));
    }
    let elapsed = start.elapsed();
    // Reported, not asserted: tests check behaviour, never timings (a hang shows up as a test
    // that never finishes).
    eprintln!("{} malformed files refused in {elapsed:?}", MALFORMED.len());
    assert_eq!(variants.len(), ALL_VARIANTS, "variants without a malformed fixture; have {variants:?}");
}

/// Every truncation of a valid file is refused with a truncation-type error, never a panic.
#[test]
fn every_prefix_of_a_valid_file_is_refused_cleanly() {
    let bytes = std::fs::read(gguf_fixture("metadata-types.gguf")).unwrap();
    let full = gguf::parse_header(&bytes).unwrap();
    let last_tensor_end = full.tensors.iter().map(|t| full.data_offset + t.offset + t.size).max().unwrap();
    for len in 0..bytes.len() {
        match gguf::parse_header(&bytes[..len]) {
            Ok(_) => assert!(len as u64 >= last_tensor_end, "prefix of {len} bytes accepted"),
            Err(
                GgufError::Truncated { .. }
                | GgufError::CountPastEnd { .. }
                | GgufError::StringPastEnd { .. }
                | GgufError::TensorPastEnd { .. },
            ) => {}
            Err(e) => panic!("prefix of {len} bytes: unexpected {e:?}"),
        }
    }
}

/// Flipping any single byte of a valid file's header and tensor infos gives a model or an
/// error, never a panic.
#[test]
fn every_single_byte_corruption_of_the_header_is_handled() {
    let bytes = std::fs::read(gguf_fixture("metadata-types.gguf")).unwrap();
    let header_end = gguf::parse_header(&bytes).unwrap().tensor_infos_end as usize;
    for i in 0..header_end {
        for x in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= x;
            let _ = gguf::parse(Bytes::from(b), Path::new("corrupt.gguf"));
        }
    }
}
