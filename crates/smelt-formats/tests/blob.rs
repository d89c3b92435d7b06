//! The smelt blob writer and reader: bytes pinned by hand from docs/blob-format.md, round trips
//! of every scheme and codec, determinism, blobs written by an independent Python
//! implementation (tools/fixtures/gen_blob.py) read back against their manifests and rewritten
//! byte for byte, one malformed file per `BlobError` variant, the writer's refusals, and a
//! mutation loop that re-seals the header and directory CRCs so the structural checks behind
//! them are exercised too. The C reader has its own test file (blob_c_reader.rs).

mod common;

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::fixtures;
use prost::Message as _;
use smelt_formats::blob::{
    self, Blob, BlobError, BlobMetadata, BlobWriteError, BlobWriter, Codec, Compression, EntryDecl,
    EntryFlags, Scheme, SchemeRuleError, SectionKind, TensorSections,
};
use smelt_formats::ErrorKind;
use smelt_tensor::DType;

fn blob_fixture(name: &str) -> PathBuf {
    fixtures().join("blob").join(name)
}

fn malformed(name: &str) -> PathBuf {
    fixtures().join("malformed").join("blob").join(name)
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn parse_bytes(bytes: Vec<u8>) -> Result<Blob, smelt_formats::Error> {
    blob::parse(Bytes::from(bytes), Path::new("test.smelt"))
}

fn blob_error(e: smelt_formats::Error) -> BlobError {
    match e.kind {
        ErrorKind::Blob(b) => b,
        other => panic!("not a blob error: {other}"),
    }
}

/// A declaration with every field given.
fn decl(
    name: &str,
    scheme: Scheme,
    dtype: DType,
    dims: &[u64],
    block_size: u32,
    axis: Option<u32>,
    flags: u16,
) -> EntryDecl {
    EntryDecl {
        name: name.into(),
        scheme,
        dtype,
        dims: dims.to_vec(),
        block_size,
        axis,
        flags: EntryFlags(flags),
        compression: Compression::None,
    }
}

/// Owned sections of one tensor.
#[derive(Clone, Default)]
struct Owned {
    data: Vec<u8>,
    scales: Vec<u8>,
    zeros: Vec<u8>,
    aux: Vec<u8>,
}

impl Owned {
    fn sections(&self) -> TensorSections<'_> {
        TensorSections { data: &self.data, scales: &self.scales, zeros: &self.zeros, aux: &self.aux }
    }
}

