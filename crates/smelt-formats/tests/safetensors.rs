//! The safetensors reader against fixtures written by the Python safetensors library (valid
//! files, compared with the library's own reading), against one malformed fixture per error
//! variant, and against mutations of valid files.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{assert_matches_reference, fixtures};
use smelt_formats::safetensors::{parse, read_file, read_sharded, SafetensorsError};
use smelt_formats::{limits, Error, ErrorKind, Format, MetaValue, Model};
use smelt_tensor::DType;

fn valid(name: &str) -> PathBuf {
    fixtures().join("safetensors").join(name)
}

fn malformed(name: &str) -> PathBuf {
    fixtures().join("malformed/safetensors").join(name)
}

/// The safetensors error of a failed read, panicking on success or another error kind.
fn st_error(result: Result<Model, Error>) -> (PathBuf, SafetensorsError) {
    match result {
        Err(Error { path, kind: ErrorKind::Safetensors(e) }) => (path, e),
        Err(other) => panic!("expected a safetensors error, got {other}"),
        Ok(m) => panic!("expected an error, read {} tensors", m.tensors.len()),
    }
}

fn file_error(name: &str) -> SafetensorsError {
    let path = malformed(name);
    let (at, e) = st_error(read_file(&path));
    assert_eq!(at, path, "error names the file");
    e
}

fn sharded_error(dir: &str) -> (PathBuf, SafetensorsError) {
    st_error(read_sharded(&malformed(dir).join("model.safetensors.index.json")))
}

/// A safetensors file from a header and data section.
fn build(header: &str, data: &[u8]) -> Bytes {
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header.as_bytes());
    f.extend_from_slice(data);
    Bytes::from(f)
}

// ---- valid fixtures -------------------------------------------------------------------------

#[test]
fn tiny_llama_f32_matches_reference() {
    let path = valid("tiny-llama-f32/model.safetensors");
    let model = read_file(&path).unwrap();
    assert_matches_reference(&model, &valid("tiny-llama-f32/model.reference.json"));
    assert_eq!(model.format, Format::Safetensors);
    assert_eq!(model.version, "safetensors");
    assert_eq!(model.files, [path]);
    assert_eq!(model.tensors.len(), 2 + 2 * 9 + 1);
    let q = model.tensor("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!((q.dtype, q.shape.as_slice()), (DType::F32, &[64u64, 64][..]));
    let k = model.tensor("model.layers.1.self_attn.k_proj.weight").unwrap();
    assert_eq!(k.shape, [32, 64], "2 KV heads of 16");
    assert_eq!(model.meta("format"), Some(&MetaValue::Str("pt".into())));
    assert!(model.config.is_none(), "read_file reads the file only; open() attaches config.json");
}

#[test]
fn tensors_come_in_data_order_as_slices_of_one_mapping() {
    let model = read_file(&valid("tiny-llama-f32/model.safetensors")).unwrap();
    for pair in model.tensors.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(a.location.offset + a.data.len() as u64, b.location.offset, "{} then {}", a.name, b.name);
        // Zero copy: consecutive tensors sit at consecutive addresses of the same mapping.
        assert_eq!(a.data.as_ptr() as usize + a.data.len(), b.data.as_ptr() as usize);
    }
}

#[test]
fn tiny_llama_bf16_matches_reference() {
    let model = read_file(&valid("tiny-llama-bf16/model.safetensors")).unwrap();
    assert_matches_reference(&model, &valid("tiny-llama-bf16/model.reference.json"));
    assert!(model.tensors.iter().all(|t| t.dtype == DType::BF16));
}

