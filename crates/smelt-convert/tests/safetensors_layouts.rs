//! The safetensors files `smelt convert` will write, through smelt's streaming writer into an
//! atomic output file: bitsandbytes' NF4 `Linear4bit` state dict (plain and double-quantized,
//! f32 and bf16 weights), GPTQ's `qweight`/`qzeros`/`scales`/`g_idx` with its
//! `quantize_config.json`, and checkpoints cast to F32/F16/BF16. Each file is compared with what
//! the reference tools made (fixtures/quant/, see its README; numpy's and ml_dtypes' casts): by
//! smelt's reader, and by the `safetensors` package through tools/interop/check_safetensors.py
//! (run with the pinned venv).

use std::path::{Path, PathBuf};
use std::process::Command;

use smelt_convert::atomic::AtomicFile;
use smelt_convert::encode::{encode, Encoded};
use smelt_convert::gptq_config::{GptqConfig, QUANTIZE_CONFIG_FILE};
use smelt_convert::scheme::Scheme;
use smelt_formats::safetensors::writer::safetensors_dtype_name;
use smelt_formats::safetensors::{self, HeaderBudget, SafetensorsWriter};
use smelt_formats::{npy, Model};
use smelt_quant::int4::{pack_gptq, quantize_int4_rtn, Int4Mode, QzerosFormat};
use smelt_quant::nf4::{quantize_nf4, Nf4Options};
use smelt_quant::NamedTensor;
use smelt_tensor::DType;

fn quant_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/quant")
}

/// A row-major f32 input from fixtures/quant/inputs.
fn input(name: &str) -> (Vec<usize>, Vec<f32>) {
    let a = npy::read(&quant_fixtures().join("inputs").join(format!("{name}.npy"))).unwrap();
    (a.shape.iter().map(|&d| d as usize).collect(), a.to_f32().unwrap())
}

/// The metadata transformers' `save_pretrained` writes, which its loader checks.
fn pt_metadata() -> Vec<(String, String)> {
    vec![("format".to_owned(), "pt".to_owned())]
}

/// Writes a layout through the streaming writer into an atomic file at `path`, with a header
/// budget from the tensor names alone (as a conversion knows them before quantizing).
fn write_layout(path: &Path, tensors: &[NamedTensor], metadata: &[(String, String)]) {
    let mut budget = HeaderBudget::for_tensor_names(tensors.iter().map(|t| t.name.as_str()));
    for (k, v) in metadata {
        budget.add_metadata(k, v);
    }
    let mut w = SafetensorsWriter::new(AtomicFile::create(path).unwrap(), &budget).unwrap();
    for t in tensors {
        let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
        w.add_tensor(&t.name, t.dtype, &shape, &t.bytes).unwrap();
    }
    w.finish(metadata).unwrap().commit().unwrap();
}

/// A tensor as the reference tool stored it.
struct Reference {
    name: String,
    dtype: DType,
    shape: Vec<u64>,
    bytes: Vec<u8>,
}

/// Asserts that smelt's file holds exactly the reference tensors (any order in the reference,
/// `order` in smelt's file), bytes included.
fn assert_same_tensors(what: &str, ours: &Model, references: &[Reference], order: &[String]) {
    let names: Vec<&str> = ours.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        order.iter().map(String::as_str).collect::<Vec<_>>(),
        "{what}: tensors in the order written"
    );
    assert_eq!(ours.tensors.len(), references.len(), "{what}: tensor count");
    for r in references {
        let t = ours.tensor(&r.name).unwrap_or_else(|| panic!("{what}: no tensor '{}'", r.name));
        assert_eq!(t.dtype, r.dtype, "{what}: {} dtype", r.name);
        assert_eq!(t.shape, r.shape, "{what}: {} shape", r.name);
        if let Some(i) = t.data.iter().zip(&r.bytes).position(|(a, b)| a != b) {
            panic!("{what}: {} differs from the reference at byte {i}", r.name);
        }
        assert_eq!(t.data.len(), r.bytes.len(), "{what}: {} length", r.name);
    }
}

/// The pinned venv's Python: `$SMELT_PYTHON` (set by tools/test-all.sh), else `.venv` at the
/// repository root. Missing both is a failure, never a skip.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SMELT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.is_file(),
        "no Python for the interop check: set SMELT_PYTHON or run tools/python/setup-venv.sh \
         (creates .venv at the repository root with the pinned safetensors, numpy, ml_dtypes and blake3)"
    );
    venv
}

