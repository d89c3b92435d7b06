//! Making an update: cut both files into pieces ([`crate::segment`]), match tensors by name
//! (and unchanged tensors that moved or were renamed by hash), and code each new piece the
//! smallest way among the candidates its codec family allows (docs/delta-format.md,
//! "Choosing a method").

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use bytes::Bytes;

use crate::codec;
use crate::format::{self, CodecFamily, EntryKind, EntryRecord, Header, Method};
use crate::segment::{self, FileKind, Piece};
use crate::transform;
use crate::DeltaError;

/// Byte-level regions are coded in chunks of this size, which bounds `patch`'s buffer for them.
pub const BYTES_CHUNK: u64 = 16 << 20;
/// A byte-level chunk may match old bytes this far before or after its own position.
const PREFIX_MARGIN: u64 = 48 << 20;
/// Pieces larger than this pick their method by trial at a fast level, then the winner is
/// coded at the requested level.
const PROBE_ABOVE: usize = 1 << 20;
/// The level trials run at.
const PROBE_LEVEL: i32 = 3;

/// What `diff` may use.
#[derive(Clone, Copy, Debug)]
pub struct DiffOptions {
    /// zstd (smallest) or lz4 (fastest decode; no reference prefix, as lz4's dictionary holds
    /// only 64 KiB).
    pub codec: CodecFamily,
    /// zstd level (1..=22); ignored for lz4.
    pub level: i32,
    /// Byte-level regions are coded in chunks of this many bytes (default [`BYTES_CHUNK`]);
    /// `patch` holds one chunk in memory.
    pub chunk: u64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions { codec: CodecFamily::Zstd, level: DEFAULT_LEVEL, chunk: BYTES_CHUNK }
    }
}

/// The zstd level `diff` uses unless told otherwise.
pub const DEFAULT_LEVEL: i32 = 19;

/// An update ready to be written. Its payloads wait in an anonymous temporary file (in the
/// system's temporary directory, gone when the `Diff` is dropped), so memory holds one entry's
/// candidates at a time, not the update.
#[derive(Debug)]
pub struct Diff {
    header: Header,
    entries: Vec<EntryRecord>,
    payloads: std::fs::File,
    /// What each entry holds and how it was coded.
    pub report: DiffReport,
}

/// What `diff` did, per entry and in total (serialised as `smelt diff --json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct DiffReport {
    /// Schema name and version of this report.
    pub schema: &'static str,
    /// How the old file was read.
    pub old_format: FileKind,
    /// How the new file was read.
    pub new_format: FileKind,
    /// Old file length.
    pub old_bytes: u64,
    /// New file length.
    pub new_bytes: u64,
    /// Update file length.
    pub update_bytes: u64,
    /// Codec family.
    pub codec: CodecFamily,
    /// zstd level.
    pub level: i32,
    /// Entries by method: count, bytes produced, payload bytes.
    pub methods: Vec<MethodTotal>,
    /// One line per entry, in output order.
    pub entries: Vec<EntryReport>,
}

/// Totals of one method.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodTotal {
    /// Method.
    pub method: Method,
    /// Entries coded this way.
    pub entries: usize,
    /// Bytes of the new file they produce.
    pub bytes_before: u64,
    /// Payload bytes they take in the update.
    pub bytes_after: u64,
}

/// One entry of the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EntryReport {
    /// Tensor name or `[bytes A..B]`.
    pub name: String,
    /// Tensor or byte-level piece.
    pub kind: EntryKind,
    /// How it is coded.
    pub method: Method,
    /// Byte-grouping width of an XOR method.
    pub group: u8,
    /// Bytes it produces in the new file.
    pub bytes_before: u64,
    /// Payload bytes in the update.
    pub bytes_after: u64,
    /// The old range it reads, when any.
    pub old_range: Option<[u64; 2]>,
}