fn write_blob(meta: Option<&BlobMetadata>, tensors: &[(EntryDecl, Owned)]) -> Vec<u8> {
    let mut w =
        BlobWriter::with_entries(Cursor::new(Vec::new()), meta, tensors.iter().map(|(d, _)| d.clone()))
            .unwrap();
    for (_, s) in tensors {
        w.write_tensor(s.sections()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn crc32_check_value() {
    // The spec's CRC-32 (IEEE, reflected 0xEDB88320, init and final XOR 0xFFFFFFFF).
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
}

/// Two tensors, bytes written out field by field from the spec's tables. CRCs were computed
/// with Python's zlib.crc32 over the bytes shown (an implementation independent of crc32fast;
/// `crc32_check_value` pins crc32fast to the same polynomial).
#[test]
fn golden_two_tensor_blob_matches_the_spec_byte_for_byte() {
    let zeros = |n: usize| "00".repeat(n);
    let expected = hex(&[
        // ---- header (128 bytes)
        "534d454c54424c42".to_string(), // magic "SMELTBLB"
        "0100 0000".into(),             // version 1.0
        "80000000".into(),              // header_size 128
        "b0000000".into(),              // dir_entry_size 176
        "02000000".into(),              // tensor_count 2
        "8000000000000000".into(),      // dir_offset 128
        "e001000000000000".into(),      // strtab_offset 480 = 128 + 2 * 176
        "0200000000000000".into(),      // strtab_size 2 ("ab")
        "0000000000000000".into(),      // meta_offset: no metadata
        "0000000000000000".into(),      // meta_size
        "0002000000000000".into(),      // data_offset 512 = align64(482)
        "8400000000000000".into(),      // data_size 132 = 644 - 512
        "8402000000000000".into(),      // file_size 644
        "0100000000000000".into(),      // flags: bit 0, nothing compressed
        "3ce5c42f".into(),              // dir_crc 0x2fc4e53c over bytes 128..482
        "00000000".into(),              // meta_crc: no metadata
        zeros(20),                      // reserved
        "4b53ee48".into(),              // header_crc 0x48ee534b over bytes 0..124
        // ---- entry 0 "a": raw F32 [2] (at 128)
        "00000000 01000000".into(),                 // name_offset 0, name_len 1
        "0000 0000 01 00 0000".into(),              // scheme raw, dtype F32, rank 1, codec none, flags 0
        "00000000 ffffffff".into(),                 // block_size 0, axis none
        "0200000000000000".into(),                  // dims[0] = 2
        zeros(56),                                  // dims[1..8]
        "0002000000000000".into(),                  // data_offset 512
        "0800000000000000 0800000000000000".into(), // stored 8, raw 8
        zeros(48),                                  // scales, zeros, aux: absent (offset 0, len 0)
        "0000 0000 0000 0000".into(),               // section dtypes 0 (absent), reserved
        "562687c3".into(),                          // crc 0xc3872656 of 00 00 80 3f 00 00 00 c0
        "00000000".into(),                          // reserved
        // ---- entry 1 "b": int8 symmetric per-tensor I8 [3] (at 304)
        "01000000 01000000".into(),    // name_offset 1, name_len 1
        "0100 0400 01 00 0100".into(), // scheme int8, dtype I8, rank 1, codec none, flags symmetric
        "00000000 ffffffff".into(),    // block_size 0, axis none
        "0300000000000000".into(),     // dims[0] = 3
        zeros(56),
        "4002000000000000".into(), // data_offset 576 (next multiple of 64 after 520)
        "0300000000000000 0300000000000000".into(), // stored 3, raw 3
        "8002000000000000 0400000000000000".into(), // scales at 640, 4 bytes
        zeros(32),                 // zeros, aux: absent
        "0000 0000 0000 0000".into(), // scales_dtype F32 (0), zeros/aux 0, reserved
        "25253b12".into(),         // crc 0x123b2525 of 01 ff 7f 00 00 00 3f
        "00000000".into(),
        // ---- string table (480..482), padding to 512
        "6162".into(),
        zeros(30),
        // ---- data: a.data (512..520), pad, b.data (576..579), pad, b.scales (640..644)
        "0000803f 000000c0".into(), // 1.0, -2.0
        zeros(56),
        "01ff7f".into(), // 1, -1, 127
        zeros(61),
        "0000003f".into(), // 0.5
    ]
    .concat());
    assert_eq!(expected.len(), 644);

    let a = Owned { data: [1.0f32, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect(), ..Owned::default() };
    let b = Owned { data: vec![1, 0xff, 0x7f], scales: 0.5f32.to_le_bytes().to_vec(), ..Owned::default() };
    let written = write_blob(
        None,
        &[
            (EntryDecl::raw("a", DType::F32, &[2]), a),
            (decl("b", Scheme::Int8, DType::I8, &[3], 0, None, EntryFlags::SYMMETRIC), b),
        ],
    );
    for (i, (w, e)) in written.iter().zip(&expected).enumerate() {
        assert_eq!(w, e, "first difference at byte {i}");
    }
    assert_eq!(written, expected);

    let blob = parse_bytes(written).unwrap();
    blob.verify_checksums().unwrap();
    let b = blob.entry("b").unwrap();
    assert_eq!((b.scheme, b.dtype, b.dims.as_slice(), b.axis), (Scheme::Int8, DType::I8, &[3u64][..], None));
    assert_eq!(&b.data.bytes[..], &[1, 0xff, 0x7f]);
    assert_eq!(b.scales.as_ref().unwrap().offset, 640);
}

/// One tensor of every scheme (and the variants of each), with data that compresses.
fn every_scheme(compression: Compression) -> Vec<(EntryDecl, Owned)> {
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let pattern = |n: usize| (0..n).map(|i| (i % 7) as u8).collect::<Vec<u8>>();
    let mut out = vec![
        (
            EntryDecl::raw("raw.f32", DType::F32, &[16, 16]),
            Owned { data: f32s(&[0.25; 256]), ..Owned::default() },
        ),
        (
            EntryDecl::raw("raw.bf16.scalar", DType::BF16, &[]),
            Owned { data: vec![0x80, 0x3f], ..Owned::default() },
        ),
        (EntryDecl::raw("raw.i4", DType::I4, &[3, 3]), Owned { data: pattern(5), ..Owned::default() }),
        (EntryDecl::raw("raw.empty", DType::F16, &[0, 4]), Owned::default()),
        (
            decl("int8.axis1.asym", Scheme::Int8, DType::U8, &[4, 64], 0, Some(1), EntryFlags::PER_AXIS),
            Owned { data: pattern(256), scales: f32s(&[0.5; 64]), zeros: pattern(64), ..Owned::default() },
        ),
        (
            decl("int8.tensor.sym", Scheme::Int8, DType::I8, &[300], 0, None, EntryFlags::SYMMETRIC),
            Owned { data: pattern(300), scales: f32s(&[0.1]), ..Owned::default() },
        ),
        (
            decl("int8.tensor.asym.i8", Scheme::Int8, DType::I8, &[5], 0, None, 0),
            Owned { data: pattern(5), scales: f32s(&[0.1]), zeros: vec![3], ..Owned::default() },
        ),
        (
            decl("nf4", Scheme::Nf4, DType::U8, &[8, 63], 64, None, 0),
            Owned { data: pattern(252), scales: f32s(&[1.0; 8]), ..Owned::default() },
        ),
        (
            decl("nf4.dq", Scheme::Nf4, DType::U8, &[300, 64], 64, None, EntryFlags::DOUBLE_QUANT),
            Owned {
                data: pattern(9600),
                scales: pattern(300),
                aux: f32s(&[0.5; 1 + 2 + 256]),
                ..Owned::default()
            },
        ),
        (
            decl("int4.asym.gidx", Scheme::Int4, DType::U8, &[4, 65], 32, None, 0),
            Owned {
                data: pattern(4 * 33),
                scales: f32s(&[0.5; 12]),
                zeros: pattern(12),
                aux: (0..65).flat_map(|c: i32| (c % 3).to_le_bytes()).collect(),
            },
        ),
        (
            decl("int4.sym", Scheme::Int4, DType::U8, &[2, 2, 128], 128, None, EntryFlags::SYMMETRIC),
            Owned { data: pattern(4 * 64), scales: f32s(&[0.5; 4]), ..Owned::default() },
        ),
        (
            decl("ternary2", Scheme::Ternary2, DType::U8, &[3, 7], 0, None, 0),
            Owned { data: pattern(6), scales: f32s(&[0.75]), ..Owned::default() },
        ),
        (
            decl("ternary3", Scheme::Ternary3, DType::U8, &[3, 7], 0, None, 0),
            Owned { data: pattern(5), scales: f32s(&[0.75]), ..Owned::default() },
        ),
        (
            EntryDecl::raw("ggml.q8_0", DType::Q8_0, &[4, 64]),
            Owned { data: pattern(8 * 34), ..Owned::default() },
        ),
        (
            EntryDecl::raw("ggml.tq1_0", DType::TQ1_0, &[1, 256]),
            Owned { data: pattern(54), ..Owned::default() },
        ),
    ];
    for (d, _) in &mut out {
        d.compression = compression;
    }
    out
}

fn check_round_trip(tensors: &[(EntryDecl, Owned)], meta: Option<&BlobMetadata>) -> Blob {
    let bytes = write_blob(meta, tensors);
    let blob = parse_bytes(bytes).unwrap_or_else(|e| panic!("{e}"));
    blob.verify_checksums().unwrap();
    assert_eq!(blob.entries().len(), tensors.len());
    let any_compressed = blob.entries().iter().any(|e| e.codec != Codec::None);
    assert_eq!(blob.header().flags & 1 == 1, !any_compressed, "header flag bit 0");
    for ((d, s), e) in tensors.iter().zip(blob.entries()) {
        assert_eq!(e.name, d.name);
        assert_eq!(
            (e.scheme, e.dtype, &e.dims, e.block_size, e.axis, e.flags),
            (d.scheme, d.dtype, &d.dims, d.block_size, d.axis, d.flags)
        );
        assert_eq!(&e.decompressed_data().unwrap()[..], &s.data[..], "{}: data", d.name);
        let mut into = vec![0u8; s.data.len()];
        e.decompress_data_into(&mut into).unwrap();
        assert_eq!(into, s.data, "{}: data into", d.name);
        let got = |sec: &Option<blob::Section>| sec.as_ref().map_or(Vec::new(), |s| s.bytes.to_vec());
        assert_eq!(got(&e.scales), s.scales, "{}: scales", d.name);
        assert_eq!(got(&e.zeros), s.zeros, "{}: zeros", d.name);
        assert_eq!(got(&e.aux), s.aux, "{}: aux", d.name);
        for (_, sec) in e.sections() {
            assert_eq!(sec.offset % 64, 0, "{}: aligned", d.name);
        }
        if e.codec == Codec::None {
            assert_eq!(e.data.len(), e.data_raw_len);
        } else {
            assert!(e.data.len() < e.data_raw_len, "{}: compressed only when it helps", d.name);
        }
    }
    assert_eq!(blob.metadata().unwrap().as_ref(), meta.filter(|m| **m != BlobMetadata::default()));
    blob
}

#[test]
fn every_scheme_round_trips_uncompressed_and_with_each_codec() {
    for compression in
        [Compression::None, Compression::Zstd { level: 3 }, Compression::Zstd { level: 19 }, Compression::Lz4]
    {
        let tensors = every_scheme(compression);
        let blob = check_round_trip(&tensors, None);
        let codecs: Vec<Codec> = blob.entries().iter().map(|e| e.codec).collect();
        let want = match compression {
            Compression::None => Codec::None,
            Compression::Zstd { .. } => Codec::Zstd,
            Compression::Lz4 => Codec::Lz4,
        };
        // The big, repetitive tensors compress; tiny ones are stored as they are.
        for name in ["raw.f32", "int8.axis1.asym", "nf4.dq", "ggml.q8_0"] {
            let e = blob.entry(name).unwrap();
            assert_eq!(e.codec, want, "{name} ({compression:?})");
        }
        for name in ["raw.bf16.scalar", "raw.empty", "ternary3"] {
            assert_eq!(blob.entry(name).unwrap().codec, Codec::None, "{name}: {codecs:?}");
        }
    }
}

#[test]
fn metadata_round_trips_and_an_empty_message_means_no_section() {
    let meta = BlobMetadata {
        producer: "smelt".into(),
        producer_version: "0.1.0".into(),
        source_format: "gguf".into(),
        arch: Some(
            (&smelt_formats::ArchConfig {
                model_type: "llama".into(),
                hidden_size: Some(8),
                ..Default::default()
            })
                .into(),
        ),
        recipe: "[default]\n".into(),
        inputs: vec![blob::proto::InputHash { path: "m.gguf".into(), blake3: "ab".repeat(32), size: 9 }],
        onnx_graph: Some(blob::proto::OnnxGraph {
            model: Bytes::from_static(b"\x3a\x00"),
            initializers: vec![blob::proto::GraphInitializer {
                name: "w".into(),
                tensor: "w".into(),
                data_type: 1,
                dims: vec![1, 2],
            }],
        }),
        metadata: vec![
            blob::key_value("general.name", &smelt_formats::MetaValue::Str("x".into())),
            blob::key_value(
                "tokenizer.ggml.token_type",
                &smelt_formats::MetaValue::Array(smelt_formats::MetaArray::I32(vec![1; 1000])),
            ),
        ],
    };
    let tensors = every_scheme(Compression::None);
    let blob = check_round_trip(&tensors, Some(&meta));
    assert_eq!(blob.header().meta_offset % 64, 0);
    let empty = check_round_trip(&tensors, Some(&BlobMetadata::default()));
    assert_eq!((empty.header().meta_offset, empty.header().meta_size), (0, 0));
}

#[test]
fn writing_is_deterministic_and_independent_of_the_sink() {
    let tensors = every_scheme(Compression::Zstd { level: 5 });
    let meta = BlobMetadata { producer: "smelt".into(), ..Default::default() };
    let first = write_blob(Some(&meta), &tensors);
    let second = write_blob(Some(&meta), &tensors);
    assert_eq!(first, second);

    // Through a buffered file, from a non-zero start position, as a caller streaming to a
    // temporary file might.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.smelt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    std::io::Write::write_all(&mut file, b"prefix").unwrap();
    let mut w = BlobWriter::with_entries(file, Some(&meta), tensors.iter().map(|(d, _)| d.clone())).unwrap();
    for (_, s) in &tensors {
        w.write_tensor(s.sections()).unwrap();
    }
    drop(w.finish().unwrap());
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[..6], b"prefix");
    assert_eq!(&on_disk[6..], &first[..]);
}

// ---- blobs written by tools/fixtures/gen_blob.py

fn reference_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{}.reference.json", path.display()))
        .unwrap_or_else(|e| panic!("{}: {e} (run tools/fixtures/gen_blob.py)", path.display()));
    serde_json::from_str(&text).unwrap()
}

const VALID: &[&str] =
    &["tiny-raw.smelt", "quant-schemes.smelt", "compressed.smelt", "empty.smelt", "minor-version-1.smelt"];

fn check_against_manifest(name: &str) -> Blob {
    let path = blob_fixture(name);
    let blob = blob::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let r = reference_json(&path);
    let h = blob.header();
    assert_eq!(
        [h.version_major, h.version_minor],
        [r["version"][0].as_u64().unwrap() as u16, r["version"][1].as_u64().unwrap() as u16]
    );
    let rh = &r["header"];
    let want = |k: &str| rh[k].as_u64().unwrap_or_else(|| panic!("{name}: header.{k}"));
    assert_eq!(u64::from(h.tensor_count), want("tensor_count"), "{name}");
    assert_eq!(
        [
            h.strtab_offset,
            h.strtab_size,
            h.meta_offset,
            h.meta_size,
            h.data_offset,
            h.data_size,
            h.file_size,
            h.flags
        ],
        [
            "strtab_offset",
            "strtab_size",
            "meta_offset",
            "meta_size",
            "data_offset",
            "data_size",
            "file_size",
            "flags"
        ]
        .map(want),
        "{name}: header"
    );
    assert_eq!([u64::from(h.dir_crc), u64::from(h.meta_crc)], [want("dir_crc"), want("meta_crc")], "{name}");

    let tensors = r["tensors"].as_array().unwrap();
    assert_eq!(blob.entries().len(), tensors.len(), "{name}");
    for (e, t) in blob.entries().iter().zip(tensors) {
        let n = &e.name;
        assert_eq!(n, t["name"].as_str().unwrap());
        assert_eq!(e.scheme.name(), t["scheme"].as_str().unwrap(), "{n}");
        assert_eq!(e.dtype.name(), t["dtype"].as_str().unwrap(), "{n}");
        let dims: Vec<u64> = t["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(e.dims, dims, "{n}");
        assert_eq!(e.codec.name(), t["codec"].as_str().unwrap(), "{n}");
        assert_eq!(u64::from(e.block_size), t["block_size"].as_u64().unwrap(), "{n}");
        assert_eq!(e.axis.map(u64::from), t["axis"].as_u64(), "{n}");
        assert_eq!(u64::from(e.flags.0), t["flags"].as_u64().unwrap() & 7, "{n}");
        assert_eq!(u64::from(e.crc), t["crc"].as_u64().unwrap(), "{n}");
        assert_eq!(e.data_raw_len, t["data_raw_len"].as_u64().unwrap(), "{n}");
        let raw = e.decompressed_data().unwrap_or_else(|err| panic!("{n}: {err}"));
        assert_eq!(blake3::hash(&raw).to_hex().as_str(), t["raw_blake3"].as_str().unwrap(), "{n}: raw data");
        let sections = t["sections"].as_object().unwrap();
        let got: Vec<(SectionKind, &blob::Section)> = e.sections().collect();
        assert_eq!(got.len(), sections.len(), "{n}: section count");
        for (kind, s) in got {
            let want = &sections[kind.name()];
            assert_eq!(s.offset, want["offset"].as_u64().unwrap(), "{n} {kind}");
            assert_eq!(s.len(), want["len"].as_u64().unwrap(), "{n} {kind}");
            assert_eq!(s.dtype.name(), want["dtype"].as_str().unwrap(), "{n} {kind}");
            assert_eq!(
                blake3::hash(&s.bytes).to_hex().as_str(),
                want["blake3"].as_str().unwrap(),
                "{n} {kind}"
            );
        }
    }

    let meta = blob.metadata().unwrap();
    match (&r["metadata"], &meta) {
        (serde_json::Value::Null, m) => assert!(m.is_none(), "{name}: unexpected metadata"),
        (want, Some(m)) => {
            assert_eq!(m.producer, want["producer"].as_str().unwrap());
            assert_eq!(m.producer_version, want["producer_version"].as_str().unwrap());
            assert_eq!(m.source_format, want["source_format"].as_str().unwrap());
            assert_eq!(m.recipe, want["recipe"].as_str().unwrap());
            let keys: Vec<&str> = m.metadata.iter().map(|kv| kv.key.as_str()).collect();
            let want_keys: Vec<&str> =
                want["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
            assert_eq!(keys, want_keys);
            let inputs: Vec<serde_json::Value> = m
                .inputs
                .iter()
                .map(|i| serde_json::json!({"path": i.path, "blake3": i.blake3, "size": i.size}))
                .collect();
            assert_eq!(&serde_json::Value::Array(inputs), &want["inputs"]);
            if let Some(a) = &m.arch {
                let arch = smelt_formats::ArchConfig::from(a);
                let wa = &want["arch"];
                assert_eq!(arch.model_type, wa["model_type"].as_str().unwrap());
                assert_eq!(arch.hidden_size, wa["hidden_size"].as_u64());
                assert_eq!(
                    arch.vocab_size,
                    wa["vocab_size"].as_u64(),
                    "an optional 0 is present, not absent"
                );
                assert_eq!(arch.head_dim, wa["head_dim"].as_u64());
                assert_eq!(arch.rope_theta, wa["rope_theta"].as_f64());
                assert_eq!(arch.tie_word_embeddings, wa["tie_word_embeddings"].as_bool());
            }
            // prost writes the same bytes as Google's protobuf did.
            assert_eq!(m.encode_to_vec(), blob.metadata_bytes().unwrap().to_vec(), "{name}: metadata bytes");
        }
        (_, None) => panic!("{name}: metadata missing"),
    }
    blob
}

#[test]
fn python_written_blobs_match_their_manifests() {
    for name in VALID {
        check_against_manifest(name);
    }
}

#[test]
fn python_metadata_values_convert_to_meta_values() {
    let blob = check_against_manifest("tiny-raw.smelt");
    let meta = blob.metadata().unwrap().unwrap();
    let entries: Vec<(String, smelt_formats::MetaValue)> =
        meta.metadata.iter().map(|kv| blob::meta_entry(kv).unwrap()).collect();
    use smelt_formats::{MetaArray, MetaValue};
    assert_eq!(entries[0], ("general.name".into(), MetaValue::Str("tiny".into())));
    assert_eq!(entries[1], ("llama.context_length".into(), MetaValue::U32(2048)));
    assert_eq!(
        entries[2].1,
        MetaValue::Array(MetaArray::Str(vec!["<s>".into(), "</s>".into(), "hé".into()]))
    );
    assert_eq!(entries[3].1, MetaValue::Array(MetaArray::F32(vec![0.0, -1.5, 0.25])));
    assert_eq!(entries[4].1, MetaValue::I32(-7));
    assert_eq!(entries[5].1, MetaValue::Bool(false));
}

/// The Rust writer, given what the Python generator declared, writes the very same bytes: two
/// independent implementations of the spec agree on every header field, padding and CRC.
#[test]
fn rust_writer_reproduces_python_blobs_byte_for_byte() {
    for name in ["tiny-raw.smelt", "quant-schemes.smelt", "empty.smelt"] {
        let path = blob_fixture(name);
        let original = std::fs::read(&path).unwrap();
        let blob = blob::read(&path).unwrap();
        let meta = blob.metadata().unwrap();
        let decls = blob.entries().iter().map(|e| EntryDecl {
            name: e.name.clone(),
            scheme: e.scheme,
            dtype: e.dtype,
            dims: e.dims.clone(),
            block_size: e.block_size,
            axis: e.axis,
            flags: e.flags,
            compression: Compression::None,
        });
        let mut w = BlobWriter::with_entries(Cursor::new(Vec::new()), meta.as_ref(), decls).unwrap();
        for e in blob.entries() {
            let bytes = |s: &Option<blob::Section>| s.as_ref().map_or(Bytes::new(), |s| s.bytes.clone());
            let (scales, zeros, aux) = (bytes(&e.scales), bytes(&e.zeros), bytes(&e.aux));
            w.write_tensor(TensorSections { data: &e.data.bytes, scales: &scales, zeros: &zeros, aux: &aux })
                .unwrap();
        }
        let rewritten = w.finish().unwrap().into_inner();
        assert_eq!(rewritten.len(), original.len(), "{name}");
        let first_diff = rewritten.iter().zip(&original).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "{name}: first differing byte");
    }
}

#[test]
fn summaries_and_plain_tensors() {
    let blob = blob::read(&blob_fixture("quant-schemes.smelt")).unwrap();
    let s = blob.tensor_summaries();
    let int4 = s.iter().find(|s| s.name == "int4.gptq").unwrap();
    assert_eq!((int4.scheme, int4.dtype, int4.dims.as_slice()), (Scheme::Int4, DType::U8, &[4u64, 40][..]));
    assert_eq!(int4.stored_bytes, 4 * 20 + 4 * 2 * 4 + 8 + 40 * 4);
    assert_eq!(int4.offset % 64, 0);
    // Only raw and ggml entries are plain tensors.
    let q8 = blob.entry("q8_0").unwrap().as_tensor().unwrap();
    assert_eq!((q8.dtype, q8.shape.as_slice(), q8.data.len()), (DType::Q8_0, &[2u64, 32][..], 68));
    assert!(blob.entry("nf4").unwrap().as_tensor().is_none());
    let raw = blob::read(&blob_fixture("tiny-raw.smelt")).unwrap();
    for e in raw.entries() {
        let t = e.as_tensor().unwrap();
        assert_eq!(Some(t.data.len() as u64), t.dtype.storage_bytes(&t.shape), "{}", t.name);
    }
    let compressed = blob::read(&blob_fixture("compressed.smelt")).unwrap();
    assert!(compressed.entry("zstd.rle").unwrap().as_tensor().is_none());
}

#[test]
fn a_newer_minor_version_may_use_reserved_space() {
    let blob = check_against_manifest("minor-version-1.smelt");
    assert_eq!(blob.header().version_minor, 1);
    assert_eq!(blob.entries()[0].flags, EntryFlags::NONE, "undefined flag bits are ignored");
}

// ---- malformed files

/// Where a malformed file's problem shows: when the file is parsed, when checksums are
/// verified, when the metadata is decoded, or when an entry's data is decompressed.
#[derive(Clone, Copy, Debug)]
enum Stage {
    Parse,
    Verify,
    Metadata,
    /// `Blob::onnx_graph`, after the metadata decodes.
    Graph,
    Decompress(&'static str),
}

const MALFORMED: &[(&str, &str, Stage)] = &[
    ("too-short.smelt", "FileTooShort", Stage::Parse),
    ("bad-magic.smelt", "BadMagic", Stage::Parse),
    ("version-2.smelt", "UnsupportedVersion", Stage::Parse),
    ("header-crc.smelt", "HeaderChecksum", Stage::Parse),
    ("header-size.smelt", "HeaderFieldValue", Stage::Parse),
    ("dir-entry-size.smelt", "HeaderFieldValue", Stage::Parse),
    ("truncated.smelt", "FileSizeMismatch", Stage::Parse),
    ("padded.smelt", "FileSizeMismatch", Stage::Parse),
    ("header-reserved.smelt", "ReservedNotZero", Stage::Parse),
    ("header-flags-undefined.smelt", "ReservedNotZero", Stage::Parse),
    ("tensor-count-over-limit.smelt", "TooManyTensors", Stage::Parse),
    ("dir-offset.smelt", "HeaderFieldValue", Stage::Parse),
    ("strtab-offset.smelt", "HeaderFieldValue", Stage::Parse),
    ("meta-offset-without-size.smelt", "MetadataPresence", Stage::Parse),
    ("meta-offset-misaligned.smelt", "Misaligned", Stage::Parse),
    ("strtab-past-metadata.smelt", "RegionOutOfBounds", Stage::Parse),
    ("data-offset-past-end.smelt", "RegionOutOfBounds", Stage::Parse),
    ("data-size.smelt", "HeaderFieldValue", Stage::Parse),
    ("directory-crc.smelt", "DirectoryChecksum", Stage::Parse),
    ("name-not-packed.smelt", "NameNotPacked", Stage::Parse),
    ("name-out-of-bounds.smelt", "NameOutOfBounds", Stage::Parse),
    ("empty-name.smelt", "EmptyName", Stage::Parse),
    ("name-too-long.smelt", "NameTooLong", Stage::Parse),
    ("name-not-utf8.smelt", "NameNotUtf8", Stage::Parse),
    ("duplicate-name.smelt", "DuplicateName", Stage::Parse),
    ("entry-reserved.smelt", "ReservedNotZero", Stage::Parse),
    ("entry-flags-undefined.smelt", "ReservedNotZero", Stage::Parse),
    ("rank-9.smelt", "RankTooLarge", Stage::Parse),
    ("unused-dim-not-zero.smelt", "UnusedDimNotZero", Stage::Parse),
    ("unknown-scheme.smelt", "UnknownScheme", Stage::Parse),
    ("unknown-dtype.smelt", "UnknownDtype", Stage::Parse),
    ("unknown-scales-dtype.smelt", "UnknownDtype", Stage::Parse),
    ("unknown-codec.smelt", "UnknownCodec", Stage::Parse),
    ("compressed-in-uncompressed-file.smelt", "CompressedInUncompressedFile", Stage::Parse),
    ("dtype-not-allowed.smelt", "DtypeNotAllowed", Stage::Parse),
    ("int4-rank-0.smelt", "RankNotAllowed", Stage::Parse),
    ("flags-not-allowed.smelt", "FlagsNotAllowed", Stage::Parse),
    ("nf4-block-size-0.smelt", "BadBlockSize", Stage::Parse),
    ("axis-out-of-range.smelt", "BadAxis", Stage::Parse),
    ("size-overflow.smelt", "SizeOverflow", Stage::Parse),
    ("row-not-whole-blocks.smelt", "RowNotWholeBlocks", Stage::Parse),
    ("data-raw-len.smelt", "SectionLength", Stage::Parse),
    ("scales-len.smelt", "SectionLength", Stage::Parse),
    ("stored-length-mismatch.smelt", "StoredLengthMismatch", Stage::Parse),
    ("impossible-raw-length.smelt", "ImpossibleRawLength", Stage::Parse),
    ("scales-dtype-wrong.smelt", "DtypeNotAllowed", Stage::Parse),
    ("absent-section-dtype.smelt", "DtypeNotAllowed", Stage::Parse),
    ("absent-section-offset.smelt", "AbsentSectionOffset", Stage::Parse),
    ("section-misaligned.smelt", "Misaligned", Stage::Parse),
    ("section-past-end.smelt", "SectionOutOfBounds", Stage::Parse),
    ("section-before-data-region.smelt", "SectionOutOfBounds", Stage::Parse),
    ("sections-overlap.smelt", "SectionOutOfOrder", Stage::Parse),
    ("g-idx-out-of-range.smelt", "GroupIndexOutOfRange", Stage::Parse),
    ("tensor-crc.smelt", "TensorChecksum", Stage::Verify),
    ("metadata-crc.smelt", "MetadataChecksum", Stage::Verify),
    ("metadata-malformed.smelt", "MetadataMalformed", Stage::Metadata),
    ("metadata-too-deep.smelt", "MetadataTooDeep", Stage::Metadata),
    ("metadata-too-large.smelt", "MetadataTooLarge", Stage::Metadata),
    ("graph-model-malformed.smelt", "GraphModel", Stage::Graph),
    ("graph-initializer-unknown-tensor.smelt", "GraphInitializer", Stage::Graph),
    ("zstd-garbage.smelt", "Decompression", Stage::Decompress("z")),
    ("zstd-short.smelt", "DecompressedLength", Stage::Decompress("z")),
];

fn variant_name(e: &BlobError) -> &'static str {
    use BlobError::*;
    match e {
        FileTooShort { .. } => "FileTooShort",
        BadMagic { .. } => "BadMagic",
        UnsupportedVersion { .. } => "UnsupportedVersion",
        HeaderChecksum { .. } => "HeaderChecksum",
        HeaderFieldValue { .. } => "HeaderFieldValue",
        FileSizeMismatch { .. } => "FileSizeMismatch",
        ReservedNotZero { .. } => "ReservedNotZero",
        TooManyTensors { .. } => "TooManyTensors",
        MetadataPresence { .. } => "MetadataPresence",
        Misaligned { .. } => "Misaligned",
        RegionOutOfBounds { .. } => "RegionOutOfBounds",
        DirectoryChecksum { .. } => "DirectoryChecksum",
        NameNotPacked { .. } => "NameNotPacked",
        NameOutOfBounds { .. } => "NameOutOfBounds",
        EmptyName { .. } => "EmptyName",
        NameTooLong { .. } => "NameTooLong",
        NameNotUtf8 { .. } => "NameNotUtf8",
        DuplicateName { .. } => "DuplicateName",
        RankTooLarge { .. } => "RankTooLarge",
        UnusedDimNotZero { .. } => "UnusedDimNotZero",
        UnknownScheme { .. } => "UnknownScheme",
        UnknownDtype { .. } => "UnknownDtype",
        UnknownCodec { .. } => "UnknownCodec",
        CompressedInUncompressedFile { .. } => "CompressedInUncompressedFile",
        DtypeNotAllowed { .. } => "DtypeNotAllowed",
        RankNotAllowed { .. } => "RankNotAllowed",
        FlagsNotAllowed { .. } => "FlagsNotAllowed",
        BadBlockSize { .. } => "BadBlockSize",
        BadAxis { .. } => "BadAxis",
        SizeOverflow { .. } => "SizeOverflow",
        RowNotWholeBlocks { .. } => "RowNotWholeBlocks",
        SectionLength { .. } => "SectionLength",
        StoredLengthMismatch { .. } => "StoredLengthMismatch",
        ImpossibleRawLength { .. } => "ImpossibleRawLength",
        AbsentSectionOffset { .. } => "AbsentSectionOffset",
        SectionOutOfBounds { .. } => "SectionOutOfBounds",
        SectionOutOfOrder { .. } => "SectionOutOfOrder",
        GroupIndexOutOfRange { .. } => "GroupIndexOutOfRange",
        TensorChecksum { .. } => "TensorChecksum",
        MetadataChecksum { .. } => "MetadataChecksum",
        MetadataMalformed { .. } => "MetadataMalformed",
        MetadataTooDeep { .. } => "MetadataTooDeep",
        MetadataTooLarge { .. } => "MetadataTooLarge",
        Decompression { .. } => "Decompression",
        DecompressedLength { .. } => "DecompressedLength",
        GraphModel { .. } => "GraphModel",
        GraphInitializer { .. } => "GraphInitializer",
    }
}

/// The number of arms in `variant_name`.
const ALL_VARIANTS: usize = 47;

/// The error a malformed file gives at its stage, after the earlier stages succeed.
fn malformed_error(name: &str, stage: Stage) -> BlobError {
    let path = malformed(name);
    let parsed = blob::read_unverified(&path);
    let blob = match (stage, parsed) {
        (Stage::Parse, Err(e)) => {
            assert_eq!(e.path, path);
            return blob_error(e);
        }
        (Stage::Parse, Ok(_)) => panic!("{name}: parsed"),
        (_, Err(e)) => panic!("{name}: should parse, got {e}"),
        (_, Ok(b)) => b,
    };
    match stage {
        Stage::Parse => unreachable!(),
        Stage::Verify => {
            let e = blob.verify_checksums().expect_err(name);
            // read() verifies too.
            assert!(blob::read(&path).is_err(), "{name}: read accepted it");
            blob_error(e)
        }
        Stage::Metadata => {
            blob.verify_checksums().unwrap_or_else(|e| panic!("{name}: {e}"));
            blob_error(blob.metadata().expect_err(name))
        }
        Stage::Graph => {
            blob.verify_checksums().unwrap_or_else(|e| panic!("{name}: {e}"));
            blob.metadata().unwrap_or_else(|e| panic!("{name}: {e}"));
            blob_error(blob.onnx_graph().expect_err(name))
        }
        Stage::Decompress(entry) => {
            blob.verify_checksums().unwrap_or_else(|e| panic!("{name}: {e}"));
            let e = blob.entry(entry).unwrap();
            let mut buf = vec![0u8; e.data_raw_len as usize];
            let into = e.decompress_data_into(&mut buf).expect_err(name);
            let owned = e.decompressed_data().expect_err(name);
            assert_eq!(variant_name(&into), variant_name(&owned), "{name}: both decoders agree");
            owned
        }
    }
}

fn error_offset(e: &BlobError) -> Option<u64> {
    let text = format!("{e:?}");
    let at = text.find("offset: ")? + "offset: ".len();
    text[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[test]
fn every_malformed_file_gives_its_variant() {
    for &(name, want, stage) in MALFORMED {
        let e = malformed_error(name, stage);
        assert_eq!(variant_name(&e), want, "{name}: {e}");
        let len = std::fs::metadata(malformed(name)).unwrap().len();
        if let Some(offset) = error_offset(&e) {
            assert!(offset <= len.max(128), "{name}: offset {offset} past the file's {len} bytes: {e}");
        }
        // Messages read as sentences with a byte offset.
        let msg = smelt_formats::Error::new(malformed(name), e).to_string();
        assert!(msg.contains("byte"), "{name}: {msg}");
    }
}

#[test]
fn malformed_errors_carry_the_right_details() {
    match malformed_error("duplicate-name.smelt", Stage::Parse) {
        BlobError::DuplicateName { name, offset, first_offset } => {
            assert_eq!((name.as_str(), offset, first_offset), ("a", 128 + 4 * 176, 128));
        }
        e => panic!("{e}"),
    }
    match malformed_error("g-idx-out-of-range.smelt", Stage::Parse) {
        BlobError::GroupIndexOutOfRange { name, column, value, groups, .. } => {
            assert_eq!((name.as_str(), column, value, groups), ("g", 39, 2, 2));
        }
        e => panic!("{e}"),
    }
    match malformed_error("sections-overlap.smelt", Stage::Parse) {
        BlobError::SectionOutOfOrder { name, section, .. } => {
            assert_eq!((name.as_str(), section), ("q", SectionKind::Data))
        }
        e => panic!("{e}"),
    }
    match malformed_error("zstd-short.smelt", Stage::Decompress("z")) {
        BlobError::DecompressedLength { expected, found, .. } => assert_eq!((expected, found), (256, 200)),
        e => panic!("{e}"),
    }
    match malformed_error("tensor-crc.smelt", Stage::Verify) {
        BlobError::TensorChecksum { name, .. } => assert_eq!(name, "a"),
        e => panic!("{e}"),
    }
}

#[test]
fn every_malformed_file_is_listed_and_every_variant_has_a_file() {
    let dir = fixtures().join("malformed").join("blob");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".smelt"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = MALFORMED.iter().map(|(n, _, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "files in {} vs the MALFORMED table", dir.display());
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let mut variants = std::collections::BTreeSet::new();
    for &(name, want, _) in MALFORMED {
        assert!(readme.contains(&format!("`{name}`")), "README does not describe {name}");
        variants.insert(want);
    }
    assert_eq!(variants.len(), ALL_VARIANTS, "variants without a malformed fixture; have {variants:?}");
}

// ---- the writer's refusals

#[test]
fn writer_refuses_what_the_reader_would_refuse() {
    let new = || BlobWriter::new(Cursor::new(Vec::new())).unwrap();
    let mut w = new();
    assert!(matches!(
        w.declare(EntryDecl::raw("", DType::F32, &[1])),
        Err(BlobWriteError::InvalidName { .. })
    ));
    assert!(matches!(
        w.declare(EntryDecl::raw("x".repeat(4097), DType::F32, &[1])),
        Err(BlobWriteError::InvalidName { .. })
    ));
    w.declare(EntryDecl::raw("a", DType::F32, &[1])).unwrap();
    assert!(matches!(
        w.declare(EntryDecl::raw("a", DType::F32, &[1])),
        Err(BlobWriteError::DuplicateName { .. })
    ));
    assert!(matches!(
        w.declare(EntryDecl::raw("r", DType::F32, &[1; 9])),
        Err(BlobWriteError::RankTooLarge { .. })
    ));
    assert!(matches!(
        w.declare(EntryDecl::raw("s", DType::Q8_K, &[256])),
        Err(BlobWriteError::DtypeNotStorable { .. })
    ));
    assert!(matches!(
        w.declare(decl("n", Scheme::Nf4, DType::U8, &[64], 0, None, 0)),
        Err(BlobWriteError::Scheme { source: SchemeRuleError::BadBlockSize { .. }, .. })
    ));
    assert!(matches!(
        w.declare(decl("u", Scheme::Raw, DType::F32, &[2], 0, None, 0x80)),
        Err(BlobWriteError::Scheme { source: SchemeRuleError::FlagsNotAllowed { .. }, .. })
    ));
    w.declare(decl("g", Scheme::Int4, DType::U8, &[1, 4], 2, None, EntryFlags::SYMMETRIC)).unwrap();
    assert!(matches!(
        w.write_tensor(TensorSections::data(&[0; 3])),
        Err(BlobWriteError::SectionLength { section: SectionKind::Data, expected: 4, found: 3, .. })
    ));
    assert!(matches!(
        w.declare(EntryDecl::raw("late", DType::F32, &[1])),
        Err(BlobWriteError::TooLate { .. })
    ));
    assert!(matches!(w.set_metadata(&BlobMetadata::default()), Err(BlobWriteError::TooLate { .. })));
    w.write_tensor(TensorSections::data(&[0; 4])).unwrap();
    let scales = [0u8; 8];
    let g_idx: Vec<u8> = [0i32, 1, 2, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
    let bad = TensorSections { data: &[0; 2], scales: &scales, aux: &g_idx, ..TensorSections::default() };
    assert!(matches!(
        w.write_tensor(bad),
        Err(BlobWriteError::GroupIndexOutOfRange { column: 2, value: 2, .. })
    ));
    let no_scales = TensorSections { data: &[0; 2], ..TensorSections::default() };
    assert!(matches!(
        w.write_tensor(no_scales),
        Err(BlobWriteError::SectionLength { section: SectionKind::Scales, expected: 8, found: 0, .. })
    ));
    w.write_tensor(TensorSections { data: &[0; 2], scales: &scales, ..TensorSections::default() }).unwrap();
    assert!(matches!(
        w.write_tensor(TensorSections::data(&[])),
        Err(BlobWriteError::NotDeclared { index: 2, declared: 2 })
    ));
    w.finish().unwrap();

    let mut w = new();
    w.declare(EntryDecl::raw("a", DType::F32, &[1])).unwrap();
    assert!(matches!(w.finish(), Err(BlobWriteError::Unfinished { written: 0, declared: 1 })));
}

// ---- mutations

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Recomputes the directory and header CRCs after a mutation (when the header's own fields
/// still name a range inside the file), so that what lies behind them gets tested.
fn reseal(v: &mut [u8]) {
    if v.len() < 128 {
        return;
    }
    let u64_at = |v: &[u8], at: usize| u64::from_le_bytes(v[at..at + 8].try_into().unwrap());
    let end = u64_at(v, 32).checked_add(u64_at(v, 40));
    if let Some(end) = end.filter(|&e| e >= 128 && e <= v.len() as u64) {
        let crc = crc32fast::hash(&v[128..end as usize]);
        v[96..100].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&v[..124]);
    v[124..128].copy_from_slice(&crc.to_le_bytes());
}

fn mutate(orig: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut v = orig.to_vec();
    let len = v.len() as u64;
    match rng.below(5) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(len) as usize;
                v[i] ^= 1 << rng.below(8);
            }
        }
        1 => v.truncate(rng.below(len + 1) as usize),
        2 => {
            // An interesting value over a field of the header or the directory.
            let head = len.min(128 + 176 * 8).saturating_sub(8);
            let at = (rng.below(head / 2 + 1) * 2) as usize;
            let vals = [0u64, 1, 63, 64, 65, 128, 255, 256, 0xffff_ffff, 1 << 32, u64::MAX / 2, u64::MAX];
            let val = vals[rng.below(vals.len() as u64) as usize];
            let width = [1usize, 2, 4, 8][rng.below(4) as usize];
            let width = width.min(v.len().saturating_sub(at));
            v[at..at + width].copy_from_slice(&val.to_le_bytes()[..width]);
        }
        3 => {
            let i = rng.below(len.min(128 + 176 * 8)) as usize;
            if i < v.len() {
                v[i] = rng.next() as u8;
            }
        }
        _ => {
            let at = rng.below(len) as usize;
            let end = (at + 1 + rng.below(64) as usize).min(v.len());
            v.drain(at..end);
        }
    }
    if rng.below(4) != 0 {
        reseal(&mut v);
    }
    v
}

/// Everything a caller may do with a blob that parsed; none of it may panic, and every section
/// must lie inside the input, aligned, in order.
fn exercise(blob: &Blob, len: u64) {
    let mut previous_end = blob.header().data_offset;
    for e in blob.entries() {
        for (_, s) in e.sections() {
            assert!(
                s.offset % 64 == 0 && s.offset >= previous_end && s.offset + s.len() <= len,
                "{}",
                e.name
            );
            previous_end = s.offset + s.len();
        }
        let _ = e.verify_checksum();
        if let Ok(d) = e.decompressed_data() {
            assert_eq!(d.len() as u64, e.data_raw_len);
        }
    }
    let _ = blob.verify_checksums();
    let _ = blob.metadata();
    let _ = blob.tensor_summaries();
}

#[test]
fn reader_survives_mutations_behind_resealed_crcs() {
    let mut files: Vec<(String, Vec<u8>)> =
        VALID.iter().map(|n| (n.to_string(), std::fs::read(blob_fixture(n)).unwrap())).collect();
    for compression in [Compression::Zstd { level: 1 }, Compression::Lz4] {
        files.push((format!("every scheme, {compression:?}"), write_blob(None, &every_scheme(compression))));
    }
    let valid = files.len();
    // The malformed files too, fewer times each: a mutation may well repair them.
    for &(name, _, _) in MALFORMED {
        files.push((name.to_string(), std::fs::read(malformed(name)).unwrap()));
    }
    let mut parsed = 0;
    let mut total = 0;
    for (fi, (name, orig)) in files.iter().enumerate() {
        let mut rng = XorShift(0x5EED_0000_0000_0001 + fi as u64);
        let count = if fi < valid { 1500 } else { 150 };
        for m in 0..count {
            let v = mutate(orig, &mut rng);
            let len = v.len() as u64;
            let r = catch_unwind(AssertUnwindSafe(|| {
                if let Ok(blob) = parse_bytes(v) {
                    exercise(&blob, len);
                    true
                } else {
                    false
                }
            }));
            match r {
                Ok(ok) => parsed += ok as u64,
                Err(_) => panic!("{name}: mutation {m} made the reader panic"),
            }
            total += 1;
        }
    }
    eprintln!("{total} mutated blobs, {parsed} still parsed");
    assert!(parsed > 0 && parsed < total);
}

/// Regression: a data section of raw length 0 with a compressed codec decodes to nothing
/// (zstd's empty input is an error, which the reader reports rather than panicking on).
#[test]
fn compressed_empty_data_is_an_error_not_a_panic() {
    let mut bytes = write_blob(None, &[(EntryDecl::raw("e", DType::F32, &[0]), Owned::default())]);
    // Set codec 1 (zstd) on the one entry, clear the header's "uncompressed" flag, reseal.
    bytes[128 + 13] = 1;
    bytes[88] = 0;
    reseal(&mut bytes);
    let blob = parse_bytes(bytes).unwrap();
    let e = &blob.entries()[0];
    assert!(matches!(e.decompressed_data(), Err(BlobError::Decompression { .. })));
}
