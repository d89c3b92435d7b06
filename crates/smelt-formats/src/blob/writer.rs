//! Streaming blob writer: entries and metadata are declared first, then each tensor's sections
//! are handed over in directory order and written at once, so memory stays bounded by one
//! tensor's compressed data section whatever the model's size.
//!
//! Layout (docs/blob-format.md, "Writing"): when the first tensor arrives, the declared names and
//! metadata fix where the string table, the metadata and the data region go; the writer writes
//! zeros over the header and directory, then the string table and metadata, then the sections
//! as they come. [`BlobWriter::finish`] seeks back to write the directory and the header. The
//! output is always a temporary file the caller renames, so seeking back is harmless.
//!
//! Deterministic: the bytes depend only on the declarations, the sections and the metadata
//! (zero padding, no timestamps, compression single-threaded at the level asked).

use std::collections::HashSet;
use std::io::{Seek, SeekFrom, Write};

use smelt_tensor::DType;

use super::codes::{dtype_code, Codec, EntryFlags, Scheme};
use super::layout::{
    align_up, Header, RawEntry, ENTRY_SIZE, HEADER_FLAG_UNCOMPRESSED, HEADER_SIZE, MAX_RANK, NO_AXIS,
    VERSION_MAJOR, VERSION_MINOR,
};
use super::metadata::{encode_metadata, BlobMetadata};
use super::scheme_rules::{
    first_bad_group_index, section_rules, EntryShape, SchemeRuleError, SectionKind, SectionRules,
};
use crate::limits;

/// Compression asked for an entry's data section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Store as is.
    #[default]
    None,
    /// zstd at `level` (single-threaded).
    Zstd {
        /// zstd compression level (1..=22; 3 is zstd's default).
        level: i32,
    },
    /// lz4 block format (fast to decode on small CPUs).
    Lz4,
}

/// What the caller declares about one tensor before handing over its sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryDecl {
    /// Unique, non-empty name (at most `limits::MAX_NAME_LEN` bytes).
    pub name: String,
    /// How the sections are to be interpreted.
    pub scheme: Scheme,
    /// Dtype of the data section's elements.
    pub dtype: DType,
    /// Logical shape, row-major (at most 8 dims).
    pub dims: Vec<u64>,
    /// Elements per block or group (NF4, int4); 0 otherwise.
    pub block_size: u32,
    /// Quantization axis (int8 per-axis only).
    pub axis: Option<u32>,
    /// Entry flags.
    pub flags: EntryFlags,
    /// Compression of the data section (a section compression would not shrink is stored as is).
    pub compression: Compression,
}

impl EntryDecl {
    /// A plain tensor (scheme `raw`), uncompressed.
    pub fn raw(name: impl Into<String>, dtype: DType, dims: &[u64]) -> EntryDecl {
        EntryDecl {
            name: name.into(),
            scheme: if dtype.is_ggml_block() { Scheme::Ggml } else { Scheme::Raw },
            dtype,
            dims: dims.to_vec(),
            block_size: 0,
            axis: None,
            flags: EntryFlags::NONE,
            compression: Compression::None,
        }
    }

    /// The same declaration with `compression` for its data section.
    pub fn compressed(mut self, compression: Compression) -> EntryDecl {
        self.compression = compression;
        self
    }
}

/// One tensor's sections, as the scheme lays them out (empty slices for absent sections).
#[derive(Clone, Copy, Debug, Default)]
pub struct TensorSections<'a> {
    /// Raw (uncompressed) data.
    pub data: &'a [u8],
    /// Scales.
    pub scales: &'a [u8],
    /// Zero points.
    pub zeros: &'a [u8],
    /// Auxiliary data.
    pub aux: &'a [u8],
}

