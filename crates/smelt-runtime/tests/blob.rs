//! Loading smelt blobs: a blob without a graph is its own error; the one quantized layout
//! smelt's writer never produces, int4 with act-order `g_idx` (which the end-to-end tests
//! against onnxruntime cannot reach), dequantizes by docs/blob-format.md's formula, computed
//! here by hand.

use std::io::Cursor;
use std::path::Path;

use prost::Message as _;
use smelt_formats::blob::{proto, BlobMetadata, BlobWriter, EntryDecl, EntryFlags, Scheme, TensorSections};
use smelt_formats::onnx::proto as onnx;
use smelt_runtime::{Data, RuntimeError, Session, Value};
use smelt_tensor::DType;

fn write(path: &Path, meta: &BlobMetadata, decl: EntryDecl, sections: [&[u8]; 4]) {
    let mut w = BlobWriter::with_entries(Cursor::new(Vec::new()), Some(meta), [decl]).unwrap();
    let [data, scales, zeros, aux] = sections;
    w.write_tensor(TensorSections { data, scales, zeros, aux }).unwrap();
    std::fs::write(path, w.finish().unwrap().into_inner()).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn a_blob_without_a_graph_says_what_it_was_made_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.smelt");
    let meta = BlobMetadata { source_format: "gguf".into(), ..Default::default() };
    let data = f32_bytes(&[1.0, 2.0]);
    write(&path, &meta, EntryDecl::raw("w", DType::F32, &[2]), [&data, &[], &[], &[]]);
    match Session::load(&path) {
        Err(RuntimeError::BlobWithoutGraph { path: p, source_format }) => {
            assert_eq!((p.as_str(), source_format.as_str()), (path.to_str().unwrap(), "gguf"));
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("loaded"),
    }
}

/// `y = MatMul(x, w)` with `x` the 2×2 identity, so `y` is `w` as the runner rebuilt it.
#[test]
fn int4_with_g_idx_dequantizes_by_the_documented_formula() {
    let (rows, cols, block) = (2usize, 5usize, 2u32);
    let groups = 3; // cdiv(5, 2)
    let q: Vec<u8> = vec![0, 3, 15, 8, 1, 9, 2, 14, 7, 5];
    let g_idx: Vec<i32> = vec![2, 0, 1, 0, 2];
    let scales: Vec<f32> = vec![0.5, 0.25, 2.0, 1.5, -0.75, 0.125];
    let zeros: Vec<u8> = vec![8, 1, 15, 0, 7, 3];
    // Each row packed separately, first element in the low nibble: 3 bytes per row.
    let mut data = Vec::new();
    for r in 0..rows {
        let row = &q[r * cols..(r + 1) * cols];
        for pair in row.chunks(2) {
            data.push(pair[0] | pair.get(1).map_or(0, |h| h << 4));
        }
    }
    let want: Vec<f32> = (0..rows * cols)
        .map(|i| {
            let k = (i / cols) * groups + g_idx[i % cols] as usize;
            scales[k] * (q[i] as f32 - zeros[k] as f32)
        })
        .collect();

    let vi = |name: &str, dims: &[i64]| onnx::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(onnx::TypeProto {
            value: Some(onnx::type_proto::Value::TensorType(onnx::type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(onnx::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| onnx::tensor_shape_proto::Dimension {
                            value: Some(onnx::tensor_shape_proto::dimension::Value::DimValue(d)),
                            denotation: None,
                        })
                        .collect(),
                }),
            })),
            denotation: None,
        }),
        ..Default::default()
    };
    let model = onnx::ModelProto {
        ir_version: Some(8),
        opset_import: vec![onnx::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(onnx::GraphProto {
            node: vec![onnx::NodeProto {
                input: vec!["x".into(), "w".into()],
                output: vec!["y".into()],
                op_type: Some("MatMul".into()),
                ..Default::default()
            }],
            input: vec![vi("x", &[2, 2])],
            output: vec![vi("y", &[2, 5])],
            ..Default::default()
        }),
        ..Default::default()
    };
    let meta = BlobMetadata {
        source_format: "onnx".into(),
        onnx_graph: Some(proto::OnnxGraph {
            model: model.encode_to_vec().into(),
            initializers: vec![proto::GraphInitializer {
                name: "w".into(),
                tensor: "w.q".into(),
                data_type: 1,
                dims: vec![2, 5],
            }],
        }),
        ..Default::default()
    };
    let decl = EntryDecl {
        name: "w.q".into(),
        scheme: Scheme::Int4,
        dtype: DType::U8,
        dims: vec![2, 5],
        block_size: block,
        axis: None,
        flags: EntryFlags(0),
        compression: Default::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.smelt");
    let g: Vec<u8> = g_idx.iter().flat_map(|v| v.to_le_bytes()).collect();
    write(&path, &meta, decl, [&data, &f32_bytes(&scales), &zeros, &g]);

    let session = Session::load(&path).unwrap();
    let x = Value::new(vec![2, 2], Data::F32(vec![1.0, 0.0, 0.0, 1.0]));
    let out = session.run(vec![("x".into(), x)]).unwrap();
    assert_eq!(out[0].0, "y");
    assert_eq!(out[0].1.data, Data::F32(want));
}

/// The ternary tensors of `fixtures/blob/quant-schemes.smelt`, written by
/// `tools/fixtures/gen_blob.py` (numpy, packing the spec's way: base 3 first element least
/// significant, 2 bits first element lowest) decode with the codes and scale the runtime uses to
/// the values the generator recorded.
#[test]
fn generator_ternary_blobs_decode_to_the_generator_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/blob");
    let path = root.join("quant-schemes.smelt");
    let blob = smelt_formats::blob::read(&path).unwrap();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("quant-schemes.smelt.reference.json")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for t in reference["tensors"].as_array().unwrap() {
        let Some(want) = t.get("values") else { continue };
        let want: Vec<f32> = want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let name = t["name"].as_str().unwrap();
        let e = blob.entry(name).unwrap();
        let n = e.numel() as usize;
        let codes = match e.scheme {
            Scheme::Ternary2 => smelt_quant::ternary::unpack_2bit(&e.data.bytes, n),
            Scheme::Ternary3 => smelt_quant::ternary::unpack_base3(&e.data.bytes, n),
            other => panic!("{name}: {other:?}"),
        }
        .unwrap();
        let s = e.scales.as_ref().unwrap().bytes.clone();
        let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let got: Vec<f32> = codes.iter().map(|&q| q as f32 * scale).collect();
        assert_eq!(got, want, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 2);
}
