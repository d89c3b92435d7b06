//! The update container (docs/delta-format.md): a 128-byte header, a directory of entry
//! records, the entries' payloads, and a BLAKE3 trailer over everything before it.
//!
//! [`parse`] checks every length and count against the real file length before anything is
//! allocated and never trusts a field it has not bounded; each failure is a [`DeltaError`]
//! carrying the byte offset of the field at fault. [`write`] is its inverse.

use std::io::Write;

use crate::DeltaError;

/// First eight bytes of every update.
pub const MAGIC: [u8; 8] = *b"SMLTDLTA";
/// Format version this crate writes and reads.
pub const VERSION: u32 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: u64 = 128;
/// Length of an entry record without its name.
pub const RECORD_FIXED_LEN: u64 = 72;
/// Length of the BLAKE3 trailer.
pub const TRAILER_LEN: u64 = 32;
/// Longest entry name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 4096;
/// Largest output a zstd payload may claim per payload byte (a zstd RLE block turns 4 bytes
/// into at most 128 KiB), so a hostile length cannot make `patch` allocate far beyond what the
/// payload can really produce.
pub const MAX_ZSTD_RATIO: u64 = 1 << 15;
/// The same bound for lz4 (one sequence of 255-length extensions codes about 255 bytes per byte).
pub const MAX_LZ4_RATIO: u64 = 256;

/// Header field offsets.
pub mod field {
    /// Magic (8 bytes).
    pub const MAGIC: u64 = 0;
    /// Version (u32).
    pub const VERSION: u64 = 8;
    /// Entry count (u32).
    pub const ENTRY_COUNT: u64 = 12;
    /// Base length (u64).
    pub const BASE_LEN: u64 = 16;
    /// Base BLAKE3 (32 bytes).
    pub const BASE_HASH: u64 = 24;
    /// Result length (u64).
    pub const RESULT_LEN: u64 = 56;
    /// Result BLAKE3 (32 bytes).
    pub const RESULT_HASH: u64 = 64;
    /// Directory length (u64).
    pub const DIR_LEN: u64 = 96;
    /// Total payload length (u64).
    pub const PAYLOAD_LEN: u64 = 104;
    /// Codec family the update was made for (u8: 0 zstd, 1 lz4).
    pub const CODEC: u64 = 112;
    /// Reserved, zero (113..128).
    pub const RESERVED: u64 = 113;
}

/// How an entry's bytes are rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Copy `src_len` bytes of the old file (unchanged, moved or renamed): no payload.
    Copy,
    /// The payload is the bytes.
    Raw,
    /// The payload is a zstd frame of the bytes.
    Zstd,
    /// A zstd frame made with the old file's `src` range as reference prefix.
    ZstdPrefix,
    /// A zstd frame of (new XOR old `src`), byte-grouped by `group`.
    XorZstd,
    /// An lz4 block of the bytes.
    Lz4,
    /// An lz4 block of (new XOR old `src`), byte-grouped by `group`.
    XorLz4,
    /// A zstd frame of the delta of new and old `src`: float-aware for `group` 2 and 4, bytes
    /// for any other width, byte-grouped by `group`.
    DeltaZstd,
    /// An lz4 block of the same.
    DeltaLz4,
}

impl Method {
    /// The code stored in an entry record.
    pub fn code(self) -> u8 {
        match self {
            Method::Copy => 0,
            Method::Raw => 1,
            Method::Zstd => 2,
            Method::ZstdPrefix => 3,
            Method::XorZstd => 4,
            Method::Lz4 => 5,
            Method::XorLz4 => 6,
            Method::DeltaZstd => 7,
            Method::DeltaLz4 => 8,
        }
    }

    /// The method a stored code names.
    pub fn from_code(c: u8) -> Option<Method> {
        Some(match c {
            0 => Method::Copy,
            1 => Method::Raw,
            2 => Method::Zstd,
            3 => Method::ZstdPrefix,
            4 => Method::XorZstd,
            5 => Method::Lz4,
            6 => Method::XorLz4,
            7 => Method::DeltaZstd,
            8 => Method::DeltaLz4,
            _ => return None,
        })
    }

