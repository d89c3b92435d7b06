//! `smelt convert NEW --like OLD` end to end: the same model gives OLD's bytes; a model with one
//! tensor changed differs from OLD only in that tensor; the report counts reused blocks; the
//! bytes do not depend on the thread count; a bad or mismatched OLD is refused (exit 2, no
//! output).

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use support::{fixtures, smelt, stderr};

fn convert(input: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&OsStr> =
        vec![OsStr::new("convert"), input.as_os_str(), OsStr::new("-o"), output.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    smelt(args)
}

fn ok(o: &std::process::Output) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
}

/// A copy of the tiny Llama checkpoint where `tensor`'s first `count` f32 weights are moved by
/// `delta` (each alternately up and down).
fn edited_checkpoint(dir: &Path, tensor: &str, count: usize, delta: f32) -> PathBuf {
    let src = fixtures().join("hf/tiny-llama-f32");
    let dst = dir.join("edited");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(header[tensor]["dtype"], "F32");
    let start = 8 + header_len + header[tensor]["data_offsets"][0].as_u64().unwrap() as usize;
    for i in 0..count {
        let at = start + 4 * i;
        let v = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let v = v + if i % 2 == 0 { delta } else { -delta };
        bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(dst.join("model.safetensors"), bytes).unwrap();
    dst
}

/// Each tensor's stored bytes (all sections), by name, from smelt's own readers.
fn tensor_bytes(path: &Path) -> Vec<(String, Vec<u8>)> {
    if path.extension().is_some_and(|e| e == "gguf") {
        let m = smelt_formats::open(path).unwrap();
        return m.tensors.iter().map(|t| (t.name.clone(), t.data.to_vec())).collect();
    }
    let b = smelt_formats::blob::read(path).unwrap();
    b.entries()
        .iter()
        .map(|e| {
            let mut v = e.data.bytes.to_vec();
            for s in [&e.scales, &e.zeros, &e.aux].into_iter().flatten() {
                v.extend_from_slice(&s.bytes);
            }
            (e.name.clone(), v)
        })
        .collect()
}

const LIKE_SCHEMES: &[(&str, &[&str])] = &[
    ("gguf", &["--quant", "q8_0"]),
    ("gguf", &["--quant", "q4_1"]),
    ("gguf", &["--quant", "tq2_0"]),
    ("smelt", &["--quant", "q5_0"]),
    ("smelt", &["--quant", "int8"]),
    ("smelt", &["--quant", "int8", "--asym", "--per-tensor"]),
    ("smelt", &["--quant", "int4", "--group-size", "32", "--asym"]),
    ("smelt", &["--quant", "nf4"]),
    ("smelt", &["--quant", "ternary", "--base3"]),
];

#[test]
fn the_same_model_gives_old_byte_for_byte_and_reuses_every_block() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("hf/tiny-llama-f32");
    for (ext, scheme) in LIKE_SCHEMES {
        let old = dir.path().join(format!("old.{ext}"));
        let new = dir.path().join(format!("new.{ext}"));
        let report = dir.path().join("r.json");
        ok(&convert(&input, &old, scheme));
        let mut args = scheme.to_vec();
        args.extend(["--like", old.to_str().unwrap(), "--report", report.to_str().unwrap()]);
        let o = convert(&input, &new, &args);
        ok(&o);
        assert!(
            std::fs::read(&old).unwrap() == std::fs::read(&new).unwrap(),
            "{scheme:?}: bytes differ from OLD"
        );
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let like = &r["like"];
        assert!(like["blocks"].as_u64().unwrap() > 0, "{scheme:?}: {like}");
        assert_eq!(like["reused"], like["blocks"], "{scheme:?}: {like}");
        assert_eq!(like["matched"], like["tensors"], "{scheme:?}: {like}");
        assert!(stderr(&o).contains("--like"), "{}", stderr(&o));
    }
}

