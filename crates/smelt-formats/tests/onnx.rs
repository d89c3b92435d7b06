//! The ONNX reader against models the `onnx` Python package (and torch.onnx) wrote, against one
//! malformed file per error variant, and against what can only be built at run time (symlinks,
//! hard links, a sparse external file beyond 4 GiB, over a million initializers).

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message as _;
use smelt_formats::onnx::proto::{
    tensor_proto::DataLocation, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto,
};
use smelt_formats::onnx::{self, Dim, ElemType, OnnxError, ValueType};
use smelt_formats::{ErrorKind, MetaValue, Model};
use smelt_tensor::DType;

fn fixture(rel: &str) -> PathBuf {
    common::fixtures().join("onnx").join(rel)
}

fn read(path: &Path) -> Model {
    onnx::read(path).unwrap_or_else(|e| panic!("{e}"))
}

fn reference_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks what the Rust comparator does not: graph inputs, outputs and opsets from the
/// manifest, and, where the manifest gives them, each tensor's file and data offset.
fn assert_graph_matches_reference(model: &Model, reference: &Path) {
    let r = reference_json(reference);
    let g = model.graph.as_ref().expect("ONNX model has a graph");
    for (key, got) in [("inputs", g.inputs()), ("outputs", g.outputs())] {
        let Some(want) = r.get(key).and_then(|v| v.as_array()) else { continue };
        assert_eq!(got.len(), want.len(), "graph {key}");
        for (v, w) in got.iter().zip(want) {
            // Either a name, or {"name", "dtype"?, "shape"?} with symbolic dims as strings.
            let name = w.as_str().or_else(|| w["name"].as_str()).unwrap();
            assert_eq!(v.name, name, "graph {key}");
            let ValueType::Tensor { elem, shape, .. } = &v.ty else { continue };
            if let Some(dtype) = w.get("dtype").and_then(|d| d.as_str()) {
                assert_eq!(*elem, ElemType::DType(DType::from_name(dtype).unwrap()), "{key} {name}: dtype");
            }
            if let Some(dims) = w.get("shape").and_then(|d| d.as_array()) {
                let want: Vec<Dim<'_>> = dims
                    .iter()
                    .map(|d| match (d.as_u64(), d.as_str()) {
                        (Some(n), _) => Dim::Fixed(n),
                        (_, Some(s)) => Dim::Symbolic(s),
                        _ => Dim::Unknown,
                    })
                    .collect();
                assert_eq!(shape.as_deref(), Some(&want[..]), "{key} {name}: shape");
            }
        }
    }
    if let Some(opsets) = r.get("opsets").and_then(|v| v.as_array()) {
        let got: Vec<(String, i64)> =
            g.opset_imports().iter().map(|o| (o.domain.to_string(), o.version)).collect();
        let want: Vec<(String, i64)> = opsets
            .iter()
            .map(|o| (o["domain"].as_str().unwrap().to_string(), o["version"].as_i64().unwrap()))
            .collect();
        assert_eq!(got, want, "opset imports");
    }
    for rt in r["tensors"].as_array().unwrap() {
        let t = model.tensor(rt["name"].as_str().unwrap()).unwrap();
        if let Some(offset) = rt.get("offset").and_then(|o| o.as_u64()) {
            assert_eq!(t.location.offset, offset, "{}: data offset", t.name);
        }
        if let Some(file) = rt.get("file").and_then(|f| f.as_str()) {
            let got = model.files[t.location.file].file_name().unwrap().to_str().unwrap();
            assert_eq!(got, file, "{}: file", t.name);
        }
    }
}

/// Every tensor's bytes are where its Location says (exactly, for raw_data and external data;
/// tensors converted from typed fields only point at their field, inside the file).
fn assert_locations_hold_the_bytes(model: &Model, typed_fields: bool) {
    for t in &model.tensors {
        let file = std::fs::read(&model.files[t.location.file]).unwrap();
        let start = t.location.offset as usize;
        assert!(
            start < file.len(),
            "{}: offset {start} outside {}",
            t.name,
            model.files[t.location.file].display()
        );
        if !typed_fields && !t.data.is_empty() {
            assert_eq!(
                file.get(start..start + t.data.len()),
                Some(&t.data[..]),
                "{}: bytes at its location",
                t.name
            );
        }
    }
}