#[test]
fn all_dtypes_match_reference() {
    let model = read_file(&valid("all-dtypes.safetensors")).unwrap();
    assert_matches_reference(&model, &valid("all-dtypes.reference.json"));
    let scalar = model.tensor("scalar").unwrap();
    assert_eq!((scalar.shape.len(), scalar.numel(), scalar.data.len()), (0, 1, 4));
    let empty = model.tensor("empty").unwrap();
    assert_eq!((empty.shape.as_slice(), empty.data.len()), (&[0u64, 3][..], 0));
    let f4 = model.tensor("f4").unwrap();
    assert_eq!((f4.dtype, f4.shape.as_slice(), f4.data.len()), (DType::F4_E2M1, &[2u64, 4][..], 4));
    // 0x21: low nibble 1 (0.5) is element 0, high nibble 2 (1.0) element 1.
    let v = smelt_tensor::convert::to_f32_vec(f4.dtype, &f4.data, 8).unwrap();
    assert_eq!(&v[..2], &[0.5, 1.0]);
    assert_eq!(
        model.meta("note"),
        Some(&MetaValue::Str("made by tools/fixtures/gen_safetensors.py, unicode ✓ ü".into()))
    );
}

#[test]
fn sharded_matches_reference_in_shard_then_data_order() {
    let dir = valid("tiny-llama-sharded");
    let index = dir.join("model.safetensors.index.json");
    let model = read_sharded(&index).unwrap();
    assert_matches_reference(&model, &dir.join("model.safetensors.index.reference.json"));
    assert_eq!(model.version, "safetensors (3 shards)");
    let names: Vec<String> = (1..=3).map(|i| format!("model-{i:05}-of-00003.safetensors")).collect();
    let mut files = vec![index];
    files.extend(names.iter().map(|n| dir.join(n)));
    assert_eq!(model.files, files);
    let shard_of: Vec<usize> = model.tensors.iter().map(|t| t.location.file).collect();
    assert!(shard_of.windows(2).all(|w| w[0] <= w[1]), "shard order: {shard_of:?}");
    assert!(shard_of.iter().all(|&f| (1..=3).contains(&f)));
    for pair in model.tensors.windows(2) {
        if pair[0].location.file == pair[1].location.file {
            assert!(pair[0].location.offset < pair[1].location.offset, "data order within a shard");
        }
    }
    assert_eq!(model.tensor("lm_head.weight").unwrap().location.file, 3);
    assert_eq!(model.tensor("model.embed_tokens.weight").unwrap().location.file, 1);
    assert_eq!(model.meta("total_size"), Some(&MetaValue::U64(427_264)));
    assert_eq!(model.meta("format"), Some(&MetaValue::Str("pt".into())));
}

#[test]
fn sharded_and_single_file_hold_the_same_tensors() {
    let single = read_file(&valid("tiny-llama-f32/model.safetensors")).unwrap();
    let sharded = read_sharded(&valid("tiny-llama-sharded/model.safetensors.index.json")).unwrap();
    assert_eq!(single.tensors.len(), sharded.tensors.len());
    for t in &single.tensors {
        let s = sharded.tensor(&t.name).unwrap();
        assert_eq!((s.dtype, &s.shape, &s.data), (t.dtype, &t.shape, &t.data), "{}", t.name);
    }
}

#[test]
fn open_reads_directories_and_attaches_config() {
    let model = smelt_formats::open(&valid("tiny-llama-sharded")).unwrap();
    assert_eq!(model.version, "safetensors (3 shards)");
    assert_eq!(model.config.as_ref().unwrap().num_layers, Some(2));
    assert_eq!(model.files.last().unwrap(), &valid("tiny-llama-sharded/config.json"));
    let model = smelt_formats::open(&valid("tiny-llama-bf16")).unwrap();
    assert_eq!(model.config.as_ref().unwrap().dtype.as_deref(), Some("bfloat16"));
}

// ---- malformed single files: one test per variant -------------------------------------------

#[test]
fn file_too_short() {
    assert!(matches!(file_error("file-too-short.safetensors"), SafetensorsError::FileTooShort { len: 5 }));
}

#[test]
fn header_too_large() {
    assert!(matches!(
        file_error("header-too-large.safetensors"),
        SafetensorsError::HeaderTooLarge { declared: 100_000_001, max: limits::MAX_SAFETENSORS_HEADER }
    ));
}

#[test]
fn header_past_end() {
    assert!(matches!(
        file_error("header-past-end.safetensors"),
        SafetensorsError::HeaderPastEnd { declared: 1000, file_len: 30 }
    ));
}

