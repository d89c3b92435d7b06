//! Spinning workers (`Session::set_spin`, on by default) change no result and never hold a
//! run up: the torch-exported tiny Llama gives the same bits with spinning on and off, from
//! outside the pool (where a run starts spinners) and from inside it (where it does not),
//! a run that fails still returns, and runs on several threads at once sharing the pool all
//! finish.

use std::path::Path;

use smelt_runtime::{Data, Session, Value};

fn llama() -> (Session, Vec<(String, Value)>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx");
    let session = Session::load(&dir.join("torch-tiny-llama.onnx")).unwrap();
    let ids = smelt_formats::npy::read(&dir.join("torch-tiny-llama.input.npy")).unwrap();
    let shape: Vec<usize> = ids.shape.iter().map(|&d| d as usize).collect();
    let input =
        Value::new(shape.clone(), Data::from_le_bytes(ids.dtype, &ids.data, shape.iter().product()).unwrap());
    (session, vec![("input_ids".into(), input)])
}

fn logits_bits(session: &Session, feeds: &[(String, Value)]) -> Vec<u32> {
    let out = session.run(feeds.to_vec()).unwrap();
    let Data::F32(v) = &out[0].1.data else { panic!("logits are f32") };
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn spinning_changes_no_bit_and_never_hangs() {
    let (mut session, feeds) = llama();
    let want = logits_bits(&session, &feeds);
    for spin in [false, true, false, true] {
        session.set_spin(spin);
        for _ in 0..5 {
            assert_eq!(logits_bits(&session, &feeds), want, "spin {spin}");
        }
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let inside = pool.install(|| logits_bits(&session, &feeds));
            assert_eq!(inside, want, "spin {spin}, inside a pool of {threads}");
        }
        // A failing run (a missing input) ends the spinners too.
        assert!(session.run(Vec::new()).is_err());
    }
}

/// `Y = X·W₁·W₂·…·W₆` (`X` `[64, 256]`, each `W` `[256, 256]`): every product is split over
/// the pool's threads.
fn matmul_chain() -> (Session, Vec<(String, Value)>) {
    use prost::Message;
    use smelt_formats::onnx::proto::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
    use smelt_formats::onnx::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
    use smelt_formats::onnx::proto::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
        ValueInfoProto,
    };
    let (rows, width, depth) = (64usize, 256usize, 6);
    let names: Vec<String> = (0..=depth).map(|i| if i == 0 { "X".into() } else { format!("h{i}") }).collect();
    let node = (1..=depth)
        .map(|i| NodeProto {
            op_type: Some("MatMul".into()),
            input: vec![names[i - 1].clone(), format!("W{i}")],
            output: vec![if i == depth { "Y".into() } else { names[i].clone() }],
            ..Default::default()
        })
        .collect();
    let initializer = (1..=depth)
        .map(|i| TensorProto {
            name: Some(format!("W{i}")),
            dims: vec![width as i64; 2],
            data_type: Some(1),
            float_data: (0..width * width)
                .map(|e| ((e * 7919 + i) % 1999) as f32 / 20_000.0 - 0.05)
                .collect(),
            ..Default::default()
        })
        .collect();
    let x_info = ValueInfoProto {
        name: Some("X".into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: [rows, width]
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(DimValue::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(10),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            name: Some("chain".into()),
            node,
            initializer,
            input: vec![x_info],
            output: vec![ValueInfoProto { name: Some("Y".into()), ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = Path::new("matmul-chain.onnx");
    let parsed = smelt_formats::onnx::parse(model.encode_to_vec().into(), path).unwrap();
    let x: Vec<f32> = (0..rows * width).map(|e| ((e * 104_729) % 997) as f32 / 500.0 - 1.0).collect();
    (Session::from_model(&parsed, path).unwrap(), vec![("X".into(), Value::f32(vec![rows, width], x))])
}

#[test]
fn concurrent_runs_sharing_the_pool_all_finish() {
    // Each run's spinners may land on a worker whose own run waits inside a parallel region;
    // without a limit on idle spinning two such runs could wait for each other forever.
    let (session, feeds) = matmul_chain();
    let want = logits_bits(&session, &feeds);
    let session = std::sync::Arc::new(session);
    let (tx, rx) = std::sync::mpsc::channel();
    for t in 0..3 {
        let (session, feeds, want, tx) = (session.clone(), feeds.clone(), want.clone(), tx.clone());
        std::thread::spawn(move || {
            for _ in 0..40 {
                assert_eq!(logits_bits(&session, &feeds), want, "thread {t}");
            }
            tx.send(t).unwrap();
        });
    }
    for _ in 0..3 {
        rx.recv_timeout(std::time::Duration::from_secs(120))
            .expect("concurrent runs finish (or a thread failed)");
    }
}
