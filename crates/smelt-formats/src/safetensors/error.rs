//! Every way a safetensors file or a sharded checkpoint can be wrong, one variant each.
//!
//! Offsets are absolute byte offsets in the file the enclosing [`crate::Error`] names: for a
//! header problem, where the tensor's JSON entry (or the offending JSON value) starts; for a data
//! problem, the tensor's entry plus the absolute data range it claims. Sharded-checkpoint
//! errors name the index file and carry offsets in it, except `TensorNotInIndex` and
//! `TensorInTwoShards`, where the index has nothing to point at: those name the shard and carry
//! the offset of the tensor's entry in the shard's header. A malformed shard gives the
//! single-file variant, naming the shard.

use smelt_tensor::DType;

/// A malformed safetensors file or sharded checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// The file is shorter than the 8-byte little-endian header length that starts it.
    #[error("file is {len} bytes, too short for the 8-byte header length that starts a safetensors file")]
    FileTooShort {
        /// File size in bytes.
        len: u64,
    },
    /// The declared header length is above smelt's cap.
    #[error("at byte 0: header length {declared} is above the limit of {max} bytes")]
    HeaderTooLarge {
        /// Header length the file declares.
        declared: u64,
        /// The cap (`limits::MAX_SAFETENSORS_HEADER`).
        max: u64,
    },
    /// The declared header length runs past the end of the file.
    #[error("at byte 0: header length {declared} runs past the end of the file ({file_len} bytes)")]
    HeaderPastEnd {
        /// Header length the file declares.
        declared: u64,
        /// File size in bytes.
        file_len: u64,
    },
    /// The header is not valid UTF-8.
    #[error("at byte {offset}: header is not valid UTF-8")]
    HeaderNotUtf8 {
        /// Offset of the first byte that is not UTF-8.
        offset: u64,
    },
    /// The header is not valid JSON.
    #[error("at byte {offset} (header line {line}, column {column}): header is not valid JSON: {message}")]
    HeaderNotJson {
        /// Offset of the byte where the JSON parser stopped.
        offset: u64,
        /// Line within the header, from 1.
        line: usize,
        /// Byte column within that line, from 1.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// The header is valid JSON but not an object.
    #[error("at byte {offset}: header is a JSON {found}, not an object of tensors")]
    HeaderNotObject {
        /// Offset of the JSON value.
        offset: u64,
        /// What it is instead (`array`, `string`, ...).
        found: &'static str,
    },
    /// A tensor's entry is not an object with `dtype` (string), `shape` (array of unsigned
    /// integers) and `data_offsets` (two unsigned integers).
    #[error("tensor '{name}' at byte {offset}: entry is not {{\"dtype\", \"shape\", \"data_offsets\"}}: {message}")]
    BadTensorEntry {
        /// Tensor name.
        name: String,
        /// Offset of the offending JSON value.
        offset: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A tensor name is longer than smelt's cap.
    #[error(
        "at byte {offset}: tensor name of {len} bytes (starting '{prefix}') is above the limit of {max}"
    )]
    NameTooLong {
        /// Offset of the tensor's entry.
        offset: u64,
        /// Name length in bytes.
        len: u64,
        /// The cap (`limits::MAX_NAME_LEN`).
        max: u64,
        /// The first characters of the name.
        prefix: String,
    },
    /// The same key (a tensor name, or `__metadata__`) appears twice in the header. JSON
    /// parsers silently keep one of them, so the file means different things to different
    /// readers.
    #[error(
        "tensor '{name}' at byte {offset}: name appears twice in the header (first at byte {first_offset})"
    )]
    DuplicateName {
        /// The repeated key.
        name: String,
        /// Offset of its first entry.
        first_offset: u64,
        /// Offset of the repeat.
        offset: u64,
    },
    /// More tensors than smelt's cap.
    #[error("at byte {offset}: more than {max} tensors")]
    TooManyTensors {
        /// Offset of the first entry past the cap.
        offset: u64,
        /// The cap (`limits::MAX_TENSORS`).
        max: u64,
    },
    /// `__metadata__` is not an object of strings.
    #[error("__metadata__ at byte {offset}: {message}")]
    BadMetadata {
        /// Offset of the offending JSON value.
        offset: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A key appears twice in `__metadata__`.
    #[error("__metadata__ key '{key}' at byte {offset}: appears twice (first at byte {first_offset})")]
    DuplicateMetadataKey {
        /// The repeated key.
        key: String,
        /// Offset of its first value.
        first_offset: u64,
        /// Offset of the repeat's value.
        offset: u64,
    },
    /// More `__metadata__` entries than smelt's cap.
    #[error("__metadata__ at byte {offset}: more than {max} entries")]
    TooManyMetadata {
        /// Offset of the first entry past the cap.
        offset: u64,
        /// The cap (`limits::MAX_METADATA`).
        max: u64,
    },
    /// A dtype string the safetensors format does not define.
    #[error("tensor '{name}' at byte {offset}: unknown dtype \"{dtype}\"")]
    UnknownDtype {
        /// Tensor name.
        name: String,
        /// Offset of the tensor's entry.
        offset: u64,
        /// The dtype string as written.
        dtype: String,
    },
    /// A dtype the safetensors format defines but smelt cannot hold (F6_E2M3, F6_E3M2,
    /// F8_E8M0).
    #[error(
        "tensor '{name}' at byte {offset}: dtype {dtype} is valid safetensors but not supported by smelt"
    )]
    UnsupportedDtype {
        /// Tensor name.
        name: String,
        /// Offset of the tensor's entry.
        offset: u64,
        /// The dtype string as written.
        dtype: String,
    },
    /// A shape with more dimensions than smelt's cap.
    #[error("tensor '{name}' at byte {offset}: rank {rank} is above the limit of {max}")]
    RankTooLarge {
        /// Tensor name.
        name: String,
        /// Offset of the tensor's entry.
        offset: u64,
        /// Number of dimensions in the file.
        rank: u64,
        /// The cap (`limits::MAX_RANK`).
        max: u64,
    },
    /// The shape's element count times the dtype size overflows 64 bits.
    #[error("tensor '{name}' at byte {offset}: shape {shape:?} of {dtype} overflows a 64-bit byte count")]
    SizeOverflow {
        /// Tensor name.
        name: String,
        /// Offset of the tensor's entry.
        offset: u64,
        /// The tensor's dtype.
        dtype: DType,
        /// The shape as written.
        shape: Vec<u64>,
    },
    /// A sub-byte dtype (F4) whose element count does not fill whole bytes; safetensors
    /// requires every tensor to start and end on a byte.
    #[error("tensor '{name}' at byte {offset}: {numel} elements of {dtype} do not fill whole bytes")]
    PartialByte {
        /// Tensor name.
        name: String,
        /// Offset of the tensor's entry.
        offset: u64,
        /// The tensor's dtype.
        dtype: DType,
        /// Element count.
        numel: u64,
    },
    /// `data_offsets` begin after they end.
    #[error("tensor '{name}' at byte {offset}: data_offsets [{begin}, {end}] begin after they end")]
    OffsetsReversed {
        /// Tensor name.
        name: String,
        /// Offset of the tensor's entry.
        offset: u64,
        /// First data offset (relative to the data section, as written).
        begin: u64,
        /// Second data offset (relative to the data section, as written).
        end: u64,
    },
    /// `data_offsets` span a different number of bytes than shape × dtype size.
    #[error("tensor '{name}' at byte {offset}: shape {shape:?} of {dtype} needs {expected} bytes but data_offsets span {found}")]
    SizeMismatch {
        /// Tensor name.
        name: String,
        /// Offset of the tensor's entry.
        offset: u64,
        /// The tensor's dtype.
        dtype: DType,
        /// The shape as written.
        shape: Vec<u64>,
        /// Bytes the shape and dtype need.
        expected: u64,
        /// Bytes the offsets span.
        found: u64,
    },
    /// A tensor's data runs past the end of the file.
    #[error("tensor '{name}' at byte {offset}: data range {begin}..{end} extends past end of file ({file_len} bytes)")]
    DataPastEnd {
        /// Tensor name.
        name: String,
        /// Offset of the tensor's entry.
        offset: u64,
        /// Absolute first byte of the data.
        begin: u64,
        /// Absolute end (exclusive) of the data.
        end: u64,
        /// File size in bytes.
        file_len: u64,
    },
    /// Two tensors' data overlap.
    #[error("tensor '{name}' at byte {offset}: data range {begin}..{end} overlaps tensor '{other}' ({other_begin}..{other_end})")]
    Overlap {
        /// Tensor name.
        name: String,
        /// Offset of the tensor's entry.
        offset: u64,
        /// Absolute first byte of its data.
        begin: u64,
        /// Absolute end (exclusive) of its data.
        end: u64,
        /// The tensor it overlaps.
        other: String,
        /// Absolute first byte of the other tensor's data.
        other_begin: u64,
        /// Absolute end (exclusive) of the other tensor's data.
        other_end: u64,
    },
    /// Unclaimed bytes between two tensors (or before the first): the format requires the
    /// tensors to cover the data section exactly.
    #[error("tensor '{name}' at byte {offset}: data starts at byte {begin}, leaving bytes {expected}..{begin} unclaimed by any tensor")]
    Gap {
        /// Tensor name.
        name: String,
        /// Offset of the tensor's entry.
        offset: u64,
        /// Absolute offset where the data should start (the previous tensor's end).
        expected: u64,
        /// Absolute offset where it starts.
        begin: u64,
    },
    /// Bytes after the last tensor's data: the format requires the tensors to end exactly at
    /// the end of the file.
    #[error("at byte {offset}: {len} bytes after the last tensor's data are unclaimed by any tensor")]
    TrailingBytes {
        /// Absolute offset of the first unclaimed byte.
        offset: u64,
        /// Number of unclaimed bytes.
        len: u64,
    },
    /// The shard index is larger than smelt's cap for JSON side files.
    #[error("index is {len} bytes, above the limit of {max} for a JSON file")]
    IndexTooLarge {
        /// File size in bytes.
        len: u64,
        /// The cap (`limits::MAX_JSON_FILE`).
        max: u64,
    },
    /// The shard index is not valid JSON (or not UTF-8).
    #[error("at byte {offset} (line {line}, column {column}): index is not valid JSON: {message}")]
    IndexNotJson {
        /// Offset of the byte where parsing stopped.
        offset: u64,
        /// Line, from 1.
        line: usize,
        /// Byte column within that line, from 1.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// The shard index is valid JSON but not an object.
    #[error("at byte {offset}: index is a JSON {found}, not an object")]
    IndexNotObject {
        /// Offset of the JSON value.
        offset: u64,
        /// What it is instead.
        found: &'static str,
    },
    /// The shard index has no `weight_map`.
    #[error("index has no \"weight_map\" object")]
    IndexNoWeightMap,
    /// A field of the shard index has the wrong JSON type (`weight_map` not an object of
    /// strings, `metadata` not an object).
    #[error("index field '{field}' at byte {offset}: {message}")]
    IndexBadField {
        /// The field (`weight_map`, `weight_map.<tensor>`, `metadata`).
        field: String,
        /// Offset of the offending JSON value.
        offset: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A key appears twice in the shard index (at the top level, in `weight_map` or in
    /// `metadata`).
    #[error("index key '{key}' at byte {offset}: appears twice (first at byte {first_offset})")]
    DuplicateIndexKey {
        /// The repeated key (`weight_map.<tensor>` for weight-map entries).
        key: String,
        /// Offset of its first value.
        first_offset: u64,
        /// Offset of the repeat's value.
        offset: u64,
    },
    /// A shard file name that would leave the checkpoint directory: absolute, containing
    /// `..`, empty, or resolving (through a symlink) outside the index's directory.
    #[error("index entry for tensor '{tensor}' at byte {offset}: shard path \"{shard}\" {reason}")]
    ShardPathUnsafe {
        /// The first tensor the index maps to this shard.
        tensor: String,
        /// The shard file name as written.
        shard: String,
        /// Offset of the index value naming the shard.
        offset: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A shard file the index names does not exist.
    #[error("index entry for tensor '{tensor}' at byte {offset}: shard file \"{shard}\" does not exist")]
    ShardMissing {
        /// The first tensor the index maps to this shard.
        tensor: String,
        /// The shard file name as written.
        shard: String,
        /// Offset of the index value naming the shard.
        offset: u64,
    },
    /// A tensor the index lists is in none of the shards.
    #[error("index entry for tensor '{name}' at byte {offset}: shard \"{shard}\" has no such tensor")]
    TensorNotInShard {
        /// Tensor name.
        name: String,
        /// The shard the index names.
        shard: String,
        /// Offset of the index entry.
        offset: u64,
    },
    /// A tensor sits in a different shard than the index says.
    #[error("index entry for tensor '{name}' at byte {offset}: index says shard \"{listed}\", but the tensor is in \"{found}\"")]
    TensorInWrongShard {
        /// Tensor name.
        name: String,
        /// The shard the index names.
        listed: String,
        /// The shard that holds it.
        found: String,
        /// Offset of the index entry.
        offset: u64,
    },
    /// A shard holds a tensor the index does not list.
    #[error(
        "tensor '{name}' in shard \"{shard}\" (entry at byte {offset} of the shard) is not in the index"
    )]
    TensorNotInIndex {
        /// Tensor name.
        name: String,
        /// The shard holding it.
        shard: String,
        /// Offset of the tensor's entry in the shard's header.
        offset: u64,
    },
    /// Two shards hold a tensor of the same name.
    #[error("tensor '{name}' is in both shard \"{first_shard}\" and shard \"{second_shard}\" (entry at byte {offset} of the latter)")]
    TensorInTwoShards {
        /// Tensor name.
        name: String,
        /// The first shard (in sorted order) holding it.
        first_shard: String,
        /// The second shard holding it.
        second_shard: String,
        /// Offset of the tensor's entry in the second shard's header.
        offset: u64,
    },
}
