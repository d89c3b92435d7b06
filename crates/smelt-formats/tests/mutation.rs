//! Feeds many mutated copies of every valid fixture to its reader and asserts that each one
//! comes back as a model or an error: never a panic (and, by finishing at all, never a hang
//! or an allocation that kills the process). Runs on stable, in every `cargo test`; the
//! cargo-fuzz targets in tools/fuzz explore further on nightly.
//!
//! Mutations are deterministic (a fixed-seed xorshift), so a failure reproduces: the message
//! names the fixture, the mutation index and what was done.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Mutated copies per fixture file.
const MUTATIONS_PER_FILE: u64 = 400;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Lengths that tend to break readers: zero, one, huge, just past a boundary.
const INTERESTING_U64: &[u64] = &[
    0,
    1,
    7,
    8,
    255,
    256,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    u64::MAX / 2,
    u64::MAX - 7,
    u64::MAX,
];

fn mutate(orig: &[u8], rng: &mut XorShift) -> (Vec<u8>, String) {
    let mut v = orig.to_vec();
    let len = v.len() as u64;
    let what = match rng.below(7) {
        0 => {
            let n = 1 + rng.below(8);
            for _ in 0..n {
                let i = rng.below(len) as usize;
                if i < v.len() {
                    v[i] ^= 1 << rng.below(8);
                }
            }
            format!("{n} bit flips")
        }
        1 => {
            let at = rng.below(len + 1) as usize;
            v.truncate(at);
            format!("truncated to {at}")
        }
        2 => {
            // Splice an interesting little-endian integer over a length or count field.
            let at = rng.below(len.saturating_sub(8).max(1)) as usize;
            let val = INTERESTING_U64[rng.below(INTERESTING_U64.len() as u64) as usize];
            let width = [1usize, 2, 4, 8][rng.below(4) as usize];
            let bytes = val.to_le_bytes();
            for k in 0..width {
                if at + k < v.len() {
                    v[at + k] = bytes[k];
                }
            }
            format!("u{} {val:#x} spliced at {at}", width * 8)
        }
        3 => {
            let at = rng.below(len) as usize;
            let n = (1 + rng.below(64)) as usize;
            let end = (at + n).min(v.len());
            v.drain(at..end);
            format!("deleted {at}..{end}")
        }
        4 => {
            let at = rng.below(len) as usize;
            let n = (1 + rng.below(64)) as usize;
            let end = (at + n).min(v.len());
            let chunk = v[at..end].to_vec();
            let to = rng.below(v.len() as u64 + 1) as usize;
            v.splice(to..to, chunk);
            format!("duplicated {at}..{end} at {to}")
        }
        5 => {
            let at = rng.below(len) as usize;
            let b = [0x00u8, 0xff, 0x7f, 0x80][rng.below(4) as usize];
            let n = (1 + rng.below(16)) as usize;
            for k in at..(at + n).min(v.len()) {
                v[k] = b;
            }
            format!("{n} bytes set to {b:#x} at {at}")
        }
        _ => {
            // Mutate only the first 512 bytes, where headers live, with several changes.
            let head = len.min(512);
            for _ in 0..4 {
                let i = rng.below(head) as usize;
                if i < v.len() {
                    v[i] = rng.next() as u8;
                }
            }
            "4 random header bytes".to_string()
        }
    };
    (v, what)
}

fn files_with_ext(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_with_ext(&p, ext, out);
        } else if p.extension().and_then(|e| e.to_str()) == Some(ext) {
            out.push(p);
        }
    }
}

/// Valid fixtures of one format: everything under fixtures/ with the extension, except the
/// deliberately malformed ones (which are mutated too, from a separate seed).
fn fixtures_of(ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    files_with_ext(&common::fixtures(), ext, &mut out);
    out
}

fn run_mutations(ext: &str, parse: &dyn Fn(Bytes, &Path) -> bool) {
    let files = fixtures_of(ext);
    assert!(!files.is_empty(), "no .{ext} fixtures found under fixtures/");
    let mut parsed_ok = 0u64;
    let mut total = 0u64;
    for (fi, path) in files.iter().enumerate() {
        let orig = std::fs::read(path).unwrap();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((fi as u64 + 1) << 32) ^ orig.len() as u64);
        for m in 0..MUTATIONS_PER_FILE {
            let (bytes, what) = mutate(&orig, &mut rng);
            let r = catch_unwind(AssertUnwindSafe(|| parse(Bytes::from(bytes), path)));
            match r {
                Ok(ok) => parsed_ok += ok as u64,
                Err(_) => panic!("{}: mutation {m} ({what}) made the reader panic", path.display()),
            }
            total += 1;
        }
    }
    eprintln!(".{ext}: {total} mutated files from {} fixtures, {parsed_ok} still parsed", files.len());
}

#[test]
fn gguf_reader_survives_mutations() {
    run_mutations("gguf", &|b, p| smelt_formats::gguf::parse(b, p).is_ok());
}

#[test]
fn safetensors_reader_survives_mutations() {
    run_mutations("safetensors", &|b, p| smelt_formats::safetensors::parse(b, p).is_ok());
}

#[test]
fn onnx_reader_survives_mutations() {
    // Parsing with the fixture's real path lets external data resolve as in a real model.
    run_mutations("onnx", &|b, p| smelt_formats::onnx::parse(b, p).is_ok());
}

#[test]
fn npy_reader_survives_mutations() {
    run_mutations("npy", &|b, _| smelt_formats::npy::parse(b).is_ok());
}

#[test]
fn hf_config_parser_survives_mutations() {
    let mut files = Vec::new();
    files_with_ext(&common::fixtures(), "json", &mut files);
    files.retain(|p| p.file_name().is_some_and(|n| n == "config.json"));
    assert!(!files.is_empty(), "no config.json fixtures found");
    for (fi, path) in files.iter().enumerate() {
        let orig = std::fs::read(path).unwrap();
        let mut rng = XorShift(0xC0FF_EE00 + fi as u64);
        for m in 0..MUTATIONS_PER_FILE {
            let (bytes, what) = mutate(&orig, &mut rng);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let r = catch_unwind(AssertUnwindSafe(|| smelt_formats::config::parse_hf_config(&text).is_ok()));
            assert!(r.is_ok(), "{}: mutation {m} ({what}) made the config parser panic", path.display());
        }
    }
}

#[test]
fn shard_index_reader_survives_mutations() {
    // The index is read from disk next to its shards: copy a sharded checkpoint into a temp
    // directory once and rewrite only the index for each mutation.
    let src = common::fixtures().join("hf/tiny-llama-sharded");
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let index = dir.path().join(smelt_formats::SHARD_INDEX_NAME);
    let orig = std::fs::read(&index).unwrap();
    let mut rng = XorShift(0x5EED_1DE5);
    for m in 0..MUTATIONS_PER_FILE {
        let (bytes, what) = mutate(&orig, &mut rng);
        std::fs::write(&index, &bytes).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| smelt_formats::safetensors::read_sharded(&index).is_ok()));
        assert!(r.is_ok(), "mutation {m} ({what}) of the shard index made the reader panic");
    }
}
