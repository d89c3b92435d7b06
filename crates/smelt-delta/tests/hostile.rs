//! Updates as an attacker or a bad network delivers them: every truncation, bit flips across
//! the whole file, lengths spliced into the header and the records (with the trailer re-made, so
//! the parser and the decoders are reached), a wrong base. `patch` must return an error and
//! write nothing — or, when a mutation happens to be harmless (a name byte, say), produce NEW
//! exactly — and never panic or allocate beyond the caps. Deterministic (fixed-seed xorshift).

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use bytes::Bytes;
use common::*;
use smelt_delta::{format, CodecFamily, DeltaError, DiffOptions};

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

/// An (old, new, update) triple whose update uses copy, xor and prefix/plain methods.
fn sample(codec: CodecFamily) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let m = smelt_formats::safetensors::read_file(&fixture("safetensors/tiny-llama-f32/model.safetensors"))
        .unwrap();
    let base = tensors(&m);
    let old = write_safetensors(&base);
    let mut ts = base.clone();
    edits()[1].1(&mut ts); // nudge two tensors
    edits()[3].1(&mut ts); // add one
    edits()[7].1(&mut ts); // resize one
    let new = write_safetensors(&ts);
    let d = smelt_delta::diff(
        &Bytes::from(old.clone()),
        &Bytes::from(new.clone()),
        Path::new("o.safetensors"),
        Path::new("n.safetensors"),
        DiffOptions { codec, level: 3, ..DiffOptions::default() },
    )
    .unwrap();
    let mut u = Vec::new();
    d.write_to(&mut u).unwrap();
    let methods: std::collections::HashSet<_> = d.report.entries.iter().map(|e| e.method).collect();
    assert!(methods.len() >= 3, "sample should mix methods: {methods:?}");
    (old, new, u)
}

fn retrail(u: &mut [u8]) {
    let n = u.len();
    if n >= 32 {
        let h = blake3::hash(&u[..n - 32]);
        u[n - 32..].copy_from_slice(h.as_bytes());
    }
}

/// Patches and returns the error, asserting nothing was written; or asserts the output is NEW.
fn patch_outcome(old: &[u8], new: &[u8], u: &[u8], what: &str) -> Option<DeltaError> {
    let mut out = Vec::new();
    let r = catch_unwind(AssertUnwindSafe(|| smelt_delta::patch(old, u, &mut out)))
        .unwrap_or_else(|_| panic!("patch panicked on {what}"));
    match r {
        Ok(_) => {
            assert!(out == new, "{what}: patch succeeded with the wrong bytes");
            None
        }
        Err(e) => Some(e),
    }
}

#[test]
fn every_truncation_is_refused_before_writing() {
    for codec in [CodecFamily::Zstd, CodecFamily::Lz4] {
        let (old, new, u) = sample(codec);
        for cut in 0..u.len() {
            let mut out = Vec::new();
            let r = smelt_delta::patch(&old, &u[..cut], &mut out);
            assert!(r.is_err(), "truncated to {cut} accepted");
            assert!(out.is_empty(), "truncated to {cut}: {} bytes written", out.len());
        }
        let mut out = Vec::new();
        smelt_delta::patch(&old, &u, &mut out).unwrap();
        assert!(out == new);
    }
}

#[test]
fn bit_flips_anywhere_are_refused_before_writing() {
    let (old, _new, u) = sample(CodecFamily::Zstd);
    let mut rng = XorShift(0x5eed_1234);
    // Every byte of the header and directory, then 400 positions spread over the payloads and
    // the trailer (each refusal hashes the whole update: all of them would take seconds).
    let dir_end = format::parse(&u).unwrap().payload_offsets.first().copied().unwrap_or(128) as usize;
    let step = ((u.len() - dir_end) / 400).max(1);
    let positions: Vec<usize> =
        (0..dir_end).chain((dir_end..u.len()).step_by(step)).chain([u.len() - 1]).collect();
    for at in positions {
        let mut b = u.clone();
        b[at] ^= 1 << rng.below(8);
        let mut out = Vec::new();
        let r = smelt_delta::patch(&old, &b, &mut out);
        assert!(r.is_err(), "bit flip at {at} accepted");
        assert!(out.is_empty(), "bit flip at {at}: bytes written");
    }
}