impl<'a> TensorSections<'a> {
    /// A tensor with only a data section.
    pub fn data(data: &'a [u8]) -> TensorSections<'a> {
        TensorSections { data, ..TensorSections::default() }
    }
}

/// Why the writer refused a call. Refusals happen before anything invalid is written; the
/// output is then incomplete and must be discarded (the caller's temporary file).
#[derive(Debug, thiserror::Error)]
pub enum BlobWriteError {
    /// Writing or seeking failed.
    #[error("writing the blob: {0}")]
    Io(#[from] std::io::Error),
    /// A name that is empty or longer than `limits::MAX_NAME_LEN`.
    #[error("tensor name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name declared twice.
    #[error("tensor '{name}' is declared twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// More than `limits::MAX_TENSORS` entries.
    #[error("more than {max} tensors")]
    TooManyTensors {
        /// The cap.
        max: u64,
    },
    /// A rank above 8.
    #[error("tensor '{name}': rank {rank} exceeds the blob format's 8")]
    RankTooLarge {
        /// The tensor.
        name: String,
        /// The rank.
        rank: usize,
    },
    /// A dtype the format has no code for.
    #[error("tensor '{name}': the blob format cannot store dtype {dtype}")]
    DtypeNotStorable {
        /// The tensor.
        name: String,
        /// The dtype.
        dtype: DType,
    },
    /// The declaration breaks its scheme's rules.
    #[error("tensor '{name}': {source}")]
    Scheme {
        /// The tensor.
        name: String,
        /// Which rule.
        source: SchemeRuleError,
    },
    /// A section handed over with another length than the declaration requires.
    #[error("tensor '{name}' {section}: {found} bytes given, its declaration needs {expected}")]
    SectionLength {
        /// The tensor.
        name: String,
        /// The section.
        section: SectionKind,
        /// Length required (for optional sections: the length when present).
        expected: u64,
        /// Length given.
        found: u64,
    },
    /// An int4 `g_idx` value outside the tensor's groups.
    #[error("tensor '{name}' g_idx: column {column} has group {value}, there are {groups} groups")]
    GroupIndexOutOfRange {
        /// The tensor.
        name: String,
        /// Column.
        column: u64,
        /// Value given.
        value: i32,
        /// Number of groups.
        groups: u64,
    },
    /// `declare` or `set_metadata` after the first tensor's sections were written.
    #[error("{what} after tensor data was written: declare every entry and the metadata first")]
    TooLate {
        /// What was attempted.
        what: &'static str,
    },
    /// More tensors handed over than declared.
    #[error("tensor {index} handed over, but only {declared} were declared")]
    NotDeclared {
        /// Index of the extra tensor.
        index: usize,
        /// Number declared.
        declared: usize,
    },
    /// `finish` before every declared tensor was handed over.
    #[error("finish after {written} of {declared} declared tensors")]
    Unfinished {
        /// Tensors written.
        written: usize,
        /// Tensors declared.
        declared: usize,
    },
    /// The compressor failed.
    #[error("tensor '{name}': compression failed: {reason}")]
    Compression {
        /// The tensor.
        name: String,
        /// The compressor's message.
        reason: String,
    },
    /// The file would be larger than 2^64 bytes.
    #[error("the blob would exceed 2^64 bytes")]
    TooLarge,
}

struct Declared {
    decl: EntryDecl,
    rules: SectionRules,
    entry: RawEntry,
}

/// Where the regions go, fixed when the first tensor's sections arrive.
#[derive(Clone, Copy)]
struct Layout {
    strtab_offset: u64,
    meta_offset: u64,
    data_offset: u64,
}

/// Writes one blob to `W` (a temporary file the caller renames when [`BlobWriter::finish`]
/// returns). Wrap a `File` in a `BufWriter`: the writer issues small writes for padding.
pub struct BlobWriter<W: Write + Seek> {
    out: W,
    /// Stream position of the blob's first byte.
    base: u64,
    declared: Vec<Declared>,
    names: HashSet<String>,
    strtab: Vec<u8>,
    metadata: Vec<u8>,
    layout: Option<Layout>,
    /// Position relative to `base` once writing started.
    pos: u64,
    written: usize,
}

const ZEROS: [u8; 64] = [0; 64];

impl<W: Write + Seek> BlobWriter<W> {
    /// A writer that starts the blob at `out`'s current position.
    pub fn new(mut out: W) -> Result<BlobWriter<W>, BlobWriteError> {
        let base = out.stream_position()?;
        Ok(BlobWriter {
            out,
            base,
            declared: Vec::new(),
            names: HashSet::new(),
            strtab: Vec::new(),
            metadata: Vec::new(),
            layout: None,
            pos: 0,
            written: 0,
        })
    }