#[test]
fn one_changed_tensor_is_the_only_one_that_differs_and_the_bytes_do_not_depend_on_threads() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("hf/tiny-llama-f32");
    let changed = "model.layers.1.mlp.down_proj.weight";
    let edited = edited_checkpoint(dir.path(), changed, 40, 2e-4);
    for (ext, scheme) in LIKE_SCHEMES {
        let old = dir.path().join(format!("old.{ext}"));
        ok(&convert(&input, &old, scheme));
        let mut outputs = Vec::new();
        for threads in ["1", "2", "3"] {
            let new = dir.path().join(format!("new-{threads}.{ext}"));
            let report = dir.path().join("r.json");
            let mut args = scheme.to_vec();
            args.extend([
                "--like",
                old.to_str().unwrap(),
                "--threads",
                threads,
                "--report",
                report.to_str().unwrap(),
            ]);
            ok(&convert(&edited, &new, &args));
            outputs.push(std::fs::read(&new).unwrap());
            let r: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
            let line =
                r["tensors"].as_array().unwrap().iter().find(|t| t["name"] == changed).unwrap().clone();
            let like = &line["like"];
            assert_eq!(like["matched"], true, "{scheme:?}: {line}");
            let moved_blocks = like["requantized"].as_u64().unwrap() + like["fresh"].as_u64().unwrap();
            let per_tensor = scheme.contains(&"ternary") || scheme.contains(&"--per-tensor");
            // One block for per-tensor schemes: kept whole or under the old scale.
            let kept = like["reused"].as_u64().unwrap()
                + if per_tensor { like["requantized"].as_u64().unwrap() } else { 0 };
            assert!(kept > 0, "{scheme:?}: {line}");
            assert!(
                per_tensor || moved_blocks > 0 || line["max_abs"] == like["fresh_max_abs"],
                "{scheme:?}: {line}"
            );
            // Reuse never costs more than the bound: the largest error written is at most that
            // of a fresh quantization (tolerance 1) wherever fresh meets its own guarantee,
            // which for these schemes is everywhere but ternary's clipped weights.
            if !per_tensor {
                let (got, fresh) =
                    (line["max_abs"].as_f64().unwrap(), like["fresh_max_abs"].as_f64().unwrap());
                assert!(
                    got <= fresh * 1.0001 + 1e-9 || got <= max_half_step(scheme),
                    "{scheme:?}: {got} vs {fresh}"
                );
            }
        }
        assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{scheme:?}: bytes depend on the thread count");
        let new = dir.path().join(format!("new-1.{ext}"));
        let (a, b) = (tensor_bytes(&old), tensor_bytes(&new));
        assert_eq!(a.len(), b.len());
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            let is_changed = name == changed || name == "blk.1.ffn_down.weight";
            assert!(
                is_changed || x == y,
                "{scheme:?}: tensor {name} differs though its weights did not change"
            );
        }
    }
}

/// Half the largest quantization step of the tiny fixture's weights under `scheme`: a loose
/// bound for blocks whose fresh error is below the guarantee.
fn max_half_step(scheme: &[&str]) -> f64 {
    let levels = match scheme[1] {
        "q8_0" | "int8" => 127.0,
        "q5_0" => 15.0,
        _ => 7.0,
    };
    // The fixture's weights are below 0.2 in magnitude.
    0.2 / levels / 2.0 * 1.01
}

#[test]
fn a_bad_or_mismatched_old_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("hf/tiny-llama-f32");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("new.gguf");
    let old_q8 = dir.path().join("old.gguf");
    ok(&convert(&input, &old_q8, &["--quant", "q8_0"]));
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(&old_q8).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a model").unwrap();
    let st = fixtures().join("hf/tiny-llama-f32/model.safetensors");
    let missing = dir.path().join("missing.gguf");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--quant", "q4_0", "--like", old_q8.to_str().unwrap()], "none of the"),
        (vec!["--quant", "q8_0", "--like", truncated.to_str().unwrap()], "truncated.gguf"),
        (vec!["--quant", "q8_0", "--like", text.to_str().unwrap()], "notes.txt"),
        (vec!["--quant", "q8_0", "--like", st.to_str().unwrap()], "smelt blob"),
        (vec!["--quant", "q8_0", "--like", missing.to_str().unwrap()], "missing.gguf"),
        (
            vec!["--quant", "q8_0", "--like", old_q8.to_str().unwrap(), "--like-tolerance=-1"],
            "--like-tolerance",
        ),
    ];
    for (args, says) in cases {
        let o = convert(&input, &out, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0, "{args:?}: output left behind");
    }
    // An output format --like does not write.
    let o = convert(
        &input,
        &out_dir.path().join("m.safetensors"),
        &["--quant", "nf4", "--like", old_q8.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("blobs and GGUF"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);
}

#[test]
fn tensors_old_holds_with_another_scheme_are_quantized_fresh_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("hf/tiny-llama-f32");
    let old = dir.path().join("old.smelt");
    let recipe = dir.path().join("r.toml");
    // OLD: q8_0 everywhere but the MLP, which is q4_0.
    std::fs::write(&recipe, "quant = \"q8_0\"\n[[rules]]\nmatch = \"*.mlp.*\"\nscheme = \"q4_0\"\n").unwrap();
    ok(&convert(&input, &old, &["--recipe", recipe.to_str().unwrap()]));
    let new = dir.path().join("new.smelt");
    let report = dir.path().join("r.json");
    ok(&convert(
        &input,
        &new,
        &["--quant", "q8_0", "--like", old.to_str().unwrap(), "--report", report.to_str().unwrap()],
    ));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let mlp = r["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "model.layers.0.mlp.up_proj.weight")
        .unwrap();
    assert_eq!(mlp["like"]["matched"], false, "{mlp}");
    assert!(mlp["like"]["why_fresh"].as_str().unwrap().contains("q4_0"), "{mlp}");
    assert!(r["like"]["matched"].as_u64().unwrap() < r["like"]["tensors"].as_u64().unwrap());
    assert!(r["like"]["matched"].as_u64().unwrap() > 0);
}