#[test]
fn wrong_base_is_refused_before_writing() {
    let (old, new, u) = sample(CodecFamily::Zstd);
    for base in [
        new.clone(),
        old[..old.len() - 1].to_vec(),
        {
            let mut o = old.clone();
            o[100] ^= 1;
            o
        },
        Vec::new(),
    ] {
        let mut out = Vec::new();
        match smelt_delta::patch(&base, &u, &mut out) {
            Err(DeltaError::WrongBase { expected_len, .. }) => assert_eq!(expected_len, old.len() as u64),
            other => panic!("expected WrongBase, got {other:?}"),
        }
        assert!(out.is_empty());
    }
}

const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    31,
    32,
    33,
    72,
    128,
    255,
    256,
    4096,
    4097,
    0xffff,
    1 << 31,
    1 << 32,
    1 << 40,
    u64::MAX / 2,
    u64::MAX,
];

/// Mutated updates per codec.
const MUTATIONS: usize = 600;

/// Mutations with the trailer re-made: they reach the directory checks and the decoders.
#[test]
fn mutations_past_the_checksum_fail_cleanly_or_rebuild_new() {
    for codec in [CodecFamily::Zstd, CodecFamily::Lz4] {
        let (old, new, u) = sample(codec);
        let body = u.len() - 32;
        let mut rng = XorShift(0xdead_beef_0042 + codec as u64);
        let mut refused = 0;
        for i in 0..MUTATIONS {
            let mut b = u.clone();
            let what = match rng.below(4) {
                0 => {
                    let at = rng.below(body as u64) as usize;
                    b[at] ^= 1 << rng.below(8);
                    format!("#{i}: bit flip at {at}")
                }
                1 => {
                    // A length, offset or count field of the header or of a record.
                    let at = rng.below((body as u64).min(4096).saturating_sub(8)) as usize;
                    let v = INTERESTING[rng.below(INTERESTING.len() as u64) as usize];
                    let width = [1usize, 2, 4, 8][rng.below(4) as usize];
                    b[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
                    format!("#{i}: u{} {v:#x} at {at}", width * 8)
                }
                2 => {
                    let at = rng.below(body as u64) as usize;
                    let n = (1 + rng.below(64) as usize).min(body - at);
                    b.drain(at..at + n);
                    format!("#{i}: deleted {n} at {at}")
                }
                _ => {
                    let at = rng.below(body as u64) as usize;
                    let n = 1 + rng.below(16) as usize;
                    for k in 0..n {
                        b.insert(at, (rng.next() >> (k % 8)) as u8);
                    }
                    format!("#{i}: inserted {n} at {at}")
                }
            };
            retrail(&mut b);
            if patch_outcome(&old, &new, &b, &what).is_some() {
                refused += 1;
            }
        }
        assert!(refused > MUTATIONS * 8 / 10, "{codec:?}: only {refused} of {MUTATIONS} mutations refused");
    }
}

fn header_with(u: &[u8], at: usize, v: &[u8]) -> Vec<u8> {
    let mut b = u.to_vec();
    b[at..at + v.len()].copy_from_slice(v);
    retrail(&mut b);
    b
}

#[test]
fn each_header_rule_has_its_error() {
    let (_old, _new, u) = sample(CodecFamily::Zstd);
    let parse = |b: &[u8]| format::parse(b).unwrap_err();
    assert!(matches!(parse(b"GGUF...."), DeltaError::BadMagic { .. }));
    assert!(matches!(parse(&u[..5]), DeltaError::BadMagic { .. }));
    assert!(matches!(parse(&u[..100]), DeltaError::Truncated { what: "header", .. }));
    assert!(matches!(
        parse(&header_with(&u, 8, &2u32.to_le_bytes())),
        DeltaError::UnsupportedVersion { offset: 8, version: 2 }
    ));
    assert!(matches!(
        parse(&header_with(&u, 12, &u32::MAX.to_le_bytes())),
        DeltaError::TooManyEntries { offset: 12, .. }
    ));
    assert!(matches!(
        parse(&header_with(&u, 96, &u64::MAX.to_le_bytes())),
        DeltaError::Truncated { what: "directory", .. }
    ));
    assert!(matches!(
        parse(&header_with(&u, 104, &(1u64 << 40).to_le_bytes())),
        DeltaError::Truncated { what: "payloads", .. }
    ));
    assert!(matches!(
        parse(&header_with(&u, 56, &0u64.to_le_bytes())),
        DeltaError::LengthMismatch { field: "result length", .. }
    ));
    assert!(matches!(parse(&header_with(&u, 113, &[1])), DeltaError::Reserved { offset: 113 }));
    assert!(matches!(parse(&header_with(&u, 112, &[7])), DeltaError::Reserved { offset: 112 }));
    let mut long = u.clone();
    long.push(0);
    assert!(matches!(parse(&long), DeltaError::TrailingBytes { .. }));
    // A record claiming far more output than its payload can produce is refused before
    // anything is allocated.
    let parsed = format::parse(&u).unwrap();
    let (i, _) = parsed
        .entries
        .iter()
        .enumerate()
        .find(|(_, e)| {
            e.method == smelt_delta::Method::XorZstd
                || e.method == smelt_delta::Method::Zstd
                || e.method == smelt_delta::Method::ZstdPrefix
        })
        .unwrap();
    let rec = parsed.record_offsets[i] as usize;
    let err = parse(&header_with(&u, rec + 8, &(1u64 << 50).to_le_bytes()));
    assert!(matches!(err, DeltaError::BadEntry { .. }), "{err:?}");
    // An old range outside the base.
    let (j, _) =
        parsed.entries.iter().enumerate().find(|(_, e)| e.method == smelt_delta::Method::Copy).unwrap();
    let rec = parsed.record_offsets[j] as usize;
    let err = parse(&header_with(&u, rec + 16, &(u64::MAX - 3).to_le_bytes()));
    assert!(matches!(err, DeltaError::BadEntry { .. }), "{err:?}");
    let err = parse(&header_with(&u, rec, &[99]));
    assert!(matches!(err, DeltaError::BadEntry { .. }), "{err:?}");
    let err = parse(&header_with(&u, rec + 4, &5000u16.to_le_bytes()));
    assert!(matches!(err, DeltaError::BadName { .. }), "{err:?}");
    let mut bad_trailer = u.clone();
    let n = bad_trailer.len();
    bad_trailer[n - 1] ^= 1;
    let p = format::parse(&bad_trailer).unwrap();
    assert!(matches!(format::verify_trailer(&bad_trailer, &p), Err(DeltaError::UpdateChecksum { .. })));
}

/// Copy entries are not hashed on their own (their bytes are the verified base's): a copy
/// record pointed one byte off, with the trailer re-made, is still refused by the result hash.
#[test]
fn a_copy_from_the_wrong_old_range_is_refused_by_the_result_hash() {
    let (old, _new, u) = sample(CodecFamily::Zstd);
    let parsed = smelt_delta::format::parse(&u).unwrap();
    let (i, e) = parsed
        .entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.method == smelt_delta::Method::Copy && e.src_len > 0)
        .expect("the sample has a copy entry");
    let at = parsed.record_offsets[i] as usize + 16;
    let moved = if e.src_offset > 0 { e.src_offset - 1 } else { e.src_offset + 1 };
    let mut b = u.clone();
    b[at..at + 8].copy_from_slice(&moved.to_le_bytes());
    retrail(&mut b);
    let mut out = Vec::new();
    let r = smelt_delta::patch(&old, &b, &mut out);
    assert!(matches!(r, Err(DeltaError::ResultHash { .. })), "{r:?}");
}
