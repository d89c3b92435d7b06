//! `smelt inspect` end to end: exit codes, text and JSON output, refusals.

mod support;

use support::{smelt, stderr, stdout};

#[test]
fn missing_path_exits_2_naming_the_path() {
    let o = smelt(["inspect", "/definitely/not/here.safetensors"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/definitely/not/here.safetensors"));
    assert!(stdout(&o).is_empty());
}

#[test]
fn pickle_checkpoints_are_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pytorch_model.bin", "model.pt", "model.pth", "model.ckpt"] {
        let p = dir.path().join(name);
        std::fs::write(&p, b"\x80\x02}q\x00.").unwrap();
        let o = smelt([std::ffi::OsStr::new("inspect"), p.as_os_str()]);
        assert_eq!(o.status.code(), Some(2), "{name}");
        let err = stderr(&o);
        assert!(err.contains("pickle") && err.contains("safetensors"), "{name}: {err}");
    }
}

#[test]
fn pickle_content_is_refused_whatever_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("weights.data");
    // torch.save's zip container.
    std::fs::write(&p, b"PK\x03\x04archive/data.pkl").unwrap();
    let o = smelt([std::ffi::OsStr::new("inspect"), p.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("pickle"));
}

#[test]
fn directory_of_only_pickles_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), b"\x80\x02.").unwrap();
    std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
    let o = smelt([std::ffi::OsStr::new("inspect"), dir.path().as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("pickle"));
}

#[test]
fn unknown_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, b"hello world").unwrap();
    let o = smelt([std::ffi::OsStr::new("inspect"), p.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unrecognised format"));
}

#[test]
fn usage_error_exits_2() {
    let o = smelt(["inspect"]);
    assert_eq!(o.status.code(), Some(2));
}

fn json_of(o: &std::process::Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap()
}

fn reference_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{}.reference.json", path.display())).unwrap())
        .unwrap()
}

