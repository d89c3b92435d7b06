//! Fuzzes the update parser and the patch decoders: any bytes must give an update or an error,
//! never a panic, a hang or a huge allocation. Odd mode bytes get the BLAKE3 trailer re-made and
//! the header's base length set to the fixed base's, so the checks behind the checksum and the
//! zstd / lz4 / XOR decoders are reached; an update that applies must rebuild exactly the
//! length and hash its header records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smelt_delta::{format, patch};

/// A fixed base for the decoders to read from.
fn base() -> Vec<u8> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..8192)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as u8
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut v = rest.to_vec();
    let old = base();
    if mode & 1 == 1 && v.len() >= format::HEADER_LEN as usize + 32 {
        v[16..24].copy_from_slice(&(old.len() as u64).to_le_bytes());
        let n = v.len();
        let h = blake3::hash(&v[..n - 32]);
        v[n - 32..].copy_from_slice(h.as_bytes());
    }
    let Ok(u) = format::parse(&v) else { return };
    // parse's promises.
    let total: u64 = u.entries.iter().map(|e| e.out_len).sum();
    assert_eq!(total, u.header.result_len);
    for (e, &at) in u.entries.iter().zip(&u.payload_offsets) {
        assert!(at + e.payload_len <= u.trailer_offset);
        if e.method.uses_source() {
            assert!(e.src_offset + e.src_len <= u.header.base_len);
        }
    }
    let _ = format::verify_trailer(&v, &u);
    let mut out = Vec::new();
    if let Ok(stats) = patch::apply(&old, &v, &u, &mut out) {
        assert_eq!(stats.bytes_written, u.header.result_len);
        assert_eq!(blake3::hash(&out).as_bytes(), &u.header.result_hash);
    }
});