impl Diff {
    /// Writes the update; returns its length.
    pub fn write_to<W: Write>(&self, out: &mut W) -> std::io::Result<u64> {
        use std::io::{Seek, SeekFrom};
        let mut payloads = &self.payloads;
        payloads.seek(SeekFrom::Start(0))?;
        format::write(
            out,
            &self.header,
            &self.entries,
            &mut std::io::BufReader::with_capacity(1 << 20, payloads),
        )
    }
}

struct Coded {
    method: Method,
    group: u8,
    src: Range<u64>,
    payload: Vec<u8>,
}

struct Encoder<'a> {
    old: &'a [u8],
    opts: DiffOptions,
}

fn slice<'a>(b: &'a [u8], r: &Range<u64>) -> &'a [u8] {
    &b[r.start as usize..r.end as usize]
}

impl Encoder<'_> {
    /// Codes `new` given an optional same-length old range to XOR with and an optional old
    /// range to use as zstd prefix.
    fn code(
        &self,
        name: &str,
        new: &[u8],
        xor: Option<Range<u64>>,
        prefix: Option<Range<u64>>,
        widths: &[u8],
    ) -> Result<Coded, DeltaError> {
        let enc = |reason: String| DeltaError::Encode { name: name.to_string(), reason };
        if let Some(x) = &xor {
            if slice(self.old, x) == new {
                return Ok(Coded { method: Method::Copy, group: 1, src: x.clone(), payload: Vec::new() });
            }
        }
        let mut widths: Vec<u8> = widths.iter().copied().filter(|&w| w >= 1).collect();
        widths.dedup();
        if !widths.contains(&1) {
            widths.push(1);
        }
        let lz4 = self.opts.codec == CodecFamily::Lz4;
        let level = self.opts.level;
        let trial = if lz4 || new.len() <= PROBE_ABOVE { level } else { level.min(PROBE_LEVEL) };
        let zstd = |src: &[u8], pre: &[u8], lvl: i32| codec::zstd_compress(src, pre, lvl).map_err(&enc);
        // (method, group, src, payload at trial level, transformed input kept for a re-encode)
        let mut best: Option<(Coded, Option<Vec<u8>>)> = None;
        let mut consider = |c: Coded, input: Option<Vec<u8>>| {
            if best.as_ref().is_none_or(|(b, _)| c.payload.len() < b.payload.len()) {
                best = Some((c, input));
            }
        };
        if let Some(x) = &xor {
            for &w in &widths {
                let grouped = transform::xor_group(new, slice(self.old, x), w as usize);
                let (method, payload) = if lz4 {
                    (Method::XorLz4, codec::lz4_compress(&grouped))
                } else {
                    (Method::XorZstd, zstd(&grouped, &[], trial)?)
                };
                consider(Coded { method, group: w, src: x.clone(), payload }, Some(grouped));
            }
        }
        if let Some(x) = &xor {
            for &w in &widths {
                let d = transform::delta_group(new, slice(self.old, x), w as usize);
                let (method, payload) = if lz4 {
                    (Method::DeltaLz4, codec::lz4_compress(&d))
                } else {
                    (Method::DeltaZstd, zstd(&d, &[], trial)?)
                };
                consider(Coded { method, group: w, src: x.clone(), payload }, Some(d));
            }
        }
        if lz4 {
            consider(
                Coded { method: Method::Lz4, group: 1, src: 0..0, payload: codec::lz4_compress(new) },
                None,
            );
        } else {
            if let Some(p) = prefix.as_ref().filter(|p| !p.is_empty()) {
                let payload = zstd(new, slice(self.old, p), trial)?;
                consider(Coded { method: Method::ZstdPrefix, group: 1, src: p.clone(), payload }, None);
            }
            consider(
                Coded { method: Method::Zstd, group: 1, src: 0..0, payload: zstd(new, &[], trial)? },
                None,
            );
        }
        let Some((mut c, input)) = best else { unreachable!("the plain candidate is always considered") };
        if trial != level && !lz4 {
            let again = match c.method {
                Method::XorZstd | Method::DeltaZstd => zstd(input.as_deref().unwrap_or(new), &[], level)?,
                Method::ZstdPrefix => zstd(new, slice(self.old, &c.src), level)?,
                _ => zstd(new, &[], level)?,
            };
            if again.len() < c.payload.len() {
                c.payload = again;
            }
        }
        if c.payload.len() >= new.len() {
            return Ok(Coded { method: Method::Raw, group: 1, src: 0..0, payload: new.to_vec() });
        }
        Ok(c)
    }
}

