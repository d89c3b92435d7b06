//! Every way a smelt blob can be wrong, one variant each, with the tensor or field it concerns
//! and the absolute byte offset where the problem sits (docs/blob-format.md, "Reader
//! obligations", lists them in the order the reader checks them).

use smelt_tensor::DType;

use super::codes::{Codec, Scheme};
use super::scheme_rules::SectionKind;

/// A region of the file the header places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// The tensor directory.
    Directory,
    /// The string table.
    StringTable,
    /// The metadata section.
    Metadata,
    /// The data region.
    Data,
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Region::Directory => "directory",
            Region::StringTable => "string table",
            Region::Metadata => "metadata",
            Region::Data => "data region",
        })
    }
}

/// A malformed smelt blob. `offset` is always an absolute byte offset in the file: of the field
/// that is wrong, or of the bytes a checksum or length concerns.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The file cannot even hold the header.
    #[error("at byte 0: file is {len} bytes, shorter than the 128-byte header")]
    FileTooShort {
        /// Length of the file.
        len: u64,
    },
    /// The first 8 bytes are not `SMELTBLB`.
    #[error("at byte {offset}: magic is {found:02x?}, expected \"SMELTBLB\"")]
    BadMagic {
        /// Always 0.
        offset: u64,
        /// The bytes found.
        found: [u8; 8],
    },
    /// A major version other than 1.
    #[error("at byte {offset}: format version {major}.{minor} is not supported (smelt reads 1.x)")]
    UnsupportedVersion {
        /// Offset of `version_major`.
        offset: u64,
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// The header's CRC does not match its bytes.
    #[error("header at byte {offset}: header_crc is {stored:#010x}, bytes 0..124 give {computed:#010x}")]
    HeaderChecksum {
        /// Offset of `header_crc` (124).
        offset: u64,
        /// CRC stored.
        stored: u32,
        /// CRC computed.
        computed: u32,
    },
    /// A header field the format fixes, or derives from other fields, has another value.
    #[error("header field {field} at byte {offset}: is {found}, must be {expected}")]
    HeaderFieldValue {
        /// The field (`header_size`, `dir_entry_size`, `dir_offset`, `strtab_offset`, `data_size`).
        field: &'static str,
        /// Offset of the field.
        offset: u64,
        /// Value the format requires.
        expected: u64,
        /// Value found.
        found: u64,
    },
    /// `file_size` differs from the real length (a truncated or padded file).
    #[error("header field file_size at byte {offset}: says {declared} bytes, the file has {actual}")]
    FileSizeMismatch {
        /// Offset of `file_size`.
        offset: u64,
        /// What the header says.
        declared: u64,
        /// Real length.
        actual: u64,
    },
    /// A reserved field or undefined flag bit is not zero in a version x.0 file.
    #[error("{field} at byte {offset}: reserved bits are not zero ({found:#x}) in a version 1.0 file")]
    ReservedNotZero {
        /// The field (`header reserved`, `header flags`, `tensor 'x' flags`, ...).
        field: String,
        /// Offset of the field.
        offset: u64,
        /// The offending bits (or the first nonzero byte of a reserved block).
        found: u64,
    },
    /// More directory entries than `limits::MAX_TENSORS`.
    #[error("header field tensor_count at byte {offset}: {count} exceeds the limit of {max}")]
    TooManyTensors {
        /// Offset of `tensor_count`.
        offset: u64,
        /// Count found.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// `meta_offset` and `meta_size` disagree on whether there is metadata.
    #[error("header at byte {offset}: meta_offset {meta_offset} with meta_size {meta_size} (both must be 0, or neither)")]
    MetadataPresence {
        /// Offset of `meta_offset`.
        offset: u64,
        /// `meta_offset` found.
        meta_offset: u64,
        /// `meta_size` found.
        meta_size: u64,
    },
    /// An offset that must be a multiple of 64 is not.
    #[error("{what} at byte {offset}: {value} is not a multiple of 64")]
    Misaligned {
        /// Which offset (`meta_offset`, `tensor 'x' scales_offset`).
        what: String,
        /// Offset of the field.
        offset: u64,
        /// The misaligned value.
        value: u64,
    },
    /// A region is not where the format puts it: out of order or past the end of the file.
    #[error(
        "{region} at bytes {start}..{end} (header field at byte {offset}): must lie within {min}..{max}"
    )]
    RegionOutOfBounds {
        /// The region.
        region: Region,
        /// Offset of the header field that places it.
        offset: u64,
        /// Start of the region.
        start: u64,
        /// End of the region (saturated at `u64::MAX` on overflow).
        end: u64,
        /// Where it may start at the earliest.
        min: u64,
        /// Where it must end at the latest.
        max: u64,
    },
    /// The directory and string table do not match `dir_crc`.
    #[error("directory at byte {offset}: dir_crc is {stored:#010x}, the directory and string table give {computed:#010x}")]
    DirectoryChecksum {
        /// Offset of the directory (128).
        offset: u64,
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed.
        computed: u32,
    },
    /// A name that does not start where the previous entry's name ends: names are packed in
    /// directory order, so the string table holds each name exactly once.
    #[error("directory entry {index} at byte {offset}: name_offset is {found}, but the names before it end at {expected}")]
    NameNotPacked {
        /// Index of the entry.
        index: u64,
        /// Offset of the entry's `name_offset` field.
        offset: u64,
        /// Where the previous name ends (0 for the first entry).
        expected: u64,
        /// `name_offset` found.
        found: u32,
    },
    /// A name's bytes are not inside the string table.
    #[error("directory entry {index} at byte {offset}: name bytes {name_offset}..+{name_len} are outside the {strtab_size}-byte string table")]
    NameOutOfBounds {
        /// Index of the entry.
        index: u64,
        /// Offset of the entry's `name_offset` field.
        offset: u64,
        /// `name_offset` found.
        name_offset: u32,
        /// `name_len` found.
        name_len: u32,
        /// Size of the string table.
        strtab_size: u64,
    },
    /// A tensor name is the empty string.
    #[error("directory entry {index} at byte {offset}: name is empty")]
    EmptyName {
        /// Index of the entry.
        index: u64,
        /// Offset of the entry's `name_len` field.
        offset: u64,
    },
    /// A name longer than `limits::MAX_NAME_LEN`.
    #[error("directory entry {index} at byte {offset}: name is {len} bytes, the limit is {max}")]
    NameTooLong {
        /// Index of the entry.
        index: u64,
        /// Offset of the entry's `name_len` field.
        offset: u64,
        /// Length found.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// A name is not UTF-8.
    #[error(
        "directory entry {index}: name at byte {offset} is not valid UTF-8 (first bad byte at {bad_byte})"
    )]
    NameNotUtf8 {
        /// Index of the entry.
        index: u64,
        /// Offset of the name's bytes.
        offset: u64,
        /// Absolute offset of the first invalid byte.
        bad_byte: u64,
    },
    /// Two entries have the same name.
    #[error("tensor '{name}' at byte {offset}: duplicate of the entry at byte {first_offset}")]
    DuplicateName {
        /// The name.
        name: String,
        /// Offset of the second entry.
        offset: u64,
        /// Offset of the first entry.
        first_offset: u64,
    },
    /// Rank above 8.
    #[error("tensor '{name}' at byte {offset}: rank {rank} exceeds the format's 8")]
    RankTooLarge {
        /// The tensor.
        name: String,
        /// Offset of the `rank` field.
        offset: u64,
        /// Rank found.
        rank: u8,
    },
    /// A dim past `rank` is not zero.
    #[error("tensor '{name}' at byte {offset}: dims[{index}] is {value} but rank is {rank}")]
    UnusedDimNotZero {
        /// The tensor.
        name: String,
        /// Offset of the dim.
        offset: u64,
        /// Index of the dim.
        index: usize,
        /// Value found.
        value: u64,
        /// The rank.
        rank: u8,
    },
    /// A scheme code the format does not define.
    #[error("tensor '{name}' at byte {offset}: unknown scheme code {code}")]
    UnknownScheme {
        /// The tensor.
        name: String,
        /// Offset of the `scheme` field.
        offset: u64,
        /// Code found.
        code: u16,
    },
    /// A dtype code the format does not define.
    #[error("tensor '{name}' {field} at byte {offset}: unknown dtype code {code}")]
    UnknownDtype {
        /// The tensor.
        name: String,
        /// The field (`dtype`, `scales_dtype`, `zeros_dtype`, `aux_dtype`).
        field: &'static str,
        /// Offset of the field.
        offset: u64,
        /// Code found.
        code: u16,
    },
    /// A codec code the format does not define.
    #[error("tensor '{name}' at byte {offset}: unknown codec {code}")]
    UnknownCodec {
        /// The tensor.
        name: String,
        /// Offset of the `codec` field.
        offset: u64,
        /// Code found.
        code: u8,
    },
    /// The header says every tensor is uncompressed, but this one is not.
    #[error("tensor '{name}' at byte {offset}: codec {codec} in a file whose header flags say nothing is compressed")]
    CompressedInUncompressedFile {
        /// The tensor.
        name: String,
        /// Offset of the `codec` field.
        offset: u64,
        /// The codec.
        codec: Codec,
    },
    /// The data dtype, or a section's dtype, is not what the scheme stores.
    #[error("tensor '{name}' {field} at byte {offset}: scheme {scheme} needs {expected}, found {found}")]
    DtypeNotAllowed {
        /// The tensor.
        name: String,
        /// The field (`dtype`, `scales_dtype`, ...).
        field: &'static str,
        /// Offset of the field.
        offset: u64,
        /// The scheme.
        scheme: Scheme,
        /// What the scheme needs, in words.
        expected: String,
        /// The dtype found.
        found: DType,
    },
    /// The rank is not one the scheme allows.
    #[error("tensor '{name}' at byte {offset}: scheme {scheme} needs rank >= 1, found {rank}")]
    RankNotAllowed {
        /// The tensor.
        name: String,
        /// Offset of the `rank` field.
        offset: u64,
        /// The scheme.
        scheme: Scheme,
        /// Rank found.
        rank: u8,
    },
    /// A flag the scheme does not use is set.
    #[error("tensor '{name}' at byte {offset}: scheme {scheme} does not use flag bits {bits:#06x}")]
    FlagsNotAllowed {
        /// The tensor.
        name: String,
        /// Offset of the `flags` field.
        offset: u64,
        /// The scheme.
        scheme: Scheme,
        /// The bits the scheme does not use.
        bits: u16,
    },
    /// The block size is wrong for the scheme.
    #[error("tensor '{name}' at byte {offset}: scheme {scheme} needs block_size {expected}, found {found}")]
    BadBlockSize {
        /// The tensor.
        name: String,
        /// Offset of the `block_size` field.
        offset: u64,
        /// The scheme.
        scheme: Scheme,
        /// Block size found.
        found: u32,
        /// What the scheme needs.
        expected: &'static str,
    },
    /// The axis is out of range, or set where the entry is not per-axis.
    #[error("tensor '{name}' at byte {offset}: axis {axis:#x} is not valid (rank {rank}, per-axis flag {per_axis})")]
    BadAxis {
        /// The tensor.
        name: String,
        /// Offset of the `axis` field.
        offset: u64,
        /// Axis found.
        axis: u32,
        /// The rank.
        rank: u8,
        /// Whether the per-axis flag is set.
        per_axis: bool,
    },
    /// The element count or a section size overflows 64 bits.
    #[error("tensor '{name}' at byte {offset}: element count or a section size overflows 64 bits")]
    SizeOverflow {
        /// The tensor.
        name: String,
        /// Offset of the `dims` field.
        offset: u64,
    },
    /// A ggml tensor's rows are not whole blocks.
    #[error("tensor '{name}' at byte {offset}: row length {row_len} is not a multiple of {dtype}'s block of {block}")]
    RowNotWholeBlocks {
        /// The tensor.
        name: String,
        /// Offset of the last dim.
        offset: u64,
        /// The dtype.
        dtype: DType,
        /// Row length found.
        row_len: u64,
        /// Block size in elements.
        block: u64,
    },
    /// A section's length is not what the scheme, dtype and dims require.
    #[error("tensor '{name}' {section} length at byte {offset}: is {found} bytes, scheme {scheme} needs {expected}")]
    SectionLength {
        /// The tensor.
        name: String,
        /// The section (for data: the raw length).
        section: SectionKind,
        /// Offset of the length field.
        offset: u64,
        /// The scheme.
        scheme: Scheme,
        /// Length required (for int4's optional aux: the length when present).
        expected: u64,
        /// Length found.
        found: u64,
    },
    /// An uncompressed data section whose stored and raw lengths differ.
    #[error("tensor '{name}' at byte {offset}: uncompressed data stores {stored} bytes but its raw length is {raw}")]
    StoredLengthMismatch {
        /// The tensor.
        name: String,
        /// Offset of `data_stored_len`.
        offset: u64,
        /// Stored length.
        stored: u64,
        /// Raw length.
        raw: u64,
    },
    /// A compressed data section claims to expand more than its codec can.
    #[error("tensor '{name}' at byte {offset}: {codec} data of {stored} bytes cannot decompress to {raw} bytes (at most {max})")]
    ImpossibleRawLength {
        /// The tensor.
        name: String,
        /// Offset of `data_raw_len`.
        offset: u64,
        /// The codec.
        codec: Codec,
        /// Stored length.
        stored: u64,
        /// Raw length claimed.
        raw: u64,
        /// The codec's bound for this stored length.
        max: u64,
    },
    /// An absent (zero-length) section whose offset is not 0.
    #[error("tensor '{name}' {section}_offset at byte {offset}: section is empty but its offset is {value}, not 0")]
    AbsentSectionOffset {
        /// The tensor.
        name: String,
        /// The section.
        section: SectionKind,
        /// Offset of the offset field.
        offset: u64,
        /// The offset found.
        value: u64,
    },
    /// A section that is not inside the data region.
    #[error("tensor '{name}' {section} at bytes {start}..{end}: outside the data region {data_offset}..{file_size}")]
    SectionOutOfBounds {
        /// The tensor.
        name: String,
        /// The section.
        section: SectionKind,
        /// Start of the section.
        start: u64,
        /// End of the section (saturated at `u64::MAX` on overflow).
        end: u64,
        /// Start of the data region.
        data_offset: u64,
        /// End of the file.
        file_size: u64,
    },
    /// A section that starts before the end of the previous one (overlap, or out of order).
    #[error("tensor '{name}' {section} at byte {start}: starts before byte {previous_end}, where the previous section ends")]
    SectionOutOfOrder {
        /// The tensor.
        name: String,
        /// The section.
        section: SectionKind,
        /// Start of the section.
        start: u64,
        /// End of the previous present section.
        previous_end: u64,
    },
    /// An int4 `g_idx` value that is not a group of the tensor.
    #[error("tensor '{name}' g_idx at byte {offset}: column {column} has group {value}, but there are {groups} groups")]
    GroupIndexOutOfRange {
        /// The tensor.
        name: String,
        /// Offset of the value.
        offset: u64,
        /// Column index.
        column: u64,
        /// Value found.
        value: i32,
        /// Number of groups.
        groups: u64,
    },
    /// A tensor's stored bytes do not match its CRC.
    #[error("tensor '{name}' at byte {offset}: CRC-32 of its stored sections is {computed:#010x}, the directory says {stored:#010x}")]
    TensorChecksum {
        /// The tensor.
        name: String,
        /// Offset of its first stored byte (the entry's `crc` field if it has none).
        offset: u64,
        /// CRC in the directory.
        stored: u32,
        /// CRC computed.
        computed: u32,
    },
    /// The metadata does not match `meta_crc`.
    #[error("metadata at byte {offset}: CRC-32 is {computed:#010x}, the header says {stored:#010x}")]
    MetadataChecksum {
        /// Offset of the metadata.
        offset: u64,
        /// CRC in the header.
        stored: u32,
        /// CRC computed.
        computed: u32,
    },
    /// The metadata is not a valid `BlobMetadata` message.
    #[error("metadata at byte {offset}: {reason}")]
    MetadataMalformed {
        /// Where the problem is (the metadata's start when prost does not say).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Metadata arrays nested deeper than `limits::MAX_NESTING`.
    #[error("metadata value at byte {offset}: arrays nested {depth} deep, the limit is {max}")]
    MetadataTooDeep {
        /// Offset of the too-deep value.
        offset: u64,
        /// Depth reached.
        depth: u32,
        /// The cap.
        max: u32,
    },
    /// Metadata that would take far more memory decoded than its size on disk.
    #[error("metadata at byte {offset}: {size} bytes would decode to about {estimate} bytes in memory, over the limit of {max}")]
    MetadataTooLarge {
        /// Offset of the metadata.
        offset: u64,
        /// Its size.
        size: u64,
        /// Estimated decoded size.
        estimate: u64,
        /// The limit for this size.
        max: u64,
    },
    /// The ONNX model in the metadata's `onnx_graph.model` does not read (the reason's byte
    /// offsets count from the start of the embedded model, which is at `offset`).
    #[error("metadata field onnx_graph.model (embedded ONNX model at byte {offset}): {source}")]
    GraphModel {
        /// Absolute offset of the embedded model's first byte (of the metadata when it is empty).
        offset: u64,
        /// What the ONNX reader refused.
        #[source]
        source: Box<crate::onnx::OnnxError>,
    },
    /// An entry of the metadata's `onnx_graph.initializers` that does not fit the blob or the
    /// graph.
    #[error("metadata at byte {offset}, field onnx_graph.initializers[{index}] ('{name}'): {reason}")]
    GraphInitializer {
        /// Offset of the metadata (a decoded entry's own position is not kept).
        offset: u64,
        /// Index in `onnx_graph.initializers`.
        index: usize,
        /// Its `name`.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A compressed data section does not decode.
    #[error("tensor '{name}' data at byte {offset}: {codec} data does not decode: {reason}")]
    Decompression {
        /// The tensor.
        name: String,
        /// Offset of the data section.
        offset: u64,
        /// The codec.
        codec: Codec,
        /// The decoder's message.
        reason: String,
    },
    /// A compressed data section decodes to another length than `data_raw_len`.
    #[error(
        "tensor '{name}' data at byte {offset}: decodes to {found} bytes, the directory says {expected}"
    )]
    DecompressedLength {
        /// The tensor.
        name: String,
        /// Offset of the data section.
        offset: u64,
        /// `data_raw_len`.
        expected: u64,
        /// Length decoded (for a stream longer than expected: a lower bound, where decoding stopped).
        found: u64,
    },
}