fn check_fixture(model_rel: &str, reference_rel: &str) -> Model {
    let path = fixture(model_rel);
    let model = read(&path);
    let reference = fixture(reference_rel);
    common::assert_matches_reference(&model, &reference);
    assert_graph_matches_reference(&model, &reference);
    assert_locations_hold_the_bytes(&model, model_rel == "typed-fields.onnx");
    model
}

#[test]
fn mlp_with_raw_data_matches_onnx_reference() {
    let m = check_fixture("mlp.onnx", "mlp.reference.json");
    assert_eq!(m.version, "ONNX IR 10, opset 21");
    assert_eq!(m.files.len(), 1);
    assert_eq!(m.meta("author"), Some(&MetaValue::Str("smelt fixtures".into())));
    assert_eq!(m.meta("onnx.doc_string"), Some(&MetaValue::Str("A two-layer MLP.".into())));
    let g = m.graph.as_ref().unwrap();
    assert_eq!((g.ir_version(), g.producer_name(), g.name()), (10, "smelt gen_onnx.py", "mlp"));
    assert_eq!(g.opset_version(""), Some(21));
    assert_eq!(g.opset_version("ai.onnx"), Some(21));
    assert_eq!(g.nodes().len(), 5);
    assert_eq!(g.nodes()[2].op_type.as_deref(), Some("Relu"));
    assert_eq!(g.initializer_names(), ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    assert!(g.proto().graph.as_ref().unwrap().initializer.is_empty(), "initializers moved to Model::tensors");
    let x = &g.inputs()[0];
    assert_eq!(
        x.ty,
        ValueType::Tensor {
            elem: ElemType::DType(DType::F32),
            shape: Some(vec![Dim::Symbolic("batch"), Dim::Fixed(8)]),
            sparse: false
        }
    );
    assert_eq!(g.runtime_inputs().len(), 1);
}

/// Guards zero-copy decoding: prost must slice `raw_data` out of the mapped `Bytes`.
#[test]
fn raw_data_is_a_slice_of_the_mapped_file() {
    let path = fixture("mlp.onnx");
    let file = std::fs::File::open(&path).unwrap();
    let mapped = smelt_tensor::storage::map_file(&file).unwrap();
    let model = onnx::parse(mapped.clone(), &path).unwrap();
    let range = mapped.as_ptr() as usize..mapped.as_ptr() as usize + mapped.len();
    assert!(!model.tensors.is_empty());
    for t in &model.tensors {
        let start = t.data.as_ptr() as usize;
        assert!(range.contains(&start) && start + t.data.len() <= range.end, "{} was copied", t.name);
        assert_eq!(start - range.start, t.location.offset as usize, "{}: location", t.name);
    }
}

#[test]
fn typed_fields_of_every_type_match_onnx_reference() {
    let m = check_fixture("typed-fields.onnx", "typed-fields.reference.json");
    let g = m.graph.as_ref().unwrap();
    let s = m.tensor("string").unwrap();
    assert_eq!((s.dtype, s.data.len()), (DType::String, 0));
    assert_eq!(g.string_values("string").unwrap(), [b"hello".to_vec(), "wörld".as_bytes().to_vec()]);
    let i4 = m.tensor("int4").unwrap();
    // [-8, 7, -1]: low nibble first, padding nibble 0.
    assert_eq!(&i4.data[..], &[0x78, 0x0f]);
    assert_eq!(m.tensor("bool").unwrap().data[..], [1, 0, 1]);
    assert_eq!(m.tensor("scalar").unwrap().shape, Vec::<u64>::new());
    assert_eq!(m.tensor("empty").unwrap().data.len(), 0);
}

#[test]
fn external_data_matches_onnx_reference_and_is_mapped_once() {
    let m = check_fixture("external/model.onnx", "external/model.reference.json");
    assert_eq!(m.files.len(), 2, "model.onnx and weights.bin once: {:?}", m.files);
    assert!(m.files[1].ends_with("weights.bin"));
    let w = m.tensor("w").unwrap();
    assert_eq!((w.location.file, w.location.offset), (1, 0));
    let w16 = m.tensor("w16").unwrap();
    assert_eq!((w16.location.file, w16.location.offset, w16.dtype), (1, 16384, DType::F16));
    assert_eq!(m.tensor("b").unwrap().location.file, 0, "small tensor stayed inline");
    // The Constant's value was external too: now resolved into raw_data.
    let g = m.graph.as_ref().unwrap();
    let value = g.nodes()[0].attribute[0].t.as_ref().unwrap();
    assert_eq!(value.raw_data.as_ref().map(|b| b.len()), Some(8 * 64 * 4));
    assert!(value.external_data.is_empty() && value.data_location.is_none());
    let weights = std::fs::read(&m.files[1]).unwrap();
    assert_eq!(&value.raw_data.as_ref().unwrap()[..], &weights[24576..24576 + 2048]);
}

#[test]
fn subgraph_and_node_metadata_are_kept_and_normalized() {
    let m = check_fixture("subgraph.onnx", "subgraph.reference.json");
    let g = m.graph.as_ref().unwrap();
    let if_node = g.nodes().iter().find(|n| n.op_type.as_deref() == Some("If")).unwrap();
    assert_eq!(if_node.metadata_props[0].key.as_deref(), Some("note"));
    let then = if_node.attribute.iter().find(|a| a.name.as_deref() == Some("then_branch")).unwrap();
    let sub = then.g.as_ref().unwrap();
    assert_eq!(sub.initializer[0].name.as_deref(), Some("then.k"));
    assert_eq!(sub.initializer[0].raw_data.as_ref().unwrap().len(), 16);
    // make_tensor wrote the Constant's value in float_data; normalized into raw_data.
    let cv = sub.node[0].attribute[0].t.as_ref().unwrap();
    assert!(cv.float_data.is_empty());
    assert_eq!(&cv.raw_data.as_ref().unwrap()[..4], &2.0f32.to_le_bytes());
    assert_eq!(sub.node[1].metadata_props[0].value.as_deref(), Some("then branch"));
    assert_eq!(g.graph().metadata_props[0].key.as_deref(), Some("graph_note"));
}

/// Models exported by torch.onnx (fixtures/onnx/torch-*, made by another generator).
#[test]
fn torch_exports_match_their_references() {
    for (model, reference) in [
        ("torch-mlp.onnx", "torch-mlp.reference.json"),
        ("torch-tiny-llama.onnx", "torch-tiny-llama.reference.json"),
        ("torch-tiny-llama-external/model.onnx", "torch-tiny-llama-external/model.reference.json"),
    ] {
        assert!(
            fixture(model).exists(),
            "{model}: committed fixture missing (tools/fixtures/gen_torch_fixtures.py makes it)"
        );
        check_fixture(model, reference);
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed files: one per variant (fixtures/malformed/onnx/README.md lists them).

fn malformed_path(name: &str) -> PathBuf {
    common::fixtures().join("malformed/onnx").join(name)
}

fn onnx_error(path: &Path) -> OnnxError {
    match onnx::read(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => {
            assert_eq!(e.path, path, "error names the file");
            match e.kind {
                ErrorKind::Onnx(o) => {
                    // Messages must render (and mention a byte offset, except MissingGraph's "byte 0").
                    let text = o.to_string();
                    assert!(
                        text.contains("byte")
                            || matches!(o, OnnxError::DecodeTooLarge { .. } | OnnxError::Protobuf { .. }),
                        "{text}"
                    );
                    o
                }
                other => panic!("{}: not an ONNX error: {other}", path.display()),
            }
        }
    }
}

fn malformed(name: &str) -> OnnxError {
    onnx_error(&malformed_path(name))
}

fn file_len(name: &str) -> u64 {
    std::fs::metadata(malformed_path(name)).unwrap().len()
}

#[test]
fn wire_structure_errors_have_offsets() {
    assert!(matches!(malformed("truncated.onnx"), OnnxError::Truncated { .. }));
    let n = file_len("bad-varint.onnx");
    assert!(matches!(malformed("bad-varint.onnx"), OnnxError::BadVarint { offset, .. } if offset == n - 11));
    let n = file_len("bad-field-key.onnx");
    assert!(
        matches!(malformed("bad-field-key.onnx"), OnnxError::BadFieldKey { offset, .. } if offset == n - 2)
    );
    let n = file_len("bad-wire-type.onnx");
    assert!(
        matches!(malformed("bad-wire-type.onnx"), OnnxError::BadWireType { offset, found: 2, .. } if offset == n - 2)
    );
    assert!(matches!(malformed("group-wire-type.onnx"), OnnxError::BadWireType { found: 3, .. }));
    assert!(matches!(malformed("packed-length.onnx"), OnnxError::PackedLength { len: 5, width: 4, .. }));
    let n = file_len("invalid-utf8.onnx");
    assert!(
        matches!(malformed("invalid-utf8.onnx"), OnnxError::InvalidUtf8 { offset, .. } if offset == n - 2)
    );
    assert!(matches!(malformed("too-deep.onnx"), OnnxError::TooDeep { .. }));
    assert!(matches!(malformed("decode-too-large.onnx"), OnnxError::DecodeTooLarge { .. }));
    assert!(matches!(malformed("missing-graph.onnx"), OnnxError::MissingGraph));
}

#[test]
fn model_level_errors() {
    assert!(
        matches!(malformed("duplicate-metadata-key.onnx"), OnnxError::DuplicateMetadataKey { key, offset, first_offset } if key == "a" && offset > first_offset)
    );
    assert!(
        matches!(malformed("unnamed-initializer.onnx"), OnnxError::UnnamedInitializer { offset } if offset > 0)
    );
    assert!(matches!(malformed("name-too-long.onnx"), OnnxError::NameTooLong { len: 5000, .. }));
    assert!(
        matches!(malformed("duplicate-initializer.onnx"), OnnxError::DuplicateInitializer { name, offset, first_offset } if name == "w" && offset > first_offset)
    );
    assert!(
        matches!(malformed("sparse-initializer.onnx"), OnnxError::SparseInitializer { name, offset } if name == "s" && offset > 0)
    );
}

#[test]
fn tensor_level_errors() {
    assert!(matches!(malformed("rank-too-large.onnx"), OnnxError::RankTooLarge { rank: 17, .. }));
    assert!(matches!(malformed("negative-dim.onnx"), OnnxError::NegativeDim { index: 1, dim: -3, .. }));
    assert!(matches!(malformed("shape-overflow.onnx"), OnnxError::ShapeOverflow { .. }));
    assert!(matches!(malformed("unknown-data-type.onnx"), OnnxError::UnknownDataType { id: 99, .. }));
    assert!(matches!(malformed("undefined-data-type.onnx"), OnnxError::UnknownDataType { id: 0, .. }));
    assert!(matches!(
        malformed("unsupported-data-type.onnx"),
        OnnxError::UnsupportedDataType { id: 24, onnx_name: "FLOAT8E8M0", .. }
    ));
    assert!(matches!(malformed("segmented.onnx"), OnnxError::Segmented { .. }));
    assert!(matches!(malformed("bad-data-location.onnx"), OnnxError::BadDataLocation { value: 2, .. }));
    assert!(matches!(
        malformed("raw-data-length.onnx"),
        OnnxError::RawDataLength { expected: 24, found: 20, .. }
    ));
    assert!(matches!(
        malformed("element-count.onnx"),
        OnnxError::ElementCount { field: "float_data", expected: 6, found: 5, .. }
    ));
    assert!(matches!(malformed("missing-data.onnx"), OnnxError::ElementCount { expected: 2, found: 0, .. }));
    assert!(matches!(
        malformed("wrong-data-field.onnx"),
        OnnxError::WrongDataField { field: "float_data", dtype: DType::I64, .. }
    ));
    assert!(matches!(malformed("conflicting-data.onnx"), OnnxError::ConflictingData { .. }));
    assert!(
        matches!(malformed("value-out-of-range.onnx"), OnnxError::ValueOutOfRange { index: 1, value, .. } if value == "300")
    );
    match malformed("nested-raw-data-length.onnx") {
        OnnxError::RawDataLength { name, offset, .. } => assert!(name == "cv" && offset > 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tensor_errors_name_the_tensor_and_its_offset() {
    // The initializer entry starts right where the bytes of its name field come after.
    let bytes = std::fs::read(malformed_path("raw-data-length.onnx")).unwrap();
    let OnnxError::RawDataLength { name, offset, .. } = malformed("raw-data-length.onnx") else { panic!() };
    assert_eq!(name, "w");
    // GraphProto.initializer entry: key 0x2a (field 5, LEN).
    assert_eq!(bytes[offset as usize], 0x2a);
}

#[test]
fn external_data_errors() {
    assert!(matches!(malformed("external-missing-location.onnx"), OnnxError::ExternalMissingLocation { .. }));
    assert!(
        matches!(malformed("external-duplicate-key.onnx"), OnnxError::ExternalDuplicateKey { key, .. } if key == "offset")
    );
    assert!(matches!(
        malformed("external-bad-number.onnx"),
        OnnxError::ExternalBadNumber { key: "offset", .. }
    ));
    assert!(matches!(malformed("external-absolute-path.onnx"), OnnxError::ExternalAbsolutePath { .. }));
    assert!(matches!(malformed("external-parent-dir.onnx"), OnnxError::ExternalParentDir { .. }));
    assert!(matches!(malformed("external-not-a-file.onnx"), OnnxError::ExternalNotAFile { .. }));
    assert!(matches!(malformed("external-open.onnx"), OnnxError::ExternalOpen { .. }));
    assert!(matches!(
        malformed("external-out-of-range.onnx"),
        OnnxError::ExternalOutOfRange { data_offset: 56, length: 16, file_len: 64, .. }
    ));
    assert!(matches!(
        malformed("external-length-mismatch.onnx"),
        OnnxError::ExternalLengthMismatch { expected: 16, found: 12, .. }
    ));
    assert!(
        matches!(malformed("external-overlap.onnx"), OnnxError::ExternalOverlap { name, other, .. } if name == "b" && other == "a")
    );
    assert!(matches!(
        malformed("external-string.onnx"),
        OnnxError::WrongDataField { dtype: DType::String, .. }
    ));
    assert!(matches!(malformed("external-with-raw-data.onnx"), OnnxError::ConflictingData { .. }));
}

// ---------------------------------------------------------------------------------------------
// Built at run time.

fn external_tensor(name: &str, dims: &[i64], location: &str, offset: u64, length: u64) -> TensorProto {
    let kv = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
    TensorProto {
        name: Some(name.into()),
        data_type: Some(1),
        dims: dims.to_vec(),
        data_location: Some(DataLocation::External as i32),
        external_data: vec![
            kv("location", location.into()),
            kv("offset", offset.to_string()),
            kv("length", length.to_string()),
        ],
        ..Default::default()
    }
}

fn model_bytes(initializer: Vec<TensorProto>) -> Vec<u8> {
    ModelProto {
        ir_version: Some(10),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(21) }],
        graph: Some(GraphProto { name: Some("g".into()), initializer, ..Default::default() }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Writes `model.onnx` referencing `location` into `dir` and reads it.
fn read_with_external(dir: &Path, location: &str) -> Result<Model, smelt_formats::Error> {
    let path = dir.join("model.onnx");
    std::fs::write(&path, model_bytes(vec![external_tensor("w", &[4], location, 0, 16)])).unwrap();
    onnx::read(&path)
}

#[cfg(unix)]
#[test]
fn external_symlink_out_of_the_model_directory_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.bin"), [7u8; 16]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.bin"), dir.path().join("weights.bin")).unwrap();
    let err = read_with_external(dir.path(), "weights.bin").unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Onnx(OnnxError::ExternalOutsideDir { .. })), "{err}");
    // A symlink to a directory outside, then a file through it.
    std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
    let err = read_with_external(dir.path(), "sub/secret.bin").unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Onnx(OnnxError::ExternalOutsideDir { .. })), "{err}");
    // A symlink that stays inside the directory is fine.
    std::fs::write(dir.path().join("real.bin"), [1u8; 16]).unwrap();
    std::os::unix::fs::symlink("real.bin", dir.path().join("alias.bin")).unwrap();
    let m = read_with_external(dir.path(), "alias.bin").unwrap();
    assert_eq!(&m.tensors[0].data[..], &[1u8; 16]);
}