    /// A writer with every entry and the metadata declared.
    pub fn with_entries(
        out: W,
        metadata: Option<&BlobMetadata>,
        decls: impl IntoIterator<Item = EntryDecl>,
    ) -> Result<BlobWriter<W>, BlobWriteError> {
        let mut w = BlobWriter::new(out)?;
        if let Some(m) = metadata {
            w.set_metadata(m)?;
        }
        for d in decls {
            w.declare(d)?;
        }
        Ok(w)
    }

    /// Sets the metadata section (before any tensor is written). An empty message gives no
    /// metadata section.
    pub fn set_metadata(&mut self, meta: &BlobMetadata) -> Result<(), BlobWriteError> {
        if self.layout.is_some() {
            return Err(BlobWriteError::TooLate { what: "set_metadata" });
        }
        self.metadata = encode_metadata(meta);
        Ok(())
    }

    /// Declares the next entry (before any tensor is written), checking it against its
    /// scheme's rules.
    pub fn declare(&mut self, decl: EntryDecl) -> Result<(), BlobWriteError> {
        if self.layout.is_some() {
            return Err(BlobWriteError::TooLate { what: "declare" });
        }
        let name = &decl.name;
        if name.is_empty() {
            return Err(BlobWriteError::InvalidName { name: name.clone(), reason: "empty" });
        }
        if name.len() as u64 > limits::MAX_NAME_LEN {
            return Err(BlobWriteError::InvalidName { name: name.clone(), reason: "longer than 4096 bytes" });
        }
        if self.names.contains(name) {
            return Err(BlobWriteError::DuplicateName { name: name.clone() });
        }
        if self.declared.len() as u64 >= limits::MAX_TENSORS {
            return Err(BlobWriteError::TooManyTensors { max: limits::MAX_TENSORS });
        }
        if decl.dims.len() > MAX_RANK {
            return Err(BlobWriteError::RankTooLarge { name: name.clone(), rank: decl.dims.len() });
        }
        let dtype = dtype_code(decl.dtype)
            .ok_or_else(|| BlobWriteError::DtypeNotStorable { name: name.clone(), dtype: decl.dtype })?;
        let axis = decl.axis.unwrap_or(NO_AXIS);
        let shape = EntryShape {
            scheme: decl.scheme,
            dtype: decl.dtype,
            dims: &decl.dims,
            block_size: decl.block_size,
            axis,
            flags: decl.flags,
        };
        let rules =
            section_rules(&shape).map_err(|source| BlobWriteError::Scheme { name: name.clone(), source })?;
        let mut dims = [0u64; MAX_RANK];
        dims[..decl.dims.len()].copy_from_slice(&decl.dims);
        // name_offset fits in u32: at most 2^20 names of at most 4096 bytes.
        let entry = RawEntry {
            name_offset: self.strtab.len() as u32,
            name_len: name.len() as u32,
            scheme: decl.scheme.code(),
            dtype,
            rank: decl.dims.len() as u8,
            flags: decl.flags.0,
            block_size: decl.block_size,
            axis,
            dims,
            data_raw_len: rules.data_raw_len,
            ..RawEntry::default()
        };
        self.strtab.extend_from_slice(name.as_bytes());
        self.names.insert(name.clone());
        self.declared.push(Declared { decl, rules, entry });
        Ok(())
    }

    /// Number of entries declared.
    pub fn declared(&self) -> usize {
        self.declared.len()
    }