#[test]
fn header_not_utf8() {
    // 8 (length) + `{"w` = 11.
    assert!(matches!(
        file_error("header-not-utf8.safetensors"),
        SafetensorsError::HeaderNotUtf8 { offset: 11 }
    ));
}

#[test]
fn header_not_json() {
    let e = file_error("header-not-json.safetensors");
    let bytes = std::fs::read(malformed("header-not-json.safetensors")).unwrap();
    let bad = bytes.windows(4).position(|w| w == b" \"b\"").unwrap() as u64 + 1;
    assert!(matches!(e, SafetensorsError::HeaderNotJson { offset, line: 1, .. } if offset == bad), "{e:?}");
}

#[test]
fn header_not_object() {
    assert!(matches!(
        file_error("header-not-object.safetensors"),
        SafetensorsError::HeaderNotObject { offset: 8, found: "array" }
    ));
}

#[test]
fn bad_tensor_entry() {
    assert!(
        matches!(file_error("bad-tensor-entry.safetensors"), SafetensorsError::BadTensorEntry { ref name, .. } if name == "w")
    );
}

#[test]
fn name_too_long() {
    assert!(matches!(
        file_error("name-too-long.safetensors"),
        SafetensorsError::NameTooLong { len: 5000, max: 4096, .. }
    ));
}

#[test]
fn duplicate_name() {
    let e = file_error("duplicate-name.safetensors");
    assert!(
        matches!(e, SafetensorsError::DuplicateName { ref name, first_offset, offset } if name == "w" && first_offset < offset),
        "{e:?}"
    );
}

#[test]
fn bad_metadata() {
    assert!(matches!(file_error("bad-metadata.safetensors"), SafetensorsError::BadMetadata { .. }));
}

#[test]
fn duplicate_metadata_key() {
    assert!(matches!(
        file_error("duplicate-metadata-key.safetensors"),
        SafetensorsError::DuplicateMetadataKey { ref key, .. } if key == "format"
    ));
}

#[test]
fn unknown_dtype() {
    assert!(
        matches!(file_error("unknown-dtype.safetensors"), SafetensorsError::UnknownDtype { ref dtype, .. } if dtype == "Q4_K")
    );
}

#[test]
fn unsupported_dtype() {
    assert!(matches!(
        file_error("unsupported-dtype.safetensors"),
        SafetensorsError::UnsupportedDtype { ref name, ref dtype, .. } if name == "scales" && dtype == "F8_E8M0"
    ));
}

#[test]
fn rank_too_large() {
    assert!(matches!(
        file_error("rank-too-large.safetensors"),
        SafetensorsError::RankTooLarge { rank: 17, max: 16, .. }
    ));
}

#[test]
fn size_overflow() {
    assert!(matches!(file_error("size-overflow.safetensors"), SafetensorsError::SizeOverflow { .. }));
}

#[test]
fn partial_byte() {
    assert!(matches!(file_error("partial-byte.safetensors"), SafetensorsError::PartialByte { numel: 3, .. }));
}

#[test]
fn offsets_reversed() {
    assert!(matches!(
        file_error("offsets-reversed.safetensors"),
        SafetensorsError::OffsetsReversed { begin: 8, end: 0, .. }
    ));
}

#[test]
fn size_mismatch() {
    assert!(matches!(
        file_error("size-mismatch.safetensors"),
        SafetensorsError::SizeMismatch { expected: 8, found: 12, .. }
    ));
}

#[test]
fn data_past_end() {
    let len = std::fs::metadata(malformed("data-past-end.safetensors")).unwrap().len();
    let e = file_error("data-past-end.safetensors");
    assert!(
        matches!(e, SafetensorsError::DataPastEnd { ref name, begin, end, file_len, .. }
            if name == "b" && end == file_len + 8 && begin + 16 == end && file_len == len),
        "{e:?}"
    );
}

#[test]
fn overlap() {
    assert!(matches!(
        file_error("overlap.safetensors"),
        SafetensorsError::Overlap { ref name, ref other, .. } if name == "b" && other == "a"
    ));
}

#[test]
fn gap() {
    let e = file_error("gap.safetensors");
    assert!(
        matches!(e, SafetensorsError::Gap { ref name, expected, begin, .. } if name == "b" && begin == expected + 4),
        "{e:?}"
    );
}