    /// Name used in reports (`copy`, `xor+zstd`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Method::Copy => "copy",
            Method::Raw => "raw",
            Method::Zstd => "zstd",
            Method::ZstdPrefix => "zstd-prefix",
            Method::XorZstd => "xor+zstd",
            Method::Lz4 => "lz4",
            Method::XorLz4 => "xor+lz4",
            Method::DeltaZstd => "delta+zstd",
            Method::DeltaLz4 => "delta+lz4",
        }
    }

    /// True for the methods that read a range of the old file.
    pub fn uses_source(self) -> bool {
        matches!(self, Method::Copy | Method::ZstdPrefix) || self.is_xor() || self.is_delta()
    }

    /// True for the XOR methods, whose source is as long as the output.
    pub fn is_xor(self) -> bool {
        matches!(self, Method::XorZstd | Method::XorLz4)
    }

    /// True for the float-aware delta methods, whose source is as long as the output.
    pub fn is_delta(self) -> bool {
        matches!(self, Method::DeltaZstd | Method::DeltaLz4)
    }
}

/// What an entry covers in the new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Bytes outside any tensor (headers, metadata, padding, unknown files).
    Bytes,
    /// One tensor's (or one blob section's) stored bytes.
    Tensor,
}

/// Codec family an update was made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecFamily {
    /// zstd (smallest updates).
    Zstd,
    /// lz4 (fastest decode on small CPUs).
    Lz4,
}

/// The header's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Length of the base (old) file.
    pub base_len: u64,
    /// BLAKE3 of the base file.
    pub base_hash: [u8; 32],
    /// Length of the result (new) file.
    pub result_len: u64,
    /// BLAKE3 of the result file.
    pub result_hash: [u8; 32],
    /// Codec family.
    pub codec: CodecFamily,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRecord {
    /// Name: a tensor name, or `[bytes A..B]` for byte-level pieces.
    pub name: String,
    /// What the entry covers.
    pub kind: EntryKind,
    /// How it is coded.
    pub method: Method,
    /// Byte-grouping width of the XOR methods (1 = none).
    pub group: u8,
    /// Bytes the entry produces.
    pub out_len: u64,
    /// Start of the old-file range it reads (0 when none).
    pub src_offset: u64,
    /// Length of that range (0 when none).
    pub src_len: u64,
    /// Payload length.
    pub payload_len: u64,
    /// BLAKE3 of the bytes it produces.
    pub hash: [u8; 32],
}

/// A parsed update: header, entries, and where each payload and record sits.
#[derive(Clone, Debug)]
pub struct Update {
    /// The header.
    pub header: Header,
    /// Entries in output order.
    pub entries: Vec<EntryRecord>,
    /// Absolute offset of each entry's record.
    pub record_offsets: Vec<u64>,
    /// Absolute offset of each entry's payload.
    pub payload_offsets: Vec<u64>,
    /// Offset of the trailer.
    pub trailer_offset: u64,
}

fn get<const N: usize>(b: &[u8], at: u64) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at as usize..at as usize + N]);
    out
}

fn u64_at(b: &[u8], at: u64) -> u64 {
    u64::from_le_bytes(get(b, at))
}

fn need(what: &'static str, offset: u64, n: u64, len: u64) -> Result<u64, DeltaError> {
    let end = offset.checked_add(n).ok_or(DeltaError::Truncated { what, offset, end: u64::MAX, len })?;
    if end > len {
        return Err(DeltaError::Truncated { what, offset, end, len });
    }
    Ok(end)
}