    /// Writes the next declared tensor's sections.
    pub fn write_tensor(&mut self, sections: TensorSections<'_>) -> Result<(), BlobWriteError> {
        if self.layout.is_none() {
            self.start()?;
        }
        let index = self.written;
        let declared = self.declared.len();
        let d = self.declared.get(index).ok_or(BlobWriteError::NotDeclared { index, declared })?;
        let name = &d.decl.name;
        let length = |section, expected: u64, found: usize| BlobWriteError::SectionLength {
            name: name.clone(),
            section,
            expected,
            found: found as u64,
        };
        if sections.data.len() as u64 != d.rules.data_raw_len {
            return Err(length(SectionKind::Data, d.rules.data_raw_len, sections.data.len()));
        }
        for (kind, bytes) in [
            (SectionKind::Scales, sections.scales),
            (SectionKind::Zeros, sections.zeros),
            (SectionKind::Aux, sections.aux),
        ] {
            let rule = d.rules.rule(kind);
            if !rule.allows_len(bytes.len() as u64) {
                return Err(length(kind, rule.expected_len(), bytes.len()));
            }
        }
        if let Some(groups) = d.rules.groups {
            if let Some((column, value)) = first_bad_group_index(sections.aux, groups) {
                return Err(BlobWriteError::GroupIndexOutOfRange {
                    name: name.clone(),
                    column,
                    value,
                    groups,
                });
            }
        }

        let compressed = compress(name, sections.data, d.decl.compression)?;
        let (codec, stored): (Codec, &[u8]) = match &compressed {
            Some((codec, bytes)) => (*codec, bytes),
            None => (Codec::None, sections.data),
        };
        let rules = d.rules;
        let mut crc = crc32fast::Hasher::new();
        let data_at = self.write_section(stored, &mut crc)?;
        let scales_at = self.write_section(sections.scales, &mut crc)?;
        let zeros_at = self.write_section(sections.zeros, &mut crc)?;
        let aux_at = self.write_section(sections.aux, &mut crc)?;

        let code = |kind: SectionKind, len: usize| {
            // dtype_code is Some for every dtype the rules name (F32, U8, I8, I32).
            if len == 0 {
                0
            } else {
                rules.rule(kind).dtype().and_then(dtype_code).unwrap_or(0)
            }
        };
        let e = &mut self.declared[index].entry;
        e.codec = codec.code();
        e.data_offset = data_at;
        e.data_stored_len = stored.len() as u64;
        e.scales_offset = scales_at;
        e.scales_len = sections.scales.len() as u64;
        e.zeros_offset = zeros_at;
        e.zeros_len = sections.zeros.len() as u64;
        e.aux_offset = aux_at;
        e.aux_len = sections.aux.len() as u64;
        e.scales_dtype = code(SectionKind::Scales, sections.scales.len());
        e.zeros_dtype = code(SectionKind::Zeros, sections.zeros.len());
        e.aux_dtype = code(SectionKind::Aux, sections.aux.len());
        e.crc = crc.finalize();
        self.written += 1;
        Ok(())
    }