/// Makes the update that turns `old` into `new`. The hints name the files (for the readers'
/// messages, and an `.onnx` extension marks ONNX, which has no magic).
pub fn diff(
    old: &Bytes,
    new: &Bytes,
    old_hint: &Path,
    new_hint: &Path,
    opts: DiffOptions,
) -> Result<Diff, DeltaError> {
    let ol = segment::layout(old, old_hint);
    let nl = segment::layout(new, new_hint);
    let both = ol.kind != FileKind::Bytes && nl.kind != FileKind::Bytes;
    let enc = Encoder { old, opts };
    let mut out = Spill::new()?;

    if both {
        let old_tensors: HashMap<&str, &Piece> =
            ol.pieces.iter().filter(|p| p.kind == EntryKind::Tensor).map(|p| (p.name.as_str(), p)).collect();
        let mut old_by_hash: HashMap<[u8; 32], Range<u64>> = HashMap::new();
        for p in ol.pieces.iter().filter(|p| p.kind == EntryKind::Tensor) {
            old_by_hash
                .entry(*blake3::hash(slice(old, &(p.start..p.end))).as_bytes())
                .or_insert(p.start..p.end);
        }
        let old_gaps: Vec<&Piece> = ol.pieces.iter().filter(|p| p.kind == EntryKind::Bytes).collect();
        let mut gap_index = 0;
        for p in &nl.pieces {
            let nb = slice(new, &(p.start..p.end));
            if p.kind == EntryKind::Tensor {
                let hash = *blake3::hash(nb).as_bytes();
                let same = old_tensors.get(p.name.as_str()).map(|o| o.start..o.end);
                let coded = match (&same, old_by_hash.get(&hash)) {
                    (Some(s), _) if slice(old, s) == nb => {
                        Coded { method: Method::Copy, group: 1, src: s.clone(), payload: Vec::new() }
                    }
                    (_, Some(m)) if slice(old, m) == nb => {
                        Coded { method: Method::Copy, group: 1, src: m.clone(), payload: Vec::new() }
                    }
                    _ => {
                        let xor = same.clone().filter(|s| s.end - s.start == p.len());
                        let widths = [p.width, 1];
                        enc.code(&p.name, nb, xor, same.clone(), &widths)?
                    }
                };
                out.push((p.name.clone(), EntryKind::Tensor, coded, hash, p.len()))?;
            } else {
                let counterpart = old_gaps.get(gap_index).map(|o| o.start..o.end);
                gap_index += 1;
                code_region(&enc, new, p.start..p.end, counterpart, &mut out)?;
            }
        }
    } else if !new.is_empty() {
        code_region(&enc, new, 0..new.len() as u64, Some(0..old.len() as u64), &mut out)?;
    }

    let header = Header {
        base_len: old.len() as u64,
        base_hash: *blake3::hash(old).as_bytes(),
        result_len: new.len() as u64,
        result_hash: *blake3::hash(new).as_bytes(),
        codec: opts.codec,
    };
    let (list, payloads) = out.finish()?;
    let mut entries = Vec::with_capacity(list.len());
    let mut rows = Vec::with_capacity(list.len());
    let mut dir_len = 0u64;
    let mut payload_total = 0u64;
    for (name, kind, c, hash, out_len) in list {
        let src_used = c.method.uses_source();
        let (src_offset, src_len) = if src_used { (c.src.start, c.src.end - c.src.start) } else { (0, 0) };
        rows.push(EntryReport {
            name: name.clone(),
            kind,
            method: c.method,
            group: c.group,
            bytes_before: out_len,
            bytes_after: c.payload_len,
            old_range: src_used.then_some([c.src.start, c.src.end]),
        });
        payload_total += c.payload_len;
        dir_len += format::RECORD_FIXED_LEN + name.len() as u64;
        entries.push(EntryRecord {
            name,
            kind,
            method: c.method,
            group: c.group,
            out_len,
            src_offset,
            src_len,
            payload_len: c.payload_len,
            hash,
        });
    }
    let report = DiffReport {
        schema: "smelt.diff/1",
        old_format: ol.kind,
        new_format: nl.kind,
        old_bytes: old.len() as u64,
        new_bytes: new.len() as u64,
        update_bytes: format::HEADER_LEN + dir_len + payload_total + format::TRAILER_LEN,
        codec: opts.codec,
        level: opts.level,
        methods: method_totals(&rows),
        entries: rows,
    };
    Ok(Diff { header, entries, payloads, report })
}

