//! Applying an update: check the update's own checksum and the base before a single byte is
//! written, then rebuild the new file entry by entry, verifying each decoded entry's hash and
//! finally the whole result's. Copy entries are not hashed again: their bytes are a range of
//! the base, whose hash was checked, named by a record the trailer covers (the result hash
//! still covers them). Memory: at most one decoded payload (the largest entry: a tensor, or a
//! 16 MiB byte-level chunk) plus a 4 MiB staging buffer; the old file and the update are read
//! in place (the caller maps them).
//!
//! Speed: BLAKE3 is most of the work. Each staged piece is hashed into the result on one core
//! while the other hashes it into its entry and writes it out.
//!
//! The caller writes into something that appears only when committed (smelt's CLI uses
//! `smelt_convert::atomic::AtomicFile`), so an error at any entry leaves nothing behind.

use std::io::Write;

use crate::codec;
use crate::format::{self, EntryRecord, Method, Update};
use crate::transform;
use crate::DeltaError;

/// Output is produced and hashed in pieces of this size.
const STAGE: usize = 4 << 20;

/// What `patch` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchStats {
    /// Entries applied.
    pub entries: usize,
    /// Bytes written (the new file's length).
    pub bytes_written: u64,
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `update` and checks its trailer and that `old` is its base, writing nothing.
pub fn check(old: &[u8], update: &[u8]) -> Result<Update, DeltaError> {
    let u = format::parse(update)?;
    format::verify_trailer(update, &u)?;
    check_base(old, &u)?;
    Ok(u)
}

/// Checks that `old` has the base length and hash `u` records.
pub fn check_base(old: &[u8], u: &Update) -> Result<(), DeltaError> {
    let found = blake3::Hasher::new().update_rayon(old).finalize();
    if old.len() as u64 != u.header.base_len || found.as_bytes() != &u.header.base_hash {
        return Err(DeltaError::WrongBase {
            expected_len: u.header.base_len,
            expected_hash: hex(&u.header.base_hash),
            found_len: old.len() as u64,
            found_hash: found.to_hex().to_string(),
        });
    }
    Ok(())
}

struct Sink<'w, W: Write> {
    out: &'w mut W,
    result: blake3::Hasher,
    entry: blake3::Hasher,
    written: u64,
}

impl<W: Write + Send> Sink<'_, W> {
    /// Writes `bytes`, hashing them into the result and, when `verify` (not a copy), into the
    /// entry: the result's hash on one core, the entry's hash and the write on the other.
    fn emit(&mut self, bytes: &[u8], verify: bool) -> Result<(), DeltaError> {
        let (entry, result, out) = (&mut self.entry, &mut self.result, &mut *self.out);
        let ((), written) = rayon::join(
            || {
                result.update(bytes);
            },
            || {
                if verify {
                    entry.update(bytes);
                }
                out.write_all(bytes)
            },
        );
        self.written += bytes.len() as u64;
        written.map_err(DeltaError::Write)
    }
}

/// Rebuilds the new file from `old` and `update` into `out`. Nothing is written unless the
/// update is intact and `old` is its base; an entry that fails to decode or to match its hash
/// stops the patch with an error (the caller discards what was written).
pub fn patch<W: Write + Send>(old: &[u8], update: &[u8], out: &mut W) -> Result<PatchStats, DeltaError> {
    let u = check(old, update)?;
    apply(old, update, &u, out)
}

