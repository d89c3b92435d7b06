//! The smelt blob (`.smelt`): smelt's own output format for the device side, specified in
//! docs/blob-format.md. A fixed 128-byte header, a fixed-width directory, a string table, an
//! optional protobuf metadata section, then 64-byte-aligned data sections that a device can map
//! or DMA straight into its kernels; every byte a reader interprets is covered by a CRC-32.
//!
//! - [`BlobWriter`] streams a blob out: entries declared first, then each tensor's sections in
//!   order, at most one tensor's compressed data in memory, deterministic bytes.
//! - [`parse`] / [`read`] check a blob as the spec's "Reader obligations" list (each failure a
//!   [`BlobError`] variant with its byte offset) and hand out zero-copy [`Entry`]s. [`read`]
//!   also verifies every tensor's CRC; [`read_unverified`] leaves that to
//!   [`Blob::verify_checksums`], as a device that checks lazily would.
//! - The metadata is decoded only by [`Blob::metadata`]: a corrupt metadata section is an error
//!   for the caller who asks for it, and the tensors stay readable. [`Blob::onnx_graph`] reads
//!   the ONNX graph a blob made from an ONNX model carries there.
//!
//! The reference C reader in tools/c-reader makes the same checks in the same order.

mod codes;
mod entry;
mod error;
mod graph;
pub mod layout;
mod metadata;
mod metadata_scan;
mod reader;
mod scheme_rules;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use smelt_tensor::DType;

pub use codes::{dtype_code, dtype_from_code, storable_dtypes, Codec, EntryFlags, Scheme};
pub use entry::{Entry, Section};
pub use error::{BlobError, Region};
pub use graph::{BlobGraph, BlobInitializer};
pub use layout::Header;
pub use metadata::{encode_metadata, key_value, meta_entry, proto, BlobMetadata};
pub use scheme_rules::{SchemeRuleError, SectionKind};
pub use writer::{BlobWriteError, BlobWriter, Compression, EntryDecl, TensorSections};

use crate::Error;

/// A parsed blob: its header, its entries, and the file's bytes they borrow.
#[derive(Clone, Debug)]
pub struct Blob {
    path: PathBuf,
    bytes: Bytes,
    header: Header,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

/// One line of what a blob holds, for `smelt inspect` and the C reader's CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSummary {
    /// Tensor name.
    pub name: String,
    /// Scheme name (`raw`, `int8`, ...).
    pub scheme: Scheme,
    /// Dtype of the data section's elements.
    pub dtype: DType,
    /// Logical shape, row-major.
    pub dims: Vec<u64>,
    /// Compression of the data section.
    pub codec: Codec,
    /// Bytes stored in the file (all sections).
    pub stored_bytes: u64,
    /// Bytes after decompression (all sections).
    pub raw_bytes: u64,
    /// Absolute offset of the tensor's first stored byte (0 for an empty tensor).
    pub offset: u64,
}

/// Reads a `.smelt` file: maps it, [`parse`]s it and verifies every tensor's CRC and the
/// metadata's CRC (the metadata is not decoded).
pub fn read(path: &Path) -> Result<Blob, Error> {
    let blob = read_unverified(path)?;
    blob.verify_checksums()?;
    Ok(blob)
}

/// Maps and [`parse`]s a `.smelt` file without reading the sections' bytes (no CRCs checked
/// beyond the header's and the directory's).
pub fn read_unverified(path: &Path) -> Result<Blob, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bytes = smelt_tensor::storage::map_file(&file).map_err(|e| Error::io(path, e))?;
    parse(bytes, path)
}

/// Checks a whole blob held in `bytes` (`path` only names it in errors): the header, the
/// directory and string table (with their CRCs), every entry against its scheme's rules, and
/// that the sections are aligned, inside the data region and in order. Tensor CRCs are not
/// checked ([`Blob::verify_checksums`]); the metadata is not decoded ([`Blob::metadata`]).
pub fn parse(bytes: Bytes, path: &Path) -> Result<Blob, Error> {
    let parsed = reader::parse_blob(&bytes).map_err(|e| Error::new(path, e))?;
    let index = parsed.entries.iter().enumerate().map(|(i, e)| (e.name.clone(), i)).collect();
    Ok(Blob { path: path.to_path_buf(), bytes, header: parsed.header, entries: parsed.entries, index })
}

impl Blob {
    /// The file the blob was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header's fields.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Entries in directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry called `name`.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    /// The metadata section's bytes, if there is one (not checked).
    pub fn metadata_bytes(&self) -> Option<Bytes> {
        let h = &self.header;
        // parse checked that the section lies inside the file.
        (h.meta_size != 0)
            .then(|| self.bytes.slice(h.meta_offset as usize..(h.meta_offset + h.meta_size) as usize))
    }

    /// Checks the metadata's CRC, then decodes it; `None` when the blob has none.
    pub fn metadata(&self) -> Result<Option<BlobMetadata>, Error> {
        let Some(bytes) = self.metadata_bytes() else { return Ok(None) };
        self.verify_metadata_checksum()?;
        metadata::decode_metadata(&bytes, self.header.meta_offset).map(Some).map_err(|e| self.error(e))
    }

    fn verify_metadata_checksum(&self) -> Result<(), Error> {
        let Some(bytes) = self.metadata_bytes() else { return Ok(()) };
        let computed = crc32fast::hash(&bytes);
        if computed != self.header.meta_crc {
            let e = BlobError::MetadataChecksum {
                offset: self.header.meta_offset,
                stored: self.header.meta_crc,
                computed,
            };
            return Err(self.error(e));
        }
        Ok(())
    }

    /// Verifies every tensor's CRC, in directory order, then the metadata's.
    pub fn verify_checksums(&self) -> Result<(), Error> {
        for e in &self.entries {
            e.verify_checksum().map_err(|e| self.error(e))?;
        }
        self.verify_metadata_checksum()
    }

    /// An error about this blob's file.
    pub fn error(&self, e: BlobError) -> Error {
        Error::new(&self.path, e)
    }

    /// One summary per entry, in directory order.
    pub fn tensor_summaries(&self) -> Vec<TensorSummary> {
        self.entries
            .iter()
            .map(|e| {
                let others: u64 =
                    e.sections().filter(|(k, _)| *k != SectionKind::Data).map(|(_, s)| s.len()).sum();
                TensorSummary {
                    name: e.name.clone(),
                    scheme: e.scheme,
                    dtype: e.dtype,
                    dims: e.dims.clone(),
                    codec: e.codec,
                    stored_bytes: e.stored_len(),
                    raw_bytes: e.data_raw_len + others,
                    offset: e.sections().next().map_or(0, |(_, s)| s.offset),
                }
            })
            .collect()
    }
}
