//! Fuzzes the onnx reader: any bytes must give a model or an error, never a panic, a hang or a
//! huge allocation.
//!
//! The input is parsed as `model.onnx` in a scratch directory holding the external data files
//! the fixtures use (`ext-data.bin`, `weights.bin`, `model.onnx.data`), so that mutated
//! external references exercise the resolution and range checks, not just "file not found".
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use smelt_formats::onnx::OnnxError;
use smelt_formats::ErrorKind;

fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("smelt-fuzz-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let copies = [
            ("malformed/onnx/ext-data.bin", "ext-data.bin"),
            ("onnx/external/weights.bin", "weights.bin"),
            ("onnx/torch-tiny-llama-external/model.onnx.data", "model.onnx.data"),
        ];
        for (from, to) in copies {
            let data = std::fs::read(fixtures.join(from)).unwrap_or_else(|_| vec![0u8; 64]);
            std::fs::write(dir.join(to), data).expect("scratch file");
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch_dir().join("model.onnx");
    match smelt_formats::onnx::parse(bytes::Bytes::copy_from_slice(data), &path) {
        Ok(model) => {
            assert!(model.graph.is_some());
            for t in &model.tensors {
                if t.dtype.name() != "STRING" {
                    assert_eq!(Some(t.data.len() as u64), t.dtype.storage_bytes(&t.shape), "{}", t.name);
                }
            }
        }
        // The wire pre-scan is meant to refuse everything prost would, with an offset; prost
        // failing after the scan passed means the two disagree.
        Err(e) => assert!(
            !matches!(e.kind, ErrorKind::Onnx(OnnxError::Protobuf { .. })),
            "pre-scan accepted what prost refused: {e}"
        ),
    }
});