#[cfg(unix)]
#[test]
fn external_hard_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.bin"), [0u8; 16]).unwrap();
    std::fs::hard_link(dir.path().join("a.bin"), dir.path().join("weights.bin")).unwrap();
    let err = read_with_external(dir.path(), "weights.bin").unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Onnx(OnnxError::ExternalHardLink { links: 2, .. })), "{err}");
    assert!(err.to_string().contains("hard link"), "the message says why: {err}");
}

/// Offsets are u64 end to end: initializers past the 2 GiB and 4 GiB marks of a sparse
/// external file (costs no disk).
#[test]
fn external_data_beyond_4_gib() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let weights = std::fs::File::create(dir.path().join("weights.bin")).unwrap();
    let (at_2g, at_4g) = ((1u64 << 31) + 4096, (1u64 << 32) + 8192);
    weights.set_len((1u64 << 32) + (1 << 20)).unwrap();
    weights.write_at(&[1u8; 16], at_2g).unwrap();
    weights.write_at(&[2u8; 32], at_4g).unwrap();
    drop(weights);
    let path = dir.path().join("model.onnx");
    std::fs::write(
        &path,
        model_bytes(vec![
            external_tensor("past_2g", &[4], "weights.bin", at_2g, 16),
            external_tensor("past_4g", &[2, 4], "weights.bin", at_4g, 32),
        ]),
    )
    .unwrap();
    let m = read(&path);
    let a = m.tensor("past_2g").unwrap();
    assert_eq!((a.location.file, a.location.offset), (1, at_2g));
    assert_eq!(&a.data[..], &[1u8; 16]);
    let b = m.tensor("past_4g").unwrap();
    assert_eq!((b.location.offset, b.shape.as_slice()), (at_4g, &[2u64, 4][..]));
    assert_eq!(&b.data[..], &[2u8; 32]);
}

