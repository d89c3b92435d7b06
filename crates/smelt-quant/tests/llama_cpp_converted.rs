//! smelt's Q8_0 codec against the Q8_0 file llama.cpp's converter wrote
//! (`fixtures/gguf/llama-cpp/tiny-llama-q8_0.gguf`, `convert_hf_to_gguf.py --outtype q8_0`
//! from the same checkpoint as `tiny-llama-f32.gguf`; see that directory's README.md).
//! Quantizing the F32 file's matrices with smelt gives the converter's bytes exactly, and
//! dequantizing the converter's bytes gives the F32 values within half a quantization step.

use std::path::{Path, PathBuf};

use smelt_formats::Model;
use smelt_quant::ggml;
use smelt_tensor::DType;

fn converted(outtype: &str) -> Model {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/gguf/llama-cpp")
        .join(format!("tiny-llama-{outtype}.gguf"));
    smelt_formats::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// (name, F32 values from the f32 file, Q8_0 bytes from the q8_0 file) for every Q8_0 matrix.
fn q8_0_pairs() -> Vec<(String, Vec<f32>, Vec<u8>)> {
    let (f32_model, q8_model) = (converted("f32"), converted("q8_0"));
    let pairs: Vec<_> = q8_model
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::Q8_0)
        .map(|q| {
            let f = f32_model.tensor(&q.name).unwrap_or_else(|| panic!("{}: not in the f32 file", q.name));
            assert_eq!((f.dtype, &f.shape), (DType::F32, &q.shape), "{}", q.name);
            let values = smelt_tensor::convert::to_f32_vec(f.dtype, &f.data, f.numel() as usize).unwrap();
            (q.name.clone(), values, q.data.to_vec())
        })
        .collect();
    assert_eq!(pairs.len(), 16, "Q8_0 matrices in the q8_0 file");
    pairs
}

#[test]
fn smelt_q8_0_quantizer_reproduces_the_converters_bytes() {
    for (name, values, want) in q8_0_pairs() {
        let got = ggml::quantize_to_vec(DType::Q8_0, &values).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), want.len(), "{name}: length");
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "{name}: smelt's Q8_0 bytes differ from llama.cpp's converter first at byte {i} (block {})",
                i / 34
            );
        }
    }
}

#[test]
fn converters_q8_0_dequantizes_to_the_f32_values() {
    for (name, values, bytes) in q8_0_pairs() {
        let got = ggml::dequantize_to_vec(DType::Q8_0, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), values.len(), "{name}: length");
        // Each block of 32 has scale d = amax / 127 (stored as F16): values round to q * d.
        for (b, (g, w)) in got.chunks(32).zip(values.chunks(32)).enumerate() {
            let amax = w.iter().fold(0f32, |m, v| m.max(v.abs()));
            let tol = amax / 127.0 * 0.5 + amax * 2f32.powi(-10);
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert!((g - w).abs() <= tol, "{name} block {b} [{i}]: dequantized {g}, f32 file {w}");
            }
        }
    }
}