/// A blob smelt converts from the small ONNX MLP (int8): every initializer of the model (as
/// the ONNX fixture's reference lists them) is a tensor, the 2-D weights int8 with a scale per
/// channel, the biases raw; the carried graph is the model's own graph.
#[test]
fn blob_converted_from_onnx_lists_its_tensors_and_graph() {
    let dir = tempfile::tempdir().unwrap();
    let model = support::fixtures().join("onnx/mlp.onnx");
    let out = dir.path().join("mlp.smelt");
    let o = smelt([
        "convert".as_ref(),
        model.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--quant".as_ref(),
        std::ffi::OsStr::new("int8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&smelt([std::ffi::OsStr::new("inspect"), out.as_os_str(), "--json".as_ref()]));
    assert_eq!(j["schema"], "smelt.inspect/1");
    assert_eq!(j["format"], "smelt-blob");
    assert_eq!(j["version"], "smelt blob 1.0");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support::fixtures().join("onnx/mlp.reference.json")).unwrap(),
    )
    .unwrap();
    let mut want: Vec<(String, Vec<u64>)> = reference["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (t["name"].as_str().unwrap().to_string(), serde_json::from_value(t["shape"].clone()).unwrap())
        })
        .collect();
    let tensors = j["tensors"].as_array().unwrap();
    let mut got: Vec<(String, Vec<u64>)> = tensors
        .iter()
        .map(|t| {
            (t["name"].as_str().unwrap().to_string(), serde_json::from_value(t["shape"].clone()).unwrap())
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(j["tensor_count"], 4);
    assert_eq!(j["blob"]["tensor_count"], 4);
    for t in tensors {
        assert_eq!(t["checksum"], "ok");
        assert_eq!(t["crc32"].as_str().unwrap().len(), 8);
        let numel: u64 = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).product();
        assert_eq!(t["parameters"], numel);
        if t["name"].as_str().unwrap().ends_with("weight") {
            assert_eq!((t["scheme"].as_str(), t["dtype"].as_str()), (Some("int8"), Some("I8")), "{t}");
            // I8 codes plus one f32 scale per channel of the quantized axis.
            let axis = t["axis"].as_u64().unwrap() as usize;
            let channels = t["shape"][axis].as_u64().unwrap();
            assert_eq!(t["raw_bytes"], numel + 4 * channels, "{t}");
            assert!(t["flags"].as_array().unwrap().iter().any(|f| f == "per_axis"), "{t}");
        } else {
            assert_eq!((t["scheme"].as_str(), t["dtype"].as_str()), (Some("raw"), Some("F32")), "{t}");
            assert_eq!(t["raw_bytes"], 4 * numel);
            assert_eq!(t["stored_bytes"], 4 * numel);
        }
        assert_eq!(t["offset"].as_u64().unwrap() % j["blob"]["alignment"].as_u64().unwrap(), 0);
    }
    let b = &j["blob"];
    assert_eq!(b["source_format"], "onnx");
    assert_eq!(b["producer"], "smelt");
    assert_eq!(b["checksums"], "ok");
    assert_eq!(b["file_size"], std::fs::metadata(&out).unwrap().len());
    let g = &b["onnx_graph"];
    assert_eq!(g["blob_initializers"].as_u64().unwrap() + g["inline_initializers"].as_u64().unwrap(), 4);
    // The carried graph is the model's graph: same summary as inspecting the model itself.
    let m = json_of(&smelt([std::ffi::OsStr::new("inspect"), model.as_os_str(), "--json".as_ref()]));
    assert_eq!(j["graph"], m["graph"]);
    assert_eq!(g["nodes"], m["graph"]["nodes"]);

    let o = smelt([std::ffi::OsStr::new("inspect"), out.as_os_str(), "--tensors".as_ref()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("smelt blob 1.0"), "{text}");
    assert!(text.contains("source        onnx"), "{text}");
    assert!(text.contains(&format!("{} nodes, ", g["nodes"])), "{text}");
    for (name, _) in &want {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("{name}: {text}"));
        let scheme = if name.ends_with("weight") { "int8" } else { "raw" };
        assert!(line.contains(scheme), "{line}");
    }
}

/// Blobs written by tools/fixtures/gen_blob.py (an implementation of the spec independent of
/// smelt's writer): every field shown agrees with what the generator recorded.
#[test]
fn generator_blobs_match_their_reference() {
    for file in ["quant-schemes.smelt", "tiny-raw.smelt", "compressed.smelt", "empty.smelt"] {
        let path = support::fixtures().join("blob").join(file);
        let r = reference_json(&path);
        let j = json_of(&smelt([std::ffi::OsStr::new("inspect"), path.as_os_str(), "--json".as_ref()]));
        let h = &r["header"];
        let b = &j["blob"];
        assert_eq!(b["tensor_count"], h["tensor_count"], "{file}");
        assert_eq!(b["file_size"], h["file_size"], "{file}");
        assert_eq!(b["header_flags"], h["flags"], "{file}");
        assert_eq!(b["metadata_size"], h["meta_size"], "{file}");
        assert_eq!(b["data_offset"], h["data_offset"], "{file}");
        assert_eq!(
            (&b["version_major"], &b["version_minor"]),
            (&r["version"][0], &r["version"][1]),
            "{file}"
        );
        let tensors = j["tensors"].as_array().unwrap();
        let want = r["tensors"].as_array().unwrap();
        assert_eq!(tensors.len(), want.len(), "{file}");
        for (t, w) in tensors.iter().zip(want) {
            let name = w["name"].as_str().unwrap();
            assert_eq!(t["name"], w["name"], "{file}");
            assert_eq!(t["scheme"], w["scheme"], "{file}/{name}");
            assert_eq!(t["dtype"], w["dtype"], "{file}/{name}");
            assert_eq!(t["shape"], w["dims"], "{file}/{name}");
            assert_eq!(t["block_size"], w["block_size"], "{file}/{name}");
            assert_eq!(t["axis"], w["axis"], "{file}/{name}");
            assert_eq!(t["codec"], w["codec"], "{file}/{name}");
            assert_eq!(t["crc32"], format!("{:08x}", w["crc"].as_u64().unwrap()), "{file}/{name}");
            let sections = w["sections"].as_object().unwrap();
            let stored: u64 = sections.values().map(|s| s["len"].as_u64().unwrap()).sum();
            let others: u64 =
                sections.iter().filter(|(k, _)| *k != "data").map(|(_, s)| s["len"].as_u64().unwrap()).sum();
            assert_eq!(t["stored_bytes"], stored, "{file}/{name}");
            assert_eq!(t["raw_bytes"], w["data_raw_len"].as_u64().unwrap() + others, "{file}/{name}");
            let first = ["data", "scales", "zeros", "aux"].iter().find_map(|k| sections.get(*k));
            assert_eq!(t["offset"], first.map_or(0, |s| s["offset"].as_u64().unwrap()), "{file}/{name}");
            let flags = t["flags"].as_array().unwrap();
            let bits = w["flags"].as_u64().unwrap();
            for (bit, flag) in [(1, "symmetric"), (2, "per_axis"), (4, "double_quant")] {
                assert_eq!(flags.iter().any(|f| f == flag), bits & bit != 0, "{file}/{name}: {flag}");
            }
        }
        match &r["metadata"] {
            serde_json::Value::Null => {
                assert_eq!(b["producer"], serde_json::Value::Null, "{file}");
                assert_eq!(j["metadata"], serde_json::json!([]), "{file}");
            }
            m => {
                // Empty strings are shown as null.
                let text = |v: &serde_json::Value| match v.as_str() {
                    Some("") => serde_json::Value::Null,
                    _ => v.clone(),
                };
                for key in ["producer", "producer_version", "source_format", "recipe"] {
                    assert_eq!(b[key], text(&m[key]), "{file}: {key}");
                }
                assert_eq!(b["inputs"], m["inputs"], "{file}");
                assert_eq!(j["architecture"], m["arch"], "{file}");
                let keys: Vec<&serde_json::Value> =
                    j["metadata"].as_array().unwrap().iter().map(|e| &e["key"]).collect();
                let want: Vec<&serde_json::Value> = m["keys"].as_array().unwrap().iter().collect();
                assert_eq!(keys, want, "{file}");
                assert_eq!(b["onnx_graph"], serde_json::Value::Null, "{file}");
            }
        }
    }
    // The text form names the generator's ternary3 tensor with its scheme.
    let path = support::fixtures().join("blob/quant-schemes.smelt");
    let o = smelt([std::ffi::OsStr::new("inspect"), path.as_os_str(), "--tensors".as_ref()]);
    let text = stdout(&o);
    let line = text.lines().find(|l| l.starts_with("  ternary3 ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("ternary3") && line.contains("[3, 7]") && line.contains("U8"), "{line}");
}

/// Bad blobs exit 2, nothing on stdout, the message naming the file, the field and the byte
/// offset (the blob reader's errors): a header CRC, a tensor's data CRC, a section past the
/// end.
#[test]
fn bad_blobs_exit_2_naming_file_field_and_offset() {
    for (file, field, offset) in [
        ("header-crc.smelt", "header_crc", "at byte 124"),
        ("tensor-crc.smelt", "tensor 'a'", "at byte "),
        ("section-past-end.smelt", "tensor 'g' aux", "at bytes "),
        ("metadata-crc.smelt", "metadata", "at byte "),
    ] {
        let path = support::fixtures().join("malformed/blob").join(file);
        for json in [false, true] {
            let mut args = vec![std::ffi::OsStr::new("inspect"), path.as_os_str()];
            if json {
                args.push("--json".as_ref());
            }
            let o = smelt(args);
            assert_eq!(o.status.code(), Some(2), "{file}");
            assert!(stdout(&o).is_empty(), "{file}");
            let err = stderr(&o);
            assert!(err.contains(path.to_str().unwrap()), "{file}: {err}");
            assert!(err.contains(field), "{file}: {err}");
            assert!(err.contains(offset), "{file}: {err}");
        }
    }
}
