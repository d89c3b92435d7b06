//! Shared pieces of smelt-delta's tests: fixture paths, model rebuilding through smelt's own
//! writers (safetensors, GGUF) and prost (ONNX), edits a new model version typically makes,
//! and a round trip that asserts the patched file is byte-identical to NEW.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use smelt_delta::{CodecFamily, DiffOptions, DiffReport};
use smelt_formats::{MetaValue, Model};
use smelt_tensor::DType;

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(rel)
}

#[derive(Clone, Debug)]
pub struct T {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

pub fn tensors(m: &Model) -> Vec<T> {
    m.tensors
        .iter()
        .map(|t| T { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone(), data: t.data.to_vec() })
        .collect()
}

pub fn write_safetensors(ts: &[T]) -> Vec<u8> {
    let mut budget = smelt_formats::safetensors::HeaderBudget::new();
    for t in ts {
        budget.add_tensor_shape(&t.name, t.dtype, &t.shape);
    }
    let mut w = smelt_formats::safetensors::SafetensorsWriter::new(Cursor::new(Vec::new()), &budget).unwrap();
    for t in ts {
        w.add_tensor(&t.name, t.dtype, &t.shape, &t.data).unwrap();
    }
    w.finish(&[]).unwrap().into_inner()
}

pub fn write_gguf(meta: &[(String, MetaValue)], ts: &[T]) -> Vec<u8> {
    use smelt_formats::gguf::{GgufTensorDecl, GgufWriter};
    let decls: Vec<GgufTensorDecl> =
        ts.iter().map(|t| GgufTensorDecl::new(&t.name, t.dtype, t.shape.clone())).collect();
    let mut w = GgufWriter::new(Vec::new(), meta, &decls).unwrap();
    for t in ts {
        w.write_tensor(&t.name, &t.data).unwrap();
    }
    w.finish().unwrap()
}

/// A small, deterministic change to every element's lowest byte: what a short fine-tune
/// does to bf16/f16/f32 weights.
pub fn nudge(data: &mut [u8], width: usize, seed: u64) {
    let mut s = seed | 1;
    for chunk in data.chunks_mut(width.max(1)) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        chunk[0] ^= (s % 4) as u8;
    }
}

pub fn elem_width(d: DType) -> usize {
    (d.block_bytes() as usize).max(1)
}

/// An edit a new version makes to a list of tensors.
pub type Edit = fn(&mut Vec<T>);

/// The edits a new version makes, applied to a list of tensors. Each returns a description.
pub fn edits() -> Vec<(&'static str, Edit)> {
    vec![
        ("identical", |_| {}),
        ("nudge two tensors", |ts| {
            for (i, t) in ts.iter_mut().enumerate().filter(|(_, t)| !t.data.is_empty()).take(2) {
                let w = elem_width(t.dtype);
                nudge(&mut t.data, w, i as u64 + 7);
            }
        }),
        ("nudge every tensor", |ts| {
            for (i, t) in ts.iter_mut().enumerate() {
                let w = elem_width(t.dtype);
                nudge(&mut t.data, w, i as u64 + 11);
            }
        }),
        ("add a tensor", |ts| {
            let data: Vec<u8> = (0..60u32).flat_map(|i| (i as f32 * 0.25).to_le_bytes()).collect();
            ts.insert(
                ts.len() / 2,
                T {
                    name: "delta.added".into(),
                    dtype: DType::F32,
                    shape: vec![3, 5],
                    data: data[..60].to_vec(),
                },
            );
        }),
        ("remove a tensor", |ts| {
            if ts.len() > 1 {
                ts.remove(1);
            }
        }),
        ("reorder tensors", |ts| ts.reverse()),
        ("rename a tensor", |ts| {
            if let Some(t) = ts.first_mut() {
                t.name = format!("{}.renamed", t.name);
            }
        }),
        ("resize a tensor", |ts| {
            if let Some(t) = ts.iter_mut().find(|t| {
                t.shape.len() == 2
                    && t.shape[0] > 0
                    && matches!(t.dtype, DType::F32 | DType::F16 | DType::BF16)
            }) {
                let row = t.data.len() / t.shape[0] as usize;
                let extra: Vec<u8> = t.data[..row].to_vec();
                t.data.extend_from_slice(&extra);
                t.shape[0] += 1;
            }
        }),
    ]
}

/// Diffs, writes, parses and patches; asserts the result is NEW byte for byte, for both codec
/// families. Returns the zstd report.
pub fn round_trip(old: &[u8], new: &[u8], hint: &str) -> DiffReport {
    round_trip_chunked(old, new, hint, smelt_delta::diff::BYTES_CHUNK)
}

/// [`round_trip`] with byte-level regions cut in chunks of `chunk` bytes.
pub fn round_trip_chunked(old: &[u8], new: &[u8], hint: &str, chunk: u64) -> DiffReport {
    let mut zstd_report = None;
    for codec in [CodecFamily::Zstd, CodecFamily::Lz4] {
        let old_b = Bytes::copy_from_slice(old);
        let new_b = Bytes::copy_from_slice(new);
        let opts = DiffOptions { codec, level: 3, chunk };
        let d = smelt_delta::diff(&old_b, &new_b, Path::new(hint), Path::new(hint), opts).unwrap();
        let mut update = Vec::new();
        let n = d.write_to(&mut update).unwrap();
        assert_eq!(n as usize, update.len());
        assert_eq!(d.report.update_bytes as usize, update.len(), "report's size");
        let mut out = Vec::new();
        let stats =
            smelt_delta::patch(old, &update, &mut out).unwrap_or_else(|e| panic!("{hint} {codec:?}: {e}"));
        assert_eq!(stats.bytes_written as usize, new.len());
        assert!(out == new, "{hint} {codec:?}: patched file differs from NEW");
        if codec == CodecFamily::Zstd {
            zstd_report = Some(d.report);
        }
    }
    zstd_report.unwrap()
}