/// Parses an update's header and directory, checking every field against the file's length
/// and against each other. Payloads are not decoded and the trailer is not checked
/// ([`verify_trailer`]).
pub fn parse(b: &[u8]) -> Result<Update, DeltaError> {
    let len = b.len() as u64;
    if len < 8 || b[..8] != MAGIC {
        return Err(DeltaError::BadMagic { found: b[..b.len().min(8)].to_vec() });
    }
    need("header", 0, HEADER_LEN, len)?;
    let version = u32::from_le_bytes(get(b, field::VERSION));
    if version != VERSION {
        return Err(DeltaError::UnsupportedVersion { offset: field::VERSION, version });
    }
    let count = u32::from_le_bytes(get(b, field::ENTRY_COUNT)) as u64;
    let base_len = u64_at(b, field::BASE_LEN);
    let result_len = u64_at(b, field::RESULT_LEN);
    let dir_len = u64_at(b, field::DIR_LEN);
    let payload_len = u64_at(b, field::PAYLOAD_LEN);
    let codec = match b[field::CODEC as usize] {
        0 => CodecFamily::Zstd,
        1 => CodecFamily::Lz4,
        _ => return Err(DeltaError::Reserved { offset: field::CODEC }),
    };
    if b[field::RESERVED as usize..HEADER_LEN as usize].iter().any(|&x| x != 0) {
        return Err(DeltaError::Reserved { offset: field::RESERVED });
    }
    let header = Header {
        base_len,
        base_hash: get(b, field::BASE_HASH),
        result_len,
        result_hash: get(b, field::RESULT_HASH),
        codec,
    };
    let dir_end = need("directory", HEADER_LEN, dir_len, len)?;
    let payload_end = need("payloads", dir_end, payload_len, len)?;
    let trailer_offset = payload_end;
    let end = need("trailer", trailer_offset, TRAILER_LEN, len)?;
    if end < len {
        return Err(DeltaError::TrailingBytes { offset: end, extra: len - end });
    }
    if count > dir_len / RECORD_FIXED_LEN {
        return Err(DeltaError::TooManyEntries { offset: field::ENTRY_COUNT, count, dir_len });
    }
    // count is bounded by the directory's real length, so this allocation is too.
    let mut entries = Vec::with_capacity(count as usize);
    let mut record_offsets = Vec::with_capacity(count as usize);
    let mut payload_offsets = Vec::with_capacity(count as usize);
    let mut at = HEADER_LEN;
    let mut payload_at = dir_end;
    let mut out_total: u64 = 0;
    for index in 0..count as usize {
        let rec = at;
        need("entry record", rec, RECORD_FIXED_LEN, dir_end)?;
        let method_code = b[rec as usize];
        let group = b[rec as usize + 1];
        let kind_code = b[rec as usize + 2];
        let name_len = u16::from_le_bytes(get(b, rec + 4)) as usize;
        if b[rec as usize + 3] != 0 || b[rec as usize + 6] != 0 || b[rec as usize + 7] != 0 {
            return Err(DeltaError::Reserved { offset: rec + 3 });
        }
        let out_len = u64_at(b, rec + 8);
        let src_offset = u64_at(b, rec + 16);
        let src_len = u64_at(b, rec + 24);
        let entry_payload = u64_at(b, rec + 32);
        let hash: [u8; 32] = get(b, rec + 40);
        let name_at = rec + RECORD_FIXED_LEN;
        if name_len > MAX_NAME_LEN {
            return Err(DeltaError::BadName { index, offset: rec + 4, reason: "longer than 4096 bytes" });
        }
        let next = need("entry name", name_at, name_len as u64, dir_end)?;
        let name = std::str::from_utf8(&b[name_at as usize..next as usize])
            .map_err(|_| DeltaError::BadName { index, offset: name_at, reason: "not UTF-8" })?
            .to_string();
        let bad = |reason: String| DeltaError::BadEntry { index, name: name.clone(), offset: rec, reason };
        let method =
            Method::from_code(method_code).ok_or_else(|| bad(format!("unknown method {method_code}")))?;
        let kind = match kind_code {
            0 => EntryKind::Bytes,
            1 => EntryKind::Tensor,
            k => return Err(bad(format!("unknown kind {k}"))),
        };
        let group_ok = if method.is_xor() || method.is_delta() { group != 0 } else { group == 1 };
        if !group_ok {
            return Err(bad(format!("group width {group} is not valid for {}", method.name())));
        }
        if method.uses_source() {
            let src_end = src_offset.checked_add(src_len);
            if src_end.is_none_or(|e| e > base_len) {
                return Err(bad(format!(
                    "old range {src_offset}+{src_len} is outside the base of {base_len} bytes"
                )));
            }
        } else if src_offset != 0 || src_len != 0 {
            return Err(bad(format!("{} reads no old range but one is given", method.name())));
        }
        let consistent = match method {
            Method::Copy => src_len == out_len && entry_payload == 0,
            Method::Raw => entry_payload == out_len,
            Method::XorZstd | Method::XorLz4 | Method::DeltaZstd | Method::DeltaLz4 => src_len == out_len,
            _ => true,
        };
        if !consistent {
            return Err(bad(format!(
                "lengths out {out_len}, old {src_len}, payload {entry_payload} do not fit {}",
                method.name()
            )));
        }
        let ratio = match method {
            Method::Zstd | Method::ZstdPrefix | Method::XorZstd | Method::DeltaZstd => Some(MAX_ZSTD_RATIO),
            Method::Lz4 | Method::XorLz4 | Method::DeltaLz4 => Some(MAX_LZ4_RATIO),
            _ => None,
        };
        if let Some(r) = ratio {
            if out_len > entry_payload.saturating_mul(r).saturating_add(64) {
                return Err(bad(format!(
                    "claims {out_len} bytes from a {entry_payload}-byte payload, more than {} can produce",
                    method.name()
                )));
            }
        }
        out_total =
            out_total.checked_add(out_len).ok_or_else(|| bad("output lengths overflow".to_string()))?;
        let p_end = payload_at.checked_add(entry_payload).filter(|&e| e <= payload_end);
        let Some(p_end) = p_end else {
            return Err(bad(format!("payload of {entry_payload} bytes runs past the payload region")));
        };
        entries.push(EntryRecord {
            name,
            kind,
            method,
            group,
            out_len,
            src_offset,
            src_len,
            payload_len: entry_payload,
            hash,
        });
        record_offsets.push(rec);
        payload_offsets.push(payload_at);
        payload_at = p_end;
        at = next;
    }
    if at != dir_end {
        return Err(DeltaError::LengthMismatch {
            field: "directory length",
            offset: field::DIR_LEN,
            expected: at - HEADER_LEN,
            found: dir_len,
        });
    }
    if payload_at != payload_end {
        return Err(DeltaError::LengthMismatch {
            field: "payload length",
            offset: field::PAYLOAD_LEN,
            expected: payload_at - dir_end,
            found: payload_len,
        });
    }
    if out_total != result_len {
        return Err(DeltaError::LengthMismatch {
            field: "result length",
            offset: field::RESULT_LEN,
            expected: out_total,
            found: result_len,
        });
    }
    Ok(Update { header, entries, record_offsets, payload_offsets, trailer_offset })
}