#[test]
fn more_initializers_than_the_cap_are_refused_before_decoding() {
    let count = smelt_formats::limits::MAX_TENSORS + 1;
    // GraphProto.initializer entries with an empty TensorProto: 2 bytes each.
    let mut graph = Vec::with_capacity(2 * count as usize);
    for _ in 0..count {
        graph.extend_from_slice(&[0x2a, 0x00]);
    }
    let mut model = vec![0x3a];
    prost::encoding::encode_varint(graph.len() as u64, &mut model);
    model.extend_from_slice(&graph);
    let err = onnx::parse(Bytes::from(model), Path::new("many.onnx")).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Onnx(OnnxError::TooManyTensors { .. })), "{err}");
}

#[test]
fn empty_and_garbage_inputs_are_errors_not_panics() {
    let p = Path::new("x.onnx");
    assert!(matches!(
        onnx::parse(Bytes::new(), p).unwrap_err().kind,
        ErrorKind::Onnx(OnnxError::MissingGraph)
    ));
    for garbage in [&b"\xff"[..], b"GGUF\x03\x00\x00\x00", b"{\"a\":1}", b"\x3a\xff\xff\xff\xff\x0f"] {
        assert!(onnx::parse(Bytes::copy_from_slice(garbage), p).is_err());
    }
}

