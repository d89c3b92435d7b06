//! The ONNX graph a blob carries in its metadata (`onnx_graph`): read back with its
//! initializers mapped to blob tensors, and each way it can be wrong refused with its own
//! variant (the embedded model through the ONNX reader's checks, external data refused, each
//! initializer mapping checked against the directory).

use std::io::Cursor;
use std::path::Path;

use bytes::Bytes;
use prost::Message as _;
use smelt_formats::blob::{self, proto, BlobError, BlobMetadata, BlobWriter, EntryDecl, TensorSections};
use smelt_formats::onnx::proto as onnx;
use smelt_formats::onnx::OnnxError;
use smelt_formats::ErrorKind;
use smelt_tensor::DType;

/// `y = MatMul(x, w)` with `w` given only as a graph input (IR 3 style), no initializers.
fn model(extra_initializer: Option<onnx::TensorProto>) -> onnx::ModelProto {
    let vi = |name: &str| onnx::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(onnx::TypeProto {
            value: Some(onnx::type_proto::Value::TensorType(onnx::type_proto::Tensor {
                elem_type: Some(1),
                shape: None,
            })),
            denotation: None,
        }),
        ..Default::default()
    };
    onnx::ModelProto {
        ir_version: Some(8),
        opset_import: vec![onnx::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(onnx::GraphProto {
            name: Some("g".into()),
            node: vec![onnx::NodeProto {
                input: vec!["x".into(), "w".into()],
                output: vec!["y".into()],
                op_type: Some("MatMul".into()),
                ..Default::default()
            }],
            input: vec![vi("x"), vi("w")],
            output: vec![vi("y")],
            initializer: extra_initializer.into_iter().collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mapping(name: &str, tensor: &str, data_type: i32, dims: &[u64]) -> proto::GraphInitializer {
    proto::GraphInitializer { name: name.into(), tensor: tensor.into(), data_type, dims: dims.to_vec() }
}

fn write(dir: &Path, model: Bytes, initializers: Vec<proto::GraphInitializer>) -> std::path::PathBuf {
    let meta = BlobMetadata {
        producer: "test".into(),
        onnx_graph: Some(proto::OnnxGraph { model, initializers }),
        ..Default::default()
    };
    let decl = EntryDecl::raw("w.blob", DType::F32, &[2, 3]);
    let mut w = BlobWriter::with_entries(Cursor::new(Vec::new()), Some(&meta), [decl]).unwrap();
    let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    w.write_tensor(TensorSections { data: &data, scales: &[], zeros: &[], aux: &[] }).unwrap();
    let path = dir.join("m.smelt");
    std::fs::write(&path, w.finish().unwrap().into_inner()).unwrap();
    path
}

fn graph_error(path: &Path) -> BlobError {
    let err = blob::read(path).unwrap().onnx_graph().unwrap_err();
    assert_eq!(err.path, path);
    match err.kind {
        ErrorKind::Blob(e) => e,
        other => panic!("not a blob error: {other}"),
    }
}

#[test]
fn the_graph_reads_back_with_its_initializers_mapped_to_blob_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path =
        write(dir.path(), model(None).encode_to_vec().into(), vec![mapping("w", "w.blob", 1, &[2, 3])]);
    let g = blob::read(&path).unwrap().onnx_graph().unwrap().expect("a graph");
    assert_eq!(g.initializers.len(), 1);
    let i = &g.initializers[0];
    assert_eq!((i.name.as_str(), i.entry, i.dtype, i.dims.as_slice()), ("w", 0, DType::F32, &[2u64, 3][..]));
    let graph = g.model.graph.as_ref().unwrap();
    assert_eq!(graph.nodes().len(), 1);
    // `w` is listed as a graph input (IR 3 style) but is an initializer: not for the caller to feed.
    let feeds: Vec<&str> = graph.runtime_inputs().iter().map(|v| v.name).collect();
    assert_eq!(feeds, ["x"]);
    assert!(g.model.tensors.is_empty());
}

#[test]
fn a_blob_without_the_field_has_no_graph() {
    let dir = tempfile::tempdir().unwrap();
    let meta = BlobMetadata { producer: "test".into(), ..Default::default() };
    let w = BlobWriter::with_entries(Cursor::new(Vec::new()), Some(&meta), []).unwrap();
    let path = dir.path().join("n.smelt");
    std::fs::write(&path, w.finish().unwrap().into_inner()).unwrap();
    assert!(blob::read(&path).unwrap().onnx_graph().unwrap().is_none());
    let w = BlobWriter::with_entries(Cursor::new(Vec::new()), None, []).unwrap();
    std::fs::write(&path, w.finish().unwrap().into_inner()).unwrap();
    assert!(blob::read(&path).unwrap().onnx_graph().unwrap().is_none());
}

#[test]
fn a_truncated_embedded_model_is_refused_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = model(None).encode_to_vec();
    let cut = Bytes::from(bytes[..bytes.len() - 3].to_vec());
    let path = write(dir.path(), cut.clone(), vec![mapping("w", "w.blob", 1, &[2, 3])]);
    let file = std::fs::read(&path).unwrap();
    match graph_error(&path) {
        BlobError::GraphModel { offset, source } => {
            // The offset is where the embedded model's bytes sit in the file.
            let at = offset as usize;
            assert_eq!(&file[at..at + cut.len()], &cut[..], "{source}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn external_data_in_the_embedded_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A file the reference would point at, next to the blob: it must not be opened.
    std::fs::write(dir.path().join("secret.bin"), [0u8; 16]).unwrap();
    let external = onnx::TensorProto {
        name: Some("b".into()),
        dims: vec![4],
        data_type: Some(1),
        data_location: Some(1),
        external_data: vec![onnx::StringStringEntryProto {
            key: Some("location".into()),
            value: Some("secret.bin".into()),
        }],
        ..Default::default()
    };
    let path = write(
        dir.path(),
        model(Some(external)).encode_to_vec().into(),
        vec![mapping("w", "w.blob", 1, &[2, 3])],
    );
    match graph_error(&path) {
        BlobError::GraphModel { source, .. } => {
            assert!(
                matches!(*source, OnnxError::ExternalNotAllowed { ref name, .. } if name == "b"),
                "{source}"
            )
        }
        other => panic!("{other}"),
    }
}

#[test]
fn each_bad_mapping_is_refused_naming_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let inline = onnx::TensorProto {
        name: Some("c".into()),
        dims: vec![1],
        data_type: Some(1),
        raw_data: Some(Bytes::from_static(&[0, 0, 128, 63])),
        ..Default::default()
    };
    let cases: Vec<(Vec<proto::GraphInitializer>, &str)> = vec![
        (vec![mapping("w", "missing", 1, &[2, 3])], "the blob has no tensor 'missing'"),
        (vec![mapping("w", "w.blob", 1, &[3, 2])], "dims [3, 2] differ"),
        (vec![mapping("w", "w.blob", 0, &[2, 3])], "data_type 0 is not an ONNX type"),
        (vec![mapping("w", "w.blob", 8, &[2, 3])], "cannot hold a blob tensor"),
        (vec![mapping("", "w.blob", 1, &[2, 3])], "the name is empty"),
        (vec![mapping("w", "w.blob", 1, &[2, 3]), mapping("w", "w.blob", 1, &[2, 3])], "another initializer"),
        (vec![mapping("w", "w.blob", 1, &[2, 3]), mapping("c", "w.blob", 1, &[2, 3])], "another initializer"),
    ];
    for (k, (initializers, want)) in cases.into_iter().enumerate() {
        let index_expected = initializers.len() - 1;
        let path = write(dir.path(), model(Some(inline.clone())).encode_to_vec().into(), initializers);
        match graph_error(&path) {
            BlobError::GraphInitializer { index, reason, .. } => {
                assert_eq!(index, index_expected, "case {k}: {reason}");
                assert!(reason.contains(want), "case {k}: {reason}");
            }
            other => panic!("case {k}: {other}"),
        }
    }
}
