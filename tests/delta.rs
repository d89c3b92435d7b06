//! `smelt diff` / `smelt patch` / `smelt inspect UPDATE` end to end, over the committed
//! fixtures and NEW versions made here (tensor bytes nudged in place at the offsets `smelt
//! inspect --json` gives, or re-made by `smelt convert`): the patched file must equal NEW byte
//! for byte, and a wrong base or a damaged update must exit 2 leaving nothing behind.

mod support;

use std::path::{Path, PathBuf};

use support::{fixtures, smelt, stderr, stdout};

fn ok(o: &std::process::Output, what: &str) {
    assert!(o.status.success(), "{what}: exit {:?}\n{}", o.status.code(), stderr(o));
}

/// Changes the low byte of every 4th byte of the first `count` tensors with at least 64 bytes,
/// at the offsets `smelt inspect --json` reports.
fn nudge_tensors(src: &Path, dst: &Path, count: usize) {
    let o = smelt([OsArg::from("inspect"), src.into(), "--json".into()]);
    ok(&o, "inspect");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut bytes = std::fs::read(src).unwrap();
    let mut done = 0;
    for t in v["tensors"].as_array().unwrap() {
        let (off, len, file) =
            (t["offset"].as_u64().unwrap(), t["bytes"].as_u64().unwrap(), t["file"].as_u64().unwrap());
        if file != 0 || len < 64 || done == count {
            continue;
        }
        for i in (off..off + len).step_by(4) {
            bytes[i as usize] ^= ((i / 4) % 3) as u8;
        }
        done += 1;
    }
    assert_eq!(done, count, "{} has too few tensors", src.display());
    std::fs::write(dst, bytes).unwrap();
}

type OsArg = std::ffi::OsString;

fn args(v: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsArg> {
    v.iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// diff, patch, compare; returns the update's path.
fn round_trip(dir: &Path, old: &Path, new: &Path, tag: &str, extra: &[&str]) -> PathBuf {
    let update = dir.join(format!("{tag}.smeltdelta"));
    let out = dir.join(format!("{tag}.patched"));
    let mut a = args(&[&"diff", &old, &new, &"-o", &update]);
    a.extend(extra.iter().map(OsArg::from));
    ok(&smelt(a), &format!("diff {tag}"));
    ok(&smelt(args(&[&"patch", &old, &update, &"-o", &out])), &format!("patch {tag}"));
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(new).unwrap(),
        "{tag}: patched file differs from NEW"
    );
    update
}

#[test]
fn every_format_round_trips_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let fx = fixtures();
    for (tag, rel, ext) in [
        ("safetensors", "hf/tiny-llama-bf16/model.safetensors", "safetensors"),
        ("gguf", "gguf/tiny-llama.gguf", "gguf"),
        ("onnx", "onnx/torch-tiny-llama.onnx", "onnx"),
    ] {
        let old = fx.join(rel);
        let new = d.join(format!("{tag}-new.{ext}"));
        nudge_tensors(&old, &new, 3);
        let update = round_trip(d, &old, &new, tag, &[]);
        round_trip(d, &old, &new, &format!("{tag}-lz4"), &["--codec", "lz4"]);
        let up = std::fs::metadata(&update).unwrap().len();
        let full = std::fs::metadata(&new).unwrap().len();
        assert!(up * 4 < full, "{tag}: update {up} bytes for a {full}-byte file with 3 tensors nudged");
    }
    // Blob: the int8 quantization of a fine-tune against that of the original.
    let st_dir = d.join("ft");
    std::fs::create_dir(&st_dir).unwrap();
    let base = fx.join("hf/tiny-llama-f32");
    std::fs::copy(base.join("config.json"), st_dir.join("config.json")).unwrap();
    nudge_tensors(&base.join("model.safetensors"), &st_dir.join("model.safetensors"), 4);
    let (old_blob, new_blob) = (d.join("old.smelt"), d.join("new.smelt"));
    ok(&smelt(args(&[&"convert", &base, &"-o", &old_blob, &"--quant", &"int8"])), "convert old");
    ok(&smelt(args(&[&"convert", &st_dir, &"-o", &new_blob, &"--quant", &"int8"])), "convert new");
    round_trip(d, &old_blob, &new_blob, "blob", &[]);
    // GGUF requantized: the same model as F16 and Q8_0, and a fine-tune's Q8_0.
    let (q_old, q_new) = (d.join("old-q8.gguf"), d.join("new-q8.gguf"));
    ok(&smelt(args(&[&"convert", &base, &"-o", &q_old, &"--quant", &"q8_0"])), "convert old q8");
    ok(&smelt(args(&[&"convert", &st_dir, &"-o", &q_new, &"--quant", &"q8_0"])), "convert new q8");
    round_trip(d, &q_old, &q_new, "gguf-q8", &[]);
    // Different formats and a file no reader accepts.
    round_trip(d, &fx.join("gguf/tiny-llama.gguf"), &q_new, "gguf-f32-to-q8", &[]);
    let junk = d.join("notes.bin");
    std::fs::write(&junk, b"not a model, just some bytes that change: version 2".repeat(100)).unwrap();
    round_trip(d, &fx.join("gguf/tiny-llama.gguf"), &junk, "junk", &[]);
}