/// Nothing in the reader assumes protobuf's 2 GiB message limit: an initializer whose inline
/// raw_data alone is over 2 GiB (a sparse `.onnx` file, costs no disk) is read zero-copy.
#[test]
fn inline_raw_data_over_2_gib() {
    use std::os::unix::fs::FileExt;
    fn key_len(out: &mut Vec<u8>, key: u8, len: u64) {
        out.push(key);
        prost::encoding::encode_varint(len, out);
    }
    let numel = (1u64 << 29) + 4; // f32: 2 GiB + 16 bytes
    let raw_len = numel * 4;
    let mut tensor = Vec::new();
    key_len(&mut tensor, 0x42, 3); // name (8)
    tensor.extend_from_slice(b"big");
    tensor.extend_from_slice(&[0x10, 0x01]); // data_type (2) = FLOAT
    tensor.push(0x08); // dims (1)
    prost::encoding::encode_varint(numel, &mut tensor);
    key_len(&mut tensor, 0x4a, raw_len); // raw_data (9), bytes follow in the file
    let tensor_len = tensor.len() as u64 + raw_len;
    let mut graph = Vec::new();
    key_len(&mut graph, 0x2a, tensor_len); // initializer (5)
    let graph_len = graph.len() as u64 + tensor.len() as u64 + raw_len;
    let mut prefix = vec![0x08, 0x0a]; // ir_version 10
    key_len(&mut prefix, 0x3a, graph_len); // graph (7)
    prefix.extend_from_slice(&graph);
    prefix.extend_from_slice(&tensor);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.onnx");
    let f = std::fs::File::create(&path).unwrap();
    f.write_at(&prefix, 0).unwrap();
    let total = prefix.len() as u64 + raw_len;
    f.set_len(total).unwrap();
    f.write_at(&1.5f32.to_le_bytes(), total - 4).unwrap();
    drop(f);

    let m = read(&path);
    let t = m.tensor("big").unwrap();
    assert_eq!((t.shape.as_slice(), t.data.len() as u64), (&[numel][..], raw_len));
    assert_eq!(t.location.offset, prefix.len() as u64);
    assert_eq!(&t.data[t.data.len() - 4..], &1.5f32.to_le_bytes());
}

