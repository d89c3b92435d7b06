//! `patch(old, diff(old, new)) == new`, byte for byte, for every format smelt reads and for
//! files it does not: unchanged, nudged, added, removed, reordered, renamed and resized
//! tensors, with zstd and lz4. The NEW versions are built here from the committed fixtures by
//! smelt's own writers (safetensors, GGUF) or prost (ONNX), or by editing bytes in place (blob).

mod common;

use common::*;
use smelt_delta::{EntryKind, Method};

fn copies(r: &smelt_delta::DiffReport) -> usize {
    r.entries.iter().filter(|e| e.method == Method::Copy && e.kind == EntryKind::Tensor).count()
}

#[test]
fn safetensors_every_edit() {
    for fx in [
        "safetensors/tiny-llama-bf16/model.safetensors",
        "safetensors/tiny-llama-f32/model.safetensors",
        "safetensors/all-dtypes.safetensors",
    ] {
        let path = fixture(fx);
        let m = smelt_formats::safetensors::read_file(&path).unwrap();
        let base = tensors(&m);
        let old = write_safetensors(&base);
        for (what, edit) in edits() {
            let mut ts = base.clone();
            edit(&mut ts);
            let new = write_safetensors(&ts);
            let r = round_trip(&old, &new, "m.safetensors");
            assert_eq!(r.new_format, smelt_delta::FileKind::Safetensors, "{fx} {what}");
            if what == "identical" {
                assert!(
                    r.entries.iter().all(|e| e.method == Method::Copy),
                    "{fx}: identical files must be all copies"
                );
            }
            if matches!(what, "nudge two tensors" | "reorder tensors" | "rename a tensor" | "add a tensor") {
                // Every tensor that did not change is a copy, wherever it moved.
                let changed =
                    usize::from(what == "nudge two tensors") * 2 + usize::from(what == "add a tensor");
                let n_tensors = ts.iter().filter(|t| !t.data.is_empty()).count();
                assert!(
                    copies(&r) >= n_tensors - changed,
                    "{fx} {what}: {} copies of {n_tensors}",
                    copies(&r)
                );
            }
        }
        // The committed file itself against an edited rebuild (different header layout).
        let orig = std::fs::read(&path).unwrap();
        let mut ts = base.clone();
        edits()[1].1(&mut ts);
        round_trip(&orig, &write_safetensors(&ts), "m.safetensors");
    }
}

#[test]
fn nudged_bf16_tensors_are_xor_coded_and_small() {
    let m = smelt_formats::safetensors::read_file(&fixture("safetensors/tiny-llama-bf16/model.safetensors"))
        .unwrap();
    let base = tensors(&m);
    let old = write_safetensors(&base);
    let mut ts = base.clone();
    edits()[2].1(&mut ts);
    let new = write_safetensors(&ts);
    let r = round_trip(&old, &new, "m.safetensors");
    let big: Vec<_> =
        r.entries.iter().filter(|e| e.kind == EntryKind::Tensor && e.bytes_before >= 4096).collect();
    assert!(!big.is_empty());
    for e in &big {
        assert_eq!(e.method, Method::XorZstd, "{}: {:?}", e.name, e.method);
        assert_eq!(e.group, 2, "{}: bf16 is grouped in two planes", e.name);
        // Only the low byte changed, by at most 2 bits: far below half the size.
        assert!(e.bytes_after * 3 < e.bytes_before, "{}: {} -> {}", e.name, e.bytes_before, e.bytes_after);
    }
    let plain = zstd::bulk::compress(&new, 3).unwrap();
    assert!(
        r.update_bytes * 2 < plain.len() as u64,
        "update {} vs zstd of NEW {}",
        r.update_bytes,
        plain.len()
    );
}

#[test]
fn gguf_every_edit() {
    for fx in ["gguf/tiny-llama.gguf", "gguf/all-types.gguf", "gguf/align64.gguf", "gguf/no-tensors.gguf"] {
        let path = fixture(fx);
        let m = smelt_formats::gguf::read(&path).unwrap();
        let base = tensors(&m);
        let old = std::fs::read(&path).unwrap();
        let rebuilt = write_gguf(&m.metadata, &base);
        round_trip(&old, &rebuilt, "m.gguf");
        for (what, edit) in edits() {
            let mut ts = base.clone();
            edit(&mut ts);
            let new = write_gguf(&m.metadata, &ts);
            let r = round_trip(&old, &new, "m.gguf");
            assert_eq!(r.new_format, smelt_delta::FileKind::Gguf, "{fx} {what}");
        }
        // Metadata change only: every tensor copies.
        let mut meta = m.metadata.clone();
        meta.push(("delta.test".into(), smelt_formats::MetaValue::Str("a new key".into())));
        let r = round_trip(&old, &write_gguf(&meta, &base), "m.gguf");
        let n = base.iter().filter(|t| !t.data.is_empty()).count();
        assert_eq!(copies(&r), n, "{fx}: metadata edit should leave every tensor a copy");
    }
}