/// Applies a parsed update to `old` without [`check`]ing the trailer or the base's hash (its
/// length must still match). For callers that already checked, and for the fuzz target, which
/// reaches the decoders with hostile payloads this way. The result is still verified entry by
/// entry and as a whole.
pub fn apply<W: Write + Send>(
    old: &[u8],
    update: &[u8],
    u: &Update,
    out: &mut W,
) -> Result<PatchStats, DeltaError> {
    if old.len() as u64 != u.header.base_len || (update.len() as u64) < u.trailer_offset {
        return Err(DeltaError::WrongBase {
            expected_len: u.header.base_len,
            expected_hash: hex(&u.header.base_hash),
            found_len: old.len() as u64,
            found_hash: String::from("(not computed)"),
        });
    }
    let mut sink = Sink { out, result: blake3::Hasher::new(), entry: blake3::Hasher::new(), written: 0 };
    let mut scratch: Vec<u8> = Vec::new();
    let mut stage = vec![0u8; STAGE];
    for (index, e) in u.entries.iter().enumerate() {
        sink.entry.reset();
        let payload_at = u.payload_offsets[index];
        let payload = &update[payload_at as usize..(payload_at + e.payload_len) as usize];
        // parse checked every source range against base_len, and check_base that old is that long.
        let src = &old[e.src_offset as usize..(e.src_offset + e.src_len) as usize];
        let decode_err =
            |reason: String| DeltaError::Decode { index, name: e.name.clone(), offset: payload_at, reason };
        match e.method {
            Method::Copy => {
                for c in src.chunks(STAGE) {
                    sink.emit(c, false)?;
                }
            }
            Method::Raw => {
                for c in payload.chunks(STAGE) {
                    sink.emit(c, true)?;
                }
            }
            Method::Zstd | Method::ZstdPrefix | Method::Lz4 => {
                let decoded = decode_into(&mut scratch, e, payload, src).map_err(decode_err)?;
                for c in decoded.chunks(STAGE) {
                    sink.emit(c, true)?;
                }
            }
            Method::XorZstd | Method::XorLz4 | Method::DeltaZstd | Method::DeltaLz4 => {
                let grouped = decode_into(&mut scratch, e, payload, &[]).map_err(decode_err)?;
                let w = e.group as usize;
                let step = (STAGE / w).max(1) * w;
                let mut at = 0usize;
                while at < grouped.len() {
                    let end = (at + step).min(grouped.len());
                    let buf = &mut stage[..end - at];
                    if e.method.is_delta() {
                        transform::undelta_range(grouped, src, w, at, buf);
                    } else {
                        transform::ungroup_xor_range(grouped, src, w, at, buf);
                    }
                    sink.emit(buf, true)?;
                    at = end;
                }
            }
        }
        if e.method != Method::Copy {
            verify_entry(&sink.entry, e, index, u.record_offsets[index])?;
        }
    }
    if sink.result.finalize().as_bytes() != &u.header.result_hash {
        return Err(DeltaError::ResultHash { offset: format::field::RESULT_HASH });
    }
    sink.out.flush().map_err(DeltaError::Write)?;
    Ok(PatchStats { entries: u.entries.len(), bytes_written: sink.written })
}

fn verify_entry(h: &blake3::Hasher, e: &EntryRecord, index: usize, record: u64) -> Result<(), DeltaError> {
    if h.finalize().as_bytes() != &e.hash {
        return Err(DeltaError::EntryHash { index, name: e.name.clone(), offset: record + 40 });
    }
    Ok(())
}

/// Decodes a compressed payload into the first `out_len` bytes of `scratch`, which only grows
/// (so it is zero-filled once, not per entry), and returns them. parse bounded that length by
/// the payload's length times the codec's largest ratio.
fn decode_into<'s>(
    scratch: &'s mut Vec<u8>,
    e: &EntryRecord,
    payload: &[u8],
    prefix: &[u8],
) -> Result<&'s [u8], String> {
    let n = e.out_len as usize;
    if scratch.len() < n {
        scratch.resize(n, 0);
    }
    let out = &mut scratch[..n];
    match e.method {
        Method::Zstd | Method::XorZstd | Method::DeltaZstd => codec::zstd_decompress(payload, &[], out)?,
        Method::ZstdPrefix => codec::zstd_decompress(payload, prefix, out)?,
        _ => codec::lz4_decompress(payload, out)?,
    }
    Ok(&scratch[..n])
}