/// Runs check_safetensors.py on `path`, expecting the reference tensors in `order` and
/// `metadata`.
fn check_with_python_safetensors(
    path: &Path,
    references: &[Reference],
    order: &[String],
    metadata: &[(String, String)],
) {
    let tensors: Vec<serde_json::Value> = order
        .iter()
        .map(|name| {
            let r = references.iter().find(|r| &r.name == name).unwrap();
            serde_json::json!({
                "name": r.name,
                "dtype": safetensors_dtype_name(r.dtype).unwrap(),
                "shape": r.shape,
                "blake3": blake3::hash(&r.bytes).to_hex().as_str(),
            })
        })
        .collect();
    let metadata: serde_json::Map<String, serde_json::Value> =
        metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    let expectation = serde_json::json!({"tensors": tensors, "metadata": metadata, "header_order": true});
    run_check_safetensors(path, &expectation);
}

/// Runs tools/interop/check_safetensors.py on `path` with `expectation`.
fn run_check_safetensors(path: &Path, expectation: &serde_json::Value) {
    let expect_path = path.with_extension("expect.json");
    std::fs::write(&expect_path, serde_json::to_vec_pretty(expectation).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/interop/check_safetensors.py");
    let out = Command::new(python()).arg(&script).arg(path).arg(&expect_path).output().unwrap();
    assert!(
        out.status.success(),
        "check_safetensors.py failed for {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn casts_are_written_as_numpy_rounds_them() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/safetensors");
    for (checkpoint, target) in [
        ("tiny-llama-f32", DType::BF16),
        ("tiny-llama-f32", DType::F16),
        ("tiny-llama-bf16", DType::F16),
        ("tiny-llama-bf16", DType::F32),
    ] {
        let source = checkpoints.join(checkpoint).join("model.safetensors");
        let model = safetensors::read_file(&source).unwrap();
        let layout: Vec<NamedTensor> = model
            .tensors
            .iter()
            .map(|t| match encode(t, Scheme::Cast(target), false).unwrap().encoded {
                Encoded::Plain { dtype, data } => NamedTensor {
                    name: t.name.clone(),
                    dtype,
                    shape: t.shape.iter().map(|&d| d as usize).collect(),
                    bytes: data.to_vec(),
                },
                other => panic!("{}: cast gave {other:?}", t.name),
            })
            .collect();
        let path = dir.path().join(format!("{checkpoint}-{target}.safetensors"));
        write_layout(&path, &layout, &pt_metadata());

        let ours = safetensors::read_file(&path).unwrap();
        assert_eq!(ours.tensors.len(), layout.len());
        for (t, want) in ours.tensors.iter().zip(&layout) {
            assert_eq!((&t.name, t.dtype, &t.data[..]), (&want.name, target, &want.bytes[..]));
        }
        let tensors: Vec<serde_json::Value> = model
            .tensors
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "dtype": safetensors_dtype_name(target).unwrap(),
                    "shape": t.shape,
                    "cast_from": {"file": source, "name": t.name},
                })
            })
            .collect();
        let expectation =
            serde_json::json!({"tensors": tensors, "metadata": {"format": "pt"}, "header_order": true});
        run_check_safetensors(&path, &expectation);
    }
}

/// The `Linear4bit(100, 3)` state dicts bitsandbytes saved for `w_3x100`:
/// (file, double quantization, the weight's dtype when quantized).
const BNB_SAVED: &[(&str, bool, DType)] = &[
    ("linear4bit_nf4", false, DType::F32),
    ("linear4bit_nf4_dq", true, DType::F32),
    ("linear4bit_nf4_dq_bf16", true, DType::BF16),
];

#[test]
fn nf4_state_dict_is_written_as_bitsandbytes_saved_it() {
    let dir = tempfile::tempdir().unwrap();
    let (shape, values) = input("w_3x100");
    for &(file, double_quant, source_dtype) in BNB_SAVED {
        let reference_path = quant_fixtures().join("bnb").join(format!("{file}.safetensors"));
        assert!(
            reference_path.is_file(),
            "{} missing (tools/fixtures/gen_quant_refs.py)",
            reference_path.display()
        );
        let saved = safetensors::read_file(&reference_path).unwrap();
        let references: Vec<Reference> = saved
            .tensors
            .iter()
            .map(|t| Reference {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                bytes: t.data.to_vec(),
            })
            .collect();

        // bitsandbytes quantized the weight in its own dtype: a bf16 weight is the f32 input
        // rounded to bf16.
        let source: Vec<f32> = match source_dtype {
            DType::BF16 => values.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
            _ => values.clone(),
        };
        let t = quantize_nf4(&source, &shape, Nf4Options { double_quant, ..Default::default() }).unwrap();
        let layout = t.bnb_state_dict("weight", source_dtype).unwrap();
        let order: Vec<String> = layout.iter().map(|t| t.name.clone()).collect();

        let path = dir.path().join(format!("{file}.safetensors"));
        write_layout(&path, &layout, &pt_metadata());
        let ours = safetensors::read_file(&path).unwrap();
        assert_same_tensors(file, &ours, &references, &order);
        check_with_python_safetensors(&path, &references, &order, &pt_metadata());
    }
}