#[test]
fn onnx_every_edit() {
    use prost::Message;
    use smelt_formats::onnx::proto::ModelProto;
    for fx in [
        "onnx/torch-tiny-llama.onnx",
        "onnx/torch-mlp.onnx",
        "onnx/mlp.onnx",
        "onnx/typed-fields.onnx",
        "onnx/subgraph.onnx",
    ] {
        let old = std::fs::read(fixture(fx)).unwrap();
        let model = ModelProto::decode(&old[..]).unwrap();
        type Edit = Box<dyn Fn(&mut ModelProto)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("re-encoded", Box::new(|_| {})),
            (
                "nudge",
                Box::new(|m| {
                    for (i, t) in m.graph.as_mut().unwrap().initializer.iter_mut().enumerate().take(3) {
                        if let Some(raw) = &t.raw_data {
                            let mut d = raw.to_vec();
                            nudge(&mut d, 4, i as u64 + 3);
                            t.raw_data = Some(d.into());
                        }
                    }
                }),
            ),
            (
                "remove",
                Box::new(|m| {
                    let g = m.graph.as_mut().unwrap();
                    if !g.initializer.is_empty() {
                        g.initializer.remove(0);
                    }
                }),
            ),
            ("reorder", Box::new(|m| m.graph.as_mut().unwrap().initializer.reverse())),
            (
                "resize",
                Box::new(|m| {
                    let g = m.graph.as_mut().unwrap();
                    let has_raw = |t: &&mut smelt_formats::onnx::proto::TensorProto| {
                        t.dims.len() == 2
                            && t.dims[0] > 0
                            && t.raw_data.as_ref().is_some_and(|r| !r.is_empty())
                    };
                    if let Some(t) = g.initializer.iter_mut().find(has_raw) {
                        let raw = t.raw_data.clone().unwrap_or_default();
                        let row = raw.len() / t.dims[0] as usize;
                        let mut d = raw.to_vec();
                        d.extend_from_slice(&raw[..row]);
                        t.raw_data = Some(d.into());
                        t.dims[0] += 1;
                    }
                }),
            ),
        ];
        for (what, edit) in edits {
            let mut m = model.clone();
            edit(&mut m);
            let new = m.encode_to_vec();
            let r = round_trip(&old, &new, "m.onnx");
            assert_eq!(r.new_format, smelt_delta::FileKind::Onnx, "{fx} {what}");
        }
    }
}

#[test]
fn blob_edits_in_place() {
    for fx in ["blob/tiny-raw.smelt", "blob/quant-schemes.smelt", "blob/compressed.smelt", "blob/empty.smelt"]
    {
        let path = fixture(fx);
        let old = std::fs::read(&path).unwrap();
        let blob = smelt_formats::blob::read(&path).unwrap();
        round_trip(&old, &old, "m.smelt");
        let mut new = old.clone();
        for (i, e) in blob.entries().iter().enumerate().take(3) {
            let s = &e.data;
            let (a, b) = (s.offset as usize, s.offset as usize + s.len() as usize);
            nudge(&mut new[a..b], 4, i as u64 + 5);
        }
        let r = round_trip(&old, &new, "m.smelt");
        assert_eq!(r.new_format, smelt_delta::FileKind::Blob, "{fx}");
    }
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

#[test]
fn files_no_reader_accepts() {
    let old = noise(300_000, 1);
    let mut new = old.clone();
    new.splice(50_000..50_000, noise(1000, 2));
    new.drain(200_000..210_000);
    new[100] ^= 0xff;
    let r = round_trip(&old, &new, "data.bin");
    assert_eq!(r.new_format, smelt_delta::FileKind::Bytes);
    assert!(r.update_bytes < 10_000, "shifted noise should be found in the old file: {}", r.update_bytes);
    round_trip(&[], &new, "data.bin");
    round_trip(&old, &[], "data.bin");
    round_trip(&[], &[], "data.bin");
    // Many byte-level chunks (of 64 KiB here), so the chunking and its old windows are
    // exercised: an insertion shifts every later chunk against its old position.
    let r = round_trip_chunked(&old, &new, "data.bin", 64 << 10);
    assert!(r.entries.len() >= 4, "{} entries", r.entries.len());
    assert!(r.update_bytes < 20_000, "chunked: {}", r.update_bytes);
}

#[test]
fn one_side_not_a_model() {
    let m = smelt_formats::safetensors::read_file(&fixture("safetensors/tiny-llama-f32/model.safetensors"))
        .unwrap();
    let st = write_safetensors(&tensors(&m));
    let garbage = noise(5000, 9);
    let r = round_trip(&st, &garbage, "m.safetensors");
    assert_eq!(r.new_format, smelt_delta::FileKind::Bytes);
    round_trip(&garbage, &st, "m.safetensors");
    let gguf = std::fs::read(fixture("gguf/tiny-llama.gguf")).unwrap();
    round_trip(&st, &gguf, "m.gguf");
    round_trip(&gguf, &st, "m.safetensors");
}