fn method_totals(rows: &[EntryReport]) -> Vec<MethodTotal> {
    let mut totals: Vec<MethodTotal> = Vec::new();
    for r in rows {
        match totals.iter_mut().find(|t| t.method == r.method) {
            Some(t) => {
                t.entries += 1;
                t.bytes_before += r.bytes_before;
                t.bytes_after += r.bytes_after;
            }
            None => totals.push(MethodTotal {
                method: r.method,
                entries: 1,
                bytes_before: r.bytes_before,
                bytes_after: r.bytes_after,
            }),
        }
    }
    totals
}

/// An entry once its payload is in the spill file.
struct Spilled {
    method: Method,
    group: u8,
    src: Range<u64>,
    payload_len: u64,
}

/// The entries coded so far; their payloads, back to back, in an anonymous temporary file.
struct Spill {
    file: std::io::BufWriter<std::fs::File>,
    list: Vec<(String, EntryKind, Spilled, [u8; 32], u64)>,
}

impl Spill {
    fn new() -> Result<Spill, DeltaError> {
        let file = tempfile::tempfile().map_err(DeltaError::Write)?;
        Ok(Spill { file: std::io::BufWriter::with_capacity(1 << 20, file), list: Vec::new() })
    }

    fn push(&mut self, e: (String, EntryKind, Coded, [u8; 32], u64)) -> Result<(), DeltaError> {
        let (name, kind, c, hash, out_len) = e;
        self.file.write_all(&c.payload).map_err(DeltaError::Write)?;
        let s = Spilled { method: c.method, group: c.group, src: c.src, payload_len: c.payload.len() as u64 };
        self.list.push((name, kind, s, hash, out_len));
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn finish(self) -> Result<(Vec<(String, EntryKind, Spilled, [u8; 32], u64)>, std::fs::File), DeltaError> {
        let file = self.file.into_inner().map_err(|e| DeltaError::Write(e.into_error()))?;
        Ok((self.list, file))
    }
}

/// Codes a byte-level region of the new file in chunks, each against the same position of
/// the old counterpart region (XOR when it fits, copy when equal) and a window of it around
/// that position (zstd prefix).
fn code_region(
    enc: &Encoder<'_>,
    new: &[u8],
    region: Range<u64>,
    counterpart: Option<Range<u64>>,
    out: &mut Spill,
) -> Result<(), DeltaError> {
    let mut at = region.start;
    while at < region.end {
        let end = (at + enc.opts.chunk.max(1)).min(region.end);
        let len = end - at;
        let nb = slice(new, &(at..end));
        let name = format!("[bytes {at}..{end}]");
        let (xor, prefix) = match &counterpart {
            Some(c) if !c.is_empty() => {
                let o = (c.start + (at - region.start)).min(c.end);
                let xor = (o + len <= c.end).then_some(o..o + len);
                let p0 = o.saturating_sub(PREFIX_MARGIN).max(c.start);
                let p1 = o.saturating_add(len).saturating_add(PREFIX_MARGIN).min(c.end);
                (xor, Some(p0..p1))
            }
            _ => (None, None),
        };
        let coded = enc.code(&name, nb, xor, prefix, &[1])?;
        out.push((name, EntryKind::Bytes, coded, *blake3::hash(nb).as_bytes(), len))?;
        at = end;
    }
    Ok(())
}