#[test]
fn inspect_shows_each_entry_and_json_report() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let old = fixtures().join("gguf/tiny-llama.gguf");
    let new = d.join("new.gguf");
    nudge_tensors(&old, &new, 2);
    let update = d.join("u.smeltdelta");
    let report = d.join("r.json");
    ok(&smelt(args(&[&"diff", &old, &new, &"-o", &update, &"--json", &report, &"--level", &"5"])), "diff");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["schema"], "smelt.diff/1");
    assert_eq!(r["new_format"], "gguf");
    let entries = r["entries"].as_array().unwrap();
    let coded: Vec<_> = entries.iter().filter(|e| e["kind"] == "tensor" && e["method"] != "copy").collect();
    assert_eq!(coded.len(), 2, "two nudged tensors are coded, the rest copied");
    assert_eq!(r["update_bytes"].as_u64().unwrap(), std::fs::metadata(&update).unwrap().len());

    let o = smelt(args(&[&"inspect", &update]));
    ok(&o, "inspect");
    let text = stdout(&o);
    assert!(text.contains("smelt update v1 (zstd)"), "{text}");
    for e in entries {
        assert!(text.contains(e["name"].as_str().unwrap()), "inspect lacks {}", e["name"]);
    }
    let o = smelt(args(&[&"inspect", &update, &"--json"]));
    ok(&o, "inspect --json");
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["schema"], "smelt.inspect-update/1");
    let je = j["entries"].as_array().unwrap();
    assert_eq!(je.len(), entries.len());
    for (a, b) in je.iter().zip(entries) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["method"], b["method"]);
        assert_eq!(a["bytes_before"], b["bytes_before"]);
        assert_eq!(a["bytes_after"], b["bytes_after"]);
    }
    assert_eq!(j["result_bytes"].as_u64().unwrap(), std::fs::metadata(&new).unwrap().len());
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("smelt-tmp"))
        .collect()
}

#[test]
fn wrong_base_and_damaged_updates_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let old = fixtures().join("safetensors/tiny-llama-f32/model.safetensors");
    let new = d.join("new.safetensors");
    nudge_tensors(&old, &new, 2);
    let update = d.join("u.smeltdelta");
    ok(&smelt(args(&[&"diff", &old, &new, &"-o", &update])), "diff");
    let out = d.join("out.safetensors");

    // Wrong base: another file, and the right file with one byte changed.
    let mut wrong = std::fs::read(&old).unwrap();
    let last = wrong.len() - 1;
    wrong[last] ^= 1;
    let wrong_path = d.join("wrong.safetensors");
    std::fs::write(&wrong_path, &wrong).unwrap();
    for base in [&wrong_path, &new] {
        let o = smelt(args(&[&"patch", base, &update, &"-o", &out]));
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("wrong base"), "{}", stderr(&o));
        assert!(!out.exists(), "output written for a wrong base");
    }
    // An existing output stays as it was.
    std::fs::write(&out, b"previous version").unwrap();
    let bytes = std::fs::read(&update).unwrap();
    let damaged = d.join("damaged.smeltdelta");
    let cuts = [0, 7, 64, 127, 128, 200, bytes.len() / 2, bytes.len() - 33, bytes.len() - 1];
    for cut in cuts {
        std::fs::write(&damaged, &bytes[..cut]).unwrap();
        let o = smelt(args(&[&"patch", &old, &damaged, &"-o", &out]));
        assert_eq!(o.status.code(), Some(2), "truncated to {cut}: {}", stderr(&o));
    }
    for at in [0, 9, 20, 60, 100, 130, bytes.len() / 2, bytes.len() - 40, bytes.len() - 1] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        std::fs::write(&damaged, &b).unwrap();
        let o = smelt(args(&[&"patch", &old, &damaged, &"-o", &out]));
        assert_eq!(o.status.code(), Some(2), "bit flip at {at}: {}", stderr(&o));
        assert!(stderr(&o).contains("offset"), "the message names an offset: {}", stderr(&o));
    }
    assert_eq!(std::fs::read(&out).unwrap(), b"previous version");
    assert!(leftovers(d).is_empty(), "temporary files left: {:?}", leftovers(d));
    // And the intact update still works over the existing file.
    ok(&smelt(args(&[&"patch", &old, &update, &"-o", &out])), "patch");
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&new).unwrap());
}

#[test]
fn bad_arguments_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let old = fixtures().join("gguf/tiny-llama.gguf");
    let o = smelt(args(&[&"diff", &old, &old, &"-o", &d.join("u"), &"--level", &"40"]));
    assert_eq!(o.status.code(), Some(2));
    let o = smelt(args(&[&"diff", &old, &d.join("missing.gguf"), &"-o", &d.join("u")]));
    assert_eq!(o.status.code(), Some(2));
    assert!(!d.join("u").exists());
    let o = smelt(args(&[&"patch", &old, &old, &"-o", &d.join("out")]));
    assert_eq!(o.status.code(), Some(2), "a model is not an update");
    assert!(stderr(&o).contains("not a smelt update"), "{}", stderr(&o));
    assert!(!d.join("out").exists());
}