/// GPTQ layers packed by the reference scripts (AutoGPTQ's `QuantLinear.pack`, GPTQModel's
/// v2 → v1 zeros): (case, input, group size, mode).
const GPTQ_PACKED: &[(&str, &str, usize, Int4Mode)] = &[
    ("w_32x256.g32.sym", "w_32x256", 32, Int4Mode::Symmetric),
    ("w_32x256.g64.asym", "w_32x256", 64, Int4Mode::Asymmetric),
    ("w_32x256.g128.sym", "w_32x256", 128, Int4Mode::Symmetric),
    ("w_32x256.g128.asym", "w_32x256", 128, Int4Mode::Asymmetric),
    ("w_32x224.g128.asym", "w_32x224", 128, Int4Mode::Asymmetric),
    ("w_32x224.g64.sym", "w_32x224", 64, Int4Mode::Symmetric),
];

/// The four reference tensors of a GPTQ case under `prefix`, with `qzeros` in `format`.
fn gptq_references(case: &str, prefix: &str, format: QzerosFormat) -> Vec<Reference> {
    let qzeros = match format {
        QzerosFormat::V1 => "qzeros_v1",
        QzerosFormat::V2 => "qzeros_v2",
    };
    [("qweight", "qweight"), ("qzeros", qzeros), ("scales", "scales_f16"), ("g_idx", "g_idx")]
        .iter()
        .map(|(key, file)| {
            let a = npy::read(&quant_fixtures().join("int4").join(format!("{case}.{file}.npy"))).unwrap();
            Reference {
                name: format!("{prefix}.{key}"),
                dtype: a.dtype,
                shape: a.shape,
                bytes: a.data.to_vec(),
            }
        })
        .collect()
}

#[test]
fn gptq_layer_is_written_as_autogptq_packs_it_with_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = "model.layers.0.mlp.down_proj";
    let mut files = 0;
    for &(case, input_name, group_size, mode) in GPTQ_PACKED {
        let (shape, values) = input(input_name);
        let t = quantize_int4_rtn(&values, shape[0], shape[1], group_size, mode).unwrap();
        // v1 is what every loader reads; v2 (GPTQModel only) matters where a zero can be 0.
        let formats: &[QzerosFormat] = match mode {
            Int4Mode::Symmetric => &[QzerosFormat::V1],
            Int4Mode::Asymmetric => &[QzerosFormat::V1, QzerosFormat::V2],
        };
        for &format in formats {
            let what = format!("{case} {format:?}");
            let layout = pack_gptq(&t, format).unwrap().tensors(prefix);
            let order: Vec<String> = layout.iter().map(|t| t.name.clone()).collect();
            let references = gptq_references(case, prefix, format);
            assert_eq!(
                references.iter().map(|r| (r.dtype, r.shape.len())).collect::<Vec<_>>(),
                vec![(DType::I32, 2), (DType::I32, 2), (DType::F16, 2), (DType::I32, 1)],
                "{what}: reference dtypes"
            );

            let checkpoint = dir.path().join(format!("{case}-{format:?}"));
            std::fs::create_dir(&checkpoint).unwrap();
            let path = checkpoint.join("model.safetensors");
            write_layout(&path, &layout, &pt_metadata());
            let config = GptqConfig::int4_rtn(group_size, mode, format);
            std::fs::write(checkpoint.join(QUANTIZE_CONFIG_FILE), config.to_json_string()).unwrap();

            let ours = safetensors::read_file(&path).unwrap();
            assert_same_tensors(&what, &ours, &references, &order);
            check_with_python_safetensors(&path, &references, &order, &pt_metadata());

            let written: serde_json::Value =
                serde_json::from_slice(&std::fs::read(checkpoint.join(QUANTIZE_CONFIG_FILE)).unwrap())
                    .unwrap();
            assert_eq!(written["bits"], 4, "{what}");
            assert_eq!(written["group_size"], group_size, "{what}");
            assert_eq!(written["sym"], mode == Int4Mode::Symmetric, "{what}");
            assert_eq!(written["desc_act"], false, "{what}: g_idx is i / group_size");
            assert_eq!(written["quant_method"], "gptq", "{what}");
            let format_name = if format == QzerosFormat::V1 { "gptq" } else { "gptq_v2" };
            assert_eq!(written["checkpoint_format"], format_name, "{what}");
            files += 1;
        }
    }
    assert_eq!(files, 9);
}