#[test]
fn trailing_bytes() {
    let len = std::fs::metadata(malformed("trailing-bytes.safetensors")).unwrap().len();
    assert!(matches!(
        file_error("trailing-bytes.safetensors"),
        SafetensorsError::TrailingBytes { offset, len: 4 } if offset == len - 4
    ));
}

/// Regression: a file reaching the tensor cap must fail before allocating per tensor beyond
/// it. Built in memory: a file with over a million entries is ~50 MB.
#[test]
fn too_many_tensors() {
    let n = limits::MAX_TENSORS + 1;
    let mut header = String::with_capacity(n as usize * 56);
    header.push('{');
    for i in 0..n {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(r#""t{i}":{{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#));
    }
    header.push('}');
    let (_, e) = st_error(parse(build(&header, &[]), Path::new("many.safetensors")));
    assert!(matches!(e, SafetensorsError::TooManyTensors { max: limits::MAX_TENSORS, .. }), "{e:?}");
}

#[test]
fn too_many_metadata() {
    let n = limits::MAX_METADATA + 1;
    let mut header = String::from(r#"{"__metadata__":{"#);
    for i in 0..n {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(r#""k{i}":"""#));
    }
    header.push_str("}}");
    let (_, e) = st_error(parse(build(&header, &[]), Path::new("meta.safetensors")));
    assert!(matches!(e, SafetensorsError::TooManyMetadata { max: limits::MAX_METADATA, .. }), "{e:?}");
}

// ---- malformed sharded checkpoints -----------------------------------------------------------

fn index_of(dir: &str) -> PathBuf {
    malformed(dir).join("model.safetensors.index.json")
}

#[test]
fn shard_missing() {
    let (path, e) = sharded_error("sharded-missing-shard");
    assert_eq!(path, index_of("sharded-missing-shard"));
    assert!(matches!(e, SafetensorsError::ShardMissing { ref tensor, ref shard, .. }
        if tensor == "b" && shard == "model-00002-of-00002.safetensors"));
}

#[test]
fn tensor_in_wrong_shard() {
    let (path, e) = sharded_error("sharded-wrong-shard");
    assert_eq!(path, index_of("sharded-wrong-shard"));
    assert!(matches!(e, SafetensorsError::TensorInWrongShard { ref name, ref listed, ref found, .. }
        if name == "b" && listed.starts_with("model-00001") && found.starts_with("model-00002")));
}

#[test]
fn tensor_not_in_shard() {
    let (_, e) = sharded_error("sharded-not-in-shard");
    assert!(matches!(e, SafetensorsError::TensorNotInShard { ref name, .. } if name == "c"));
}

#[test]
fn tensor_not_in_index() {
    let (path, e) = sharded_error("sharded-not-in-index");
    assert_eq!(
        path,
        malformed("sharded-not-in-index/model-00002-of-00002.safetensors"),
        "offset is in the shard"
    );
    assert!(matches!(e, SafetensorsError::TensorNotInIndex { ref name, .. } if name == "c"));
}

#[test]
fn tensor_in_two_shards() {
    let (_, e) = sharded_error("sharded-two-shards");
    assert!(
        matches!(e, SafetensorsError::TensorInTwoShards { ref name, ref first_shard, ref second_shard, .. }
        if name == "a" && first_shard < second_shard)
    );
}

#[test]
fn shard_path_with_parent_dir_is_refused() {
    let (_, e) = sharded_error("sharded-parent-path");
    assert!(
        matches!(e, SafetensorsError::ShardPathUnsafe { ref shard, .. } if shard == "../outside.safetensors")
    );
}

#[test]
fn absolute_shard_path_is_refused() {
    let (_, e) = sharded_error("sharded-absolute-path");
    assert!(matches!(e, SafetensorsError::ShardPathUnsafe { ref shard, .. } if shard == "/etc/passwd"));
}

#[cfg(unix)]
#[test]
fn shard_symlink_leading_out_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    std::fs::create_dir(&dir).unwrap();
    let good = malformed("sharded-two-shards/model-00001-of-00002.safetensors");
    std::fs::copy(&good, tmp.path().join("outside.safetensors")).unwrap();
    std::fs::copy(&good, dir.join("inside.safetensors")).unwrap();
    std::os::unix::fs::symlink("../outside.safetensors", dir.join("shard.safetensors")).unwrap();
    std::os::unix::fs::symlink("inside.safetensors", dir.join("alias.safetensors")).unwrap();
    let index = dir.join("model.safetensors.index.json");

    std::fs::write(&index, r#"{"weight_map": {"a": "shard.safetensors"}}"#).unwrap();
    let (_, e) = st_error(read_sharded(&index));
    assert!(
        matches!(e, SafetensorsError::ShardPathUnsafe { ref shard, .. } if shard == "shard.safetensors"),
        "{e:?}"
    );

    // A symlink that stays inside the directory is fine.
    std::fs::write(&index, r#"{"weight_map": {"a": "alias.safetensors"}}"#).unwrap();
    let model = read_sharded(&index).unwrap();
    assert_eq!(model.files[1], dir.join("alias.safetensors"));
}

#[test]
fn index_not_json() {
    let (path, e) = sharded_error("sharded-index-not-json");
    assert_eq!(path, index_of("sharded-index-not-json"));
    let len = std::fs::metadata(&path).unwrap().len();
    // The file ends mid-object: the parser stops at (or just past) the last byte.
    assert!(
        matches!(e, SafetensorsError::IndexNotJson { offset, line: 1, .. } if offset + 1 >= len && offset <= len),
        "{e:?}"
    );
}

#[test]
fn index_not_object() {
    assert!(matches!(
        sharded_error("sharded-index-not-object").1,
        SafetensorsError::IndexNotObject { offset: 0, found: "array" }
    ));
}

#[test]
fn index_no_weight_map() {
    assert!(matches!(sharded_error("sharded-no-weight-map").1, SafetensorsError::IndexNoWeightMap));
}

#[test]
fn index_bad_field() {
    let (_, e) = sharded_error("sharded-bad-field");
    assert!(
        matches!(e, SafetensorsError::IndexBadField { ref field, .. } if field == "weight_map.a"),
        "{e:?}"
    );
}

#[test]
fn duplicate_index_key() {
    let (_, e) = sharded_error("sharded-duplicate-key");
    assert!(
        matches!(e, SafetensorsError::DuplicateIndexKey { ref key, .. } if key == "weight_map.a"),
        "{e:?}"
    );
}

#[test]
fn index_too_large() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("model.safetensors.index.json");
    // Sparse: costs no disk, and the reader must refuse it from the size alone.
    std::fs::File::create(&index).unwrap().set_len(limits::MAX_JSON_FILE + 1).unwrap();
    assert!(matches!(st_error(read_sharded(&index)).1, SafetensorsError::IndexTooLarge { .. }));
}

#[test]
fn malformed_shard_is_reported_against_the_shard() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(malformed("gap.safetensors"), tmp.path().join("s.safetensors")).unwrap();
    let index = tmp.path().join("model.safetensors.index.json");
    std::fs::write(&index, r#"{"weight_map": {"a": "s.safetensors", "b": "s.safetensors"}}"#).unwrap();
    let (path, e) = st_error(read_sharded(&index));
    assert_eq!(path, tmp.path().join("s.safetensors"));
    assert!(matches!(e, SafetensorsError::Gap { .. }));
}

/// Every variant has a fixture listed in the README, or is one of the cap variants tested in
/// memory above. The match is exhaustive, so a new variant fails to compile here until it is
/// given a fixture or a reason.
#[test]
fn readme_lists_a_fixture_for_every_variant() {
    fn name(e: &SafetensorsError) -> &'static str {
        use SafetensorsError::*;
        match e {
            FileTooShort { .. } => "FileTooShort",
            HeaderTooLarge { .. } => "HeaderTooLarge",
            HeaderPastEnd { .. } => "HeaderPastEnd",
            HeaderNotUtf8 { .. } => "HeaderNotUtf8",
            HeaderNotJson { .. } => "HeaderNotJson",
            HeaderNotObject { .. } => "HeaderNotObject",
            BadTensorEntry { .. } => "BadTensorEntry",
            NameTooLong { .. } => "NameTooLong",
            DuplicateName { .. } => "DuplicateName",
            TooManyTensors { .. } => "TooManyTensors",
            BadMetadata { .. } => "BadMetadata",
            DuplicateMetadataKey { .. } => "DuplicateMetadataKey",
            TooManyMetadata { .. } => "TooManyMetadata",
            UnknownDtype { .. } => "UnknownDtype",
            UnsupportedDtype { .. } => "UnsupportedDtype",
            RankTooLarge { .. } => "RankTooLarge",
            SizeOverflow { .. } => "SizeOverflow",
            PartialByte { .. } => "PartialByte",
            OffsetsReversed { .. } => "OffsetsReversed",
            SizeMismatch { .. } => "SizeMismatch",
            DataPastEnd { .. } => "DataPastEnd",
            Overlap { .. } => "Overlap",
            Gap { .. } => "Gap",
            TrailingBytes { .. } => "TrailingBytes",
            IndexTooLarge { .. } => "IndexTooLarge",
            IndexNotJson { .. } => "IndexNotJson",
            IndexNotObject { .. } => "IndexNotObject",
            IndexNoWeightMap => "IndexNoWeightMap",
            IndexBadField { .. } => "IndexBadField",
            DuplicateIndexKey { .. } => "DuplicateIndexKey",
            ShardPathUnsafe { .. } => "ShardPathUnsafe",
            ShardMissing { .. } => "ShardMissing",
            TensorNotInShard { .. } => "TensorNotInShard",
            TensorInWrongShard { .. } => "TensorInWrongShard",
            TensorNotInIndex { .. } => "TensorNotInIndex",
            TensorInTwoShards { .. } => "TensorInTwoShards",
        }
    }
    let readme = std::fs::read_to_string(malformed("README.md")).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(|c| c.trim().trim_matches('`')).collect();
        let (file, variant) = (cells[1], cells[2]);
        if variant.starts_with("ConfigError::") || variant == "(valid)" {
            continue;
        }
        let path = malformed(file.trim_end_matches('/'));
        let (_, e) = if file.ends_with('/') {
            st_error(read_sharded(&path.join("model.safetensors.index.json")))
        } else {
            st_error(read_file(&path))
        };
        assert_eq!(name(&e), variant, "{file}: {e}");
        seen.insert(variant.to_owned());
    }
    // Tested in memory above: their files would be far over the fixture size budget.
    for v in ["TooManyTensors", "TooManyMetadata", "IndexTooLarge"] {
        assert!(seen.insert(v.to_owned()), "{v} has a fixture now; drop it from this list");
    }
    const VARIANTS: usize = 36; // arms of `name` above
    assert_eq!(seen.len(), VARIANTS, "variants with a fixture or an in-memory test: {seen:?}");
}

// ---- mutations of valid files ----------------------------------------------------------------

#[test]
fn every_truncation_is_an_error() {
    let full = std::fs::read(valid("all-dtypes.safetensors")).unwrap();
    for len in 0..full.len() {
        let r = parse(Bytes::copy_from_slice(&full[..len]), Path::new("cut.safetensors"));
        assert!(r.is_err(), "truncated to {len} bytes yet read");
    }
    assert!(parse(Bytes::from(full), Path::new("whole.safetensors")).is_ok());
}

#[test]
fn header_byte_flips_never_panic() {
    let full = std::fs::read(valid("all-dtypes.safetensors")).unwrap();
    let header_end = 8 + u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
    for pos in 0..header_end {
        for mask in [0x01u8, 0x02, 0x08, 0x20, 0x80, 0xff] {
            let mut m = full.clone();
            m[pos] ^= mask;
            // Ok or Err, never a panic; and whatever is read stays inside the file.
            if let Ok(model) = parse(Bytes::from(m), Path::new("flip.safetensors")) {
                for t in &model.tensors {
                    assert!(t.location.offset + t.data.len() as u64 <= full.len() as u64);
                    assert_eq!(t.dtype.storage_bytes(&t.shape), Some(t.data.len() as u64), "{}", t.name);
                }
            }
        }
    }
}
