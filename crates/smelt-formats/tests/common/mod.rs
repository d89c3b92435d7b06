//! Compares a model smelt read with the reference manifest an independent library wrote
//! beside the fixture (`*.reference.json`, see fixtures/README.md): tensor names, dtypes,
//! shapes, a BLAKE3 hash of the stored bytes, the first values as the library decoded them,
//! and metadata values.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use smelt_formats::Model;
use smelt_tensor::DType;

/// The repository's `fixtures/` directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Asserts that `model` holds exactly the tensors (and the metadata values) listed in the
/// reference manifest at `reference`.
pub fn assert_matches_reference(model: &Model, reference: &Path) {
    let text = std::fs::read_to_string(reference)
        .unwrap_or_else(|e| panic!("{}: {e} (regenerate fixtures with tools/fixtures)", reference.display()));
    let r: serde_json::Value = serde_json::from_str(&text).expect("reference manifest is JSON");
    let tensors = r["tensors"].as_array().expect("reference has a tensors array");
    assert_eq!(
        model.tensors.len(),
        tensors.len(),
        "{}: tensor count differs from the reference",
        reference.display()
    );
    for rt in tensors {
        let name = rt["name"].as_str().unwrap();
        let t =
            model.tensor(name).unwrap_or_else(|| panic!("{}: tensor {name} missing", reference.display()));
        let dtype = DType::from_name(rt["dtype"].as_str().unwrap()).expect("known dtype name");
        assert_eq!(t.dtype, dtype, "{name}: dtype");
        let shape: Vec<u64> = rt["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(t.shape, shape, "{name}: shape");
        if let Some(h) = rt.get("blake3").and_then(|h| h.as_str()) {
            assert_eq!(blake3::hash(&t.data).to_hex().as_str(), h, "{name}: stored bytes differ");
        }
        if let Some(head) = rt.get("head").and_then(|h| h.as_array()) {
            let vals = smelt_tensor::convert::to_f32_vec(t.dtype, &t.data, t.numel() as usize)
                .unwrap_or_else(|| panic!("{name}: no f32 reading of {}", t.dtype));
            for (i, want) in head.iter().enumerate() {
                let want = want.as_f64().unwrap() as f32;
                let got = vals[i];
                assert!(
                    got == want || (got.is_nan() && want.is_nan()),
                    "{name}[{i}]: smelt read {got}, reference {want}"
                );
            }
        }
    }
    if let Some(meta) = r.get("metadata").and_then(|m| m.as_object()) {
        for (k, want) in meta {
            let got =
                model.meta(k).unwrap_or_else(|| panic!("{}: metadata key {k} missing", reference.display()));
            assert_eq!(&got.to_json(), want, "metadata {k}");
        }
    }
}