proptest::proptest! {
    /// The wire pre-scan refuses whatever prost would (prost failing after the scan passed is
    /// the `Protobuf` variant, which must stay unreachable), and nothing panics.
    #[test]
    fn mutated_models_never_reach_prost_errors(
        which in 0usize..3,
        edits in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 1..6),
        cut in proptest::option::of(proptest::num::usize::ANY),
    ) {
        let name = ["mlp.onnx", "subgraph.onnx", "typed-fields.onnx"][which];
        let mut bytes = std::fs::read(fixture(name)).unwrap();
        for (at, byte) in edits {
            let i = at % bytes.len();
            bytes[i] = byte;
        }
        if let Some(c) = cut {
            bytes.truncate(c % (bytes.len() + 1));
        }
        if let Err(e) = onnx::parse(Bytes::from(bytes), &fixture(name)) {
            proptest::prop_assert!(!matches!(e.kind, ErrorKind::Onnx(OnnxError::Protobuf { .. })), "{}", e);
        }
    }
}

/// Guards against quadratic duplicate-key checks: 100,000 distinct external_data keys on one
/// tensor (unknown keys are ignored, as the onnx package does) must be cheap.
#[test]
fn many_external_data_keys_are_checked_in_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), [3u8; 16]).unwrap();
    let mut t = external_tensor("w", &[4], "w.bin", 0, 16);
    for i in 0..100_000 {
        t.external_data
            .push(StringStringEntryProto { key: Some(format!("k{i}")), value: Some(String::new()) });
    }
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, model_bytes(vec![t])).unwrap();
    assert_eq!(&read(&path).tensors[0].data[..], &[3u8; 16]);
}
