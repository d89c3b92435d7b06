//! Spinning workers (`Session::set_spin`, on by default) change no result and never hold a
//! run up: the torch-exported tiny Llama gives the same bits with spinning on and off, from
//! outside the pool (where a run starts spinners) and from inside it (where it does not),
//! and a run that fails still returns.

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