/// Checks the trailer: BLAKE3 of every byte before it.
pub fn verify_trailer(b: &[u8], update: &Update) -> Result<(), DeltaError> {
    let t = update.trailer_offset as usize;
    let computed = blake3::Hasher::new().update_rayon(&b[..t]).finalize();
    if computed.as_bytes()[..] != b[t..t + TRAILER_LEN as usize] {
        return Err(DeltaError::UpdateChecksum { offset: update.trailer_offset });
    }
    Ok(())
}

/// Writes an update: header, directory, the payloads (read from `payloads`: each entry's
/// `payload_len` bytes, in entry order, back to back), trailer. Payloads are copied through a
/// 1 MiB buffer, so they may come from a file much larger than memory.
pub fn write<W: Write, R: std::io::Read>(
    out: &mut W,
    header: &Header,
    entries: &[EntryRecord],
    payloads: &mut R,
) -> std::io::Result<u64> {
    let mut dir = Vec::new();
    for e in entries {
        dir.push(e.method.code());
        dir.push(e.group);
        dir.push(match e.kind {
            EntryKind::Bytes => 0,
            EntryKind::Tensor => 1,
        });
        dir.push(0);
        let name = e.name.as_bytes();
        dir.extend_from_slice(&(name.len() as u16).to_le_bytes());
        dir.extend_from_slice(&[0, 0]);
        for v in [e.out_len, e.src_offset, e.src_len, e.payload_len] {
            dir.extend_from_slice(&v.to_le_bytes());
        }
        dir.extend_from_slice(&e.hash);
        dir.extend_from_slice(name);
    }
    let payload_len: u64 = entries.iter().map(|e| e.payload_len).sum();
    let mut head = [0u8; HEADER_LEN as usize];
    head[..8].copy_from_slice(&MAGIC);
    head[8..12].copy_from_slice(&VERSION.to_le_bytes());
    head[12..16].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    head[16..24].copy_from_slice(&header.base_len.to_le_bytes());
    head[24..56].copy_from_slice(&header.base_hash);
    head[56..64].copy_from_slice(&header.result_len.to_le_bytes());
    head[64..96].copy_from_slice(&header.result_hash);
    head[96..104].copy_from_slice(&(dir.len() as u64).to_le_bytes());
    head[104..112].copy_from_slice(&payload_len.to_le_bytes());
    head[112] = match header.codec {
        CodecFamily::Zstd => 0,
        CodecFamily::Lz4 => 1,
    };
    let mut hasher = blake3::Hasher::new();
    let mut put = |out: &mut W, bytes: &[u8]| -> std::io::Result<()> {
        hasher.update(bytes);
        out.write_all(bytes)
    };
    put(out, &head)?;
    put(out, &dir)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = payload_len;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        payloads.read_exact(&mut buf[..n])?;
        put(out, &buf[..n])?;
        left -= n as u64;
    }
    out.write_all(hasher.finalize().as_bytes())?;
    Ok(HEADER_LEN + dir.len() as u64 + payload_len + TRAILER_LEN)
}
