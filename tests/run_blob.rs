//! `smelt run` and `smelt validate` on smelt blobs converted from ONNX models, which carry the
//! graph in their metadata. References are independent of smelt: a float blob must give
//! onnxruntime's outputs on the original model (stored beside the fixtures by
//! tools/fixtures/gen_ort_outputs.py); a quantized or cast blob must give onnxruntime's outputs on
//! the original graph whose weights tools/interop/check_blob_run.py dequantized from the blob's
//! bytes itself (gguf-py for ggml types, numpy for the others). Blobs without a graph and blobs
//! whose graph metadata is corrupt are refused with exit 2, naming the file and the field.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use prost::Message as _;
use smelt_formats::blob::{layout::header_field as hf, BlobMetadata};
use support::{fixtures, interop, smelt, stderr};

const TINY_LLAMA: &str = "onnx/torch-tiny-llama.onnx";

fn runtime(name: &str) -> PathBuf {
    fixtures().join("runtime").join(name)
}

/// `smelt convert MODEL -o DIR/TAG.smelt EXTRA...`.
fn convert(dir: &Path, model: &str, tag: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{tag}.smelt"));
    let input = fixtures().join(model);
    let mut args: Vec<&OsStr> = vec!["convert".as_ref(), input.as_os_str(), "-o".as_ref(), out.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    let o = smelt(args);
    assert_eq!(o.status.code(), Some(0), "{tag}: {}", stderr(&o));
    out
}

/// `smelt run BLOB --inputs INPUTS -o OUT`, which must succeed.
fn run(blob: &Path, inputs: &Path, out: &Path) {
    let args: [&OsStr; 6] = [
        "run".as_ref(),
        blob.as_os_str(),
        "--inputs".as_ref(),
        inputs.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    let o = smelt(args);
    assert_eq!(o.status.code(), Some(0), "{}: {}", blob.display(), stderr(&o));
}

/// A float blob (every tensor kept as it was) runs exactly like its ONNX model: the outputs
/// match onnxruntime's on the original model as closely as the ONNX model's own do
/// (tests/run.rs), including a model whose weights were in external data.
#[test]
fn float_blobs_match_onnxruntime_on_the_original_model() {
    let dir = tempfile::tempdir().unwrap();
    for (model, name) in [("onnx/torch-mlp.onnx", "torch-mlp"), (TINY_LLAMA, "torch-tiny-llama")] {
        let blob = convert(dir.path(), model, name, &[]);
        let out = dir.path().join(format!("{name}.npz"));
        run(&blob, &runtime(&format!("{name}.inputs.npz")), &out);
        let got = smelt_formats::npz::read(&out).unwrap();
        let want = smelt_formats::npz::read(&runtime(&format!("{name}.ort.npz"))).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for ((gn, g), (wn, w)) in got.iter().zip(&want) {
            assert_eq!((gn, &g.shape, g.dtype), (wn, &w.shape, w.dtype), "{name}");
            let (g, w) = (g.to_f32().unwrap(), w.to_f32().unwrap());
            for (a, b) in g.iter().zip(&w) {
                assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{name}/{gn}: {a} vs onnxruntime {b}");
            }
        }
    }
}

/// Every scheme a blob can hold, on the tiny Llama (MatMul weights, a Gather'd embedding):
/// `smelt run` on the blob against onnxruntime on the graph with weights dequantized from the
/// blob's bytes by the interop script, within 1e-4 of the output's largest magnitude.
#[test]
fn quantized_blobs_match_onnxruntime_on_independently_dequantized_weights() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = runtime("torch-tiny-llama.inputs.npz");
    let cases: &[(&str, &[&str], &str)] = &[
        ("q8_0", &["--quant", "q8_0"], "ggml"),
        ("q4_0", &["--quant", "q4_0"], "ggml"),
        ("q5_1", &["--quant", "q5_1"], "ggml"),
        ("tq2_0", &["--quant", "tq2_0"], "ggml"),
        ("int8", &["--quant", "int8"], "int8"),
        ("int8-asym-tensor", &["--quant", "int8", "--asym", "--per-tensor"], "int8"),
        ("int4-g32", &["--quant", "int4", "--group-size", "32"], "int4"),
        ("int4-g64-asym", &["--quant", "int4", "--group-size", "64", "--asym"], "int4"),
        ("nf4", &["--quant", "nf4"], "nf4"),
        ("nf4-dq", &["--quant", "nf4", "--double-quant"], "nf4"),
        ("ternary", &["--quant", "ternary"], "ternary2"),
        ("ternary-base3", &["--quant", "ternary", "--base3"], "ternary3"),
        ("f16", &["--quant", "f16"], "raw"),
        ("bf16", &["--quant", "bf16"], "raw"),
    ];
    for (tag, extra, scheme) in cases {
        let blob = convert(dir.path(), TINY_LLAMA, tag, extra);
        let out = dir.path().join(format!("{tag}.npz"));
        run(&blob, &inputs, &out);
        let model = fixtures().join(TINY_LLAMA);
        let text = interop(
            "check_blob_run.py",
            &[
                model.as_os_str(),
                blob.as_os_str(),
                inputs.as_os_str(),
                out.as_os_str(),
                "--tol".as_ref(),
                "1e-4".as_ref(),
                "--expect-scheme".as_ref(),
                scheme.as_ref(),
            ],
        );
        eprintln!("{tag}: {}", text.lines().next().unwrap_or(""));
    }
}

/// The convert-then-validate story: an ONNX model against its blob. The float blob gives
/// exactly the model's outputs (same runner, same weights); the q8_0 blob passes thresholds
/// that its quantization error meets, and not a max-abs threshold it cannot.
#[test]
fn validate_compares_an_onnx_model_with_its_blob() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixtures().join(TINY_LLAMA);
    let float = convert(dir.path(), TINY_LLAMA, "float", &[]);
    let q8 = convert(dir.path(), TINY_LLAMA, "q8_0", &["--quant", "q8_0"]);
    let validate = |candidate: &Path, extra: &[&str]| {
        let json = dir.path().join("v.json");
        let mut args: Vec<&OsStr> = vec![
            "validate".as_ref(),
            model.as_os_str(),
            candidate.as_os_str(),
            "--random".as_ref(),
            "4".as_ref(),
            "--seed".as_ref(),
            "1".as_ref(),
            "--json".as_ref(),
            json.as_os_str(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        let o = smelt(args);
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        (o.status.code(), report)
    };
    let (code, r) = validate(&float, &["--max-abs", "0"]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["outputs"][0]["max_abs"].as_f64(), Some(0.0), "{r}");
    let (code, r) = validate(&q8, &["--min-cosine", "0.999", "--min-top1", "0.9"]);
    assert_eq!(code, Some(0), "{r}");
    let max_abs = r["outputs"][0]["max_abs"].as_f64().unwrap();
    assert!(max_abs > 0.0, "{r}");
    let (code, _) = validate(&q8, &["--max-abs", &format!("{}", max_abs / 2.0)]);
    assert_eq!(code, Some(1));
}

/// The same ONNX model and options give the same blob bytes, graph included.
#[test]
fn a_blob_with_a_graph_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let a = convert(dir.path(), TINY_LLAMA, "a", &["--quant", "int4", "--group-size", "32"]);
    let b =
        convert(dir.path(), TINY_LLAMA, "b", &["--quant", "int4", "--group-size", "32", "--threads", "1"]);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
}

/// A blob made from safetensors carries no graph: exit 2, naming the file and saying why.
#[test]
fn a_blob_without_a_graph_is_refused_naming_the_file() {
    let blob = fixtures().join("blob/tiny-raw.smelt");
    let o = smelt(["run".as_ref(), blob.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("tiny-raw.smelt") && err.contains("carries no graph"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn u64_at(b: &[u8], at: u64) -> u64 {
    u64::from_le_bytes(b[at as usize..at as usize + 8].try_into().unwrap())
}

/// Rewrites a blob's metadata in place through `edit` (it may only shrink), with valid CRCs,
/// so that only the graph inside it is wrong.
fn rewrite_metadata(path: &Path, edit: impl FnOnce(&mut BlobMetadata)) {
    let mut b = std::fs::read(path).unwrap();
    let (offset, size) = (u64_at(&b, hf::META_OFFSET) as usize, u64_at(&b, hf::META_SIZE) as usize);
    let mut meta = BlobMetadata::decode(&b[offset..offset + size]).unwrap();
    edit(&mut meta);
    let new = meta.encode_to_vec();
    assert!(new.len() <= size, "the edit must not grow the metadata");
    b[offset..offset + size].fill(0);
    b[offset..offset + new.len()].copy_from_slice(&new);
    let put = |b: &mut Vec<u8>, at: u64, v: &[u8]| b[at as usize..at as usize + v.len()].copy_from_slice(v);
    put(&mut b, hf::META_SIZE, &(new.len() as u64).to_le_bytes());
    put(&mut b, hf::META_CRC, &crc32fast::hash(&new).to_le_bytes());
    let header_crc = crc32fast::hash(&b[..hf::HEADER_CRC as usize]);
    put(&mut b, hf::HEADER_CRC, &header_crc.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

/// A graph that does not read, an initializer that names no blob tensor, dims that disagree,
/// and metadata bytes that fail their CRC: each is exit 2 with the file and the field named,
/// never a panic.
#[test]
fn corrupt_graph_metadata_is_refused_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = || convert(dir.path(), "onnx/torch-mlp.onnx", "mlp", &["--quant", "int8"]);
    let refused = |blob: &Path, wants: &[&str]| {
        let o = smelt(["run".as_ref(), blob.as_os_str()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("mlp.smelt") && !err.contains("panicked"), "{err}");
        for w in wants {
            assert!(err.contains(w), "wanted '{w}' in: {err}");
        }
        eprint!("{err}");
    };

    let blob = fresh();
    rewrite_metadata(&blob, |m| {
        let g = m.onnx_graph.as_mut().unwrap();
        g.model = g.model.slice(..g.model.len() / 2);
    });
    refused(&blob, &["onnx_graph.model"]);

    let blob = fresh();
    rewrite_metadata(&blob, |m| m.onnx_graph.as_mut().unwrap().model.clear());
    refused(&blob, &["onnx_graph.model", "graph"]);

    let blob = fresh();
    rewrite_metadata(&blob, |m| m.onnx_graph.as_mut().unwrap().initializers[2].tensor = "nope".into());
    refused(&blob, &["onnx_graph.initializers[2]", "no tensor 'nope'"]);

    let blob = fresh();
    rewrite_metadata(&blob, |m| m.onnx_graph.as_mut().unwrap().initializers[0].dims = vec![1]);
    refused(&blob, &["onnx_graph.initializers[0]", "dims [1]"]);

    let blob = fresh();
    rewrite_metadata(&blob, |m| {
        m.onnx_graph.as_mut().unwrap().initializers.pop();
    });
    refused(&blob, &["uses"]);

    // A flipped byte in the metadata, CRCs left alone.
    let blob = fresh();
    let mut b = std::fs::read(&blob).unwrap();
    let meta_end = (u64_at(&b, hf::META_OFFSET) + u64_at(&b, hf::META_SIZE)) as usize;
    b[meta_end - 10] ^= 0x55;
    std::fs::write(&blob, b).unwrap();
    refused(&blob, &["metadata", "CRC-32"]);
}