    /// Writes the directory and the header and returns the output, positioned at the blob's end.
    pub fn finish(mut self) -> Result<W, BlobWriteError> {
        if self.layout.is_none() {
            self.start()?;
        }
        if self.written != self.declared.len() {
            return Err(BlobWriteError::Unfinished { written: self.written, declared: self.declared.len() });
        }
        let layout = self.layout.unwrap_or(Layout { strtab_offset: 0, meta_offset: 0, data_offset: 0 });
        let mut dir_crc = crc32fast::Hasher::new();
        let mut directory = Vec::with_capacity(self.declared.len() * ENTRY_SIZE as usize);
        for d in &self.declared {
            directory.extend_from_slice(&d.entry.encode());
        }
        dir_crc.update(&directory);
        dir_crc.update(&self.strtab);
        let all_raw = self.declared.iter().all(|d| d.entry.codec == Codec::None.code());
        let header = Header {
            version_major: VERSION_MAJOR,
            version_minor: VERSION_MINOR,
            header_size: HEADER_SIZE as u32,
            dir_entry_size: ENTRY_SIZE as u32,
            tensor_count: self.declared.len() as u32,
            dir_offset: HEADER_SIZE,
            strtab_offset: layout.strtab_offset,
            strtab_size: self.strtab.len() as u64,
            meta_offset: layout.meta_offset,
            meta_size: self.metadata.len() as u64,
            data_offset: layout.data_offset,
            data_size: self.pos - layout.data_offset,
            file_size: self.pos,
            flags: if all_raw { HEADER_FLAG_UNCOMPRESSED } else { 0 },
            dir_crc: dir_crc.finalize(),
            meta_crc: if self.metadata.is_empty() { 0 } else { crc32fast::hash(&self.metadata) },
            reserved: [0; 20],
            header_crc: 0,
        };
        self.out.seek(SeekFrom::Start(self.base))?;
        self.out.write_all(&header.encode())?;
        self.out.write_all(&directory)?;
        let end = self.base.checked_add(self.pos).ok_or(BlobWriteError::TooLarge)?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Fixes the layout and writes everything before the data region.
    fn start(&mut self) -> Result<(), BlobWriteError> {
        let count = self.declared.len() as u64;
        let dir_end = HEADER_SIZE + count * ENTRY_SIZE;
        let strtab_end = dir_end + self.strtab.len() as u64;
        let (meta_offset, meta_end) = if self.metadata.is_empty() {
            (0, strtab_end)
        } else {
            let at = align_up(strtab_end).ok_or(BlobWriteError::TooLarge)?;
            (at, at + self.metadata.len() as u64)
        };
        let data_offset = align_up(meta_end).ok_or(BlobWriteError::TooLarge)?;
        self.layout = Some(Layout { strtab_offset: dir_end, meta_offset, data_offset });

        // Zeros stand in for the header and directory until finish.
        self.pos = 0;
        self.write_zeros(dir_end)?;
        let strtab = std::mem::take(&mut self.strtab);
        self.write_bytes(&strtab)?;
        self.strtab = strtab;
        if meta_offset != 0 {
            self.write_zeros(meta_offset - self.pos)?;
            let meta = std::mem::take(&mut self.metadata);
            self.write_bytes(&meta)?;
            self.metadata = meta;
        }
        self.write_zeros(data_offset - self.pos)
    }

    /// Writes one section at the next aligned position; returns its offset (0 when empty).
    fn write_section(&mut self, bytes: &[u8], crc: &mut crc32fast::Hasher) -> Result<u64, BlobWriteError> {
        if bytes.is_empty() {
            return Ok(0);
        }
        let at = align_up(self.pos).ok_or(BlobWriteError::TooLarge)?;
        self.write_zeros(at - self.pos)?;
        // Piece by piece, each checksummed right after it was written (while the writer's
        // copy left it in the core's cache), rather than the whole section read again.
        for piece in bytes.chunks(1 << 20) {
            self.write_bytes(piece)?;
            crc.update(piece);
        }
        Ok(at)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), BlobWriteError> {
        self.pos = self.pos.checked_add(bytes.len() as u64).ok_or(BlobWriteError::TooLarge)?;
        self.out.write_all(bytes)?;
        Ok(())
    }

    fn write_zeros(&mut self, mut n: u64) -> Result<(), BlobWriteError> {
        while n > 0 {
            let k = n.min(ZEROS.len() as u64) as usize;
            self.write_bytes(&ZEROS[..k])?;
            n -= k as u64;
        }
        Ok(())
    }
}

/// `data` compressed as asked, or `None` when it is to be stored as is (no compression asked,
/// or compression would not make it smaller).
fn compress(name: &str, data: &[u8], how: Compression) -> Result<Option<(Codec, Vec<u8>)>, BlobWriteError> {
    let (codec, bytes) = match how {
        Compression::None => return Ok(None),
        Compression::Zstd { level } => {
            let bytes = zstd::bulk::compress(data, level)
                .map_err(|e| BlobWriteError::Compression { name: name.to_owned(), reason: e.to_string() })?;
            (Codec::Zstd, bytes)
        }
        Compression::Lz4 => (Codec::Lz4, lz4_flex::block::compress(data)),
    };
    Ok((bytes.len() < data.len()).then_some((codec, bytes)))
}
