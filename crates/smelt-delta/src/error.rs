//! The one error type of smelt-delta. Every variant about an update file carries the byte
//! offset (in the update) of the field or payload at fault, and the entry's name when there is
//! one, so that `smelt patch` can say exactly what is wrong.

/// Why an update could not be made, read or applied.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The file does not start with the update magic.
    #[error("not a smelt update: magic {found:02x?} at offset 0 (expected \"SMLTDLTA\")")]
    BadMagic {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// A format version this reader does not know.
    #[error("unsupported update version {version} at offset {offset} (this reader knows 1)")]
    UnsupportedVersion {
        /// Offset of the version field.
        offset: u64,
        /// Version found.
        version: u32,
    },
    /// The file ends before a structure it declares.
    #[error(
        "update truncated at offset {offset}: {what} needs bytes {offset}..{end} but the file has {len}"
    )]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// First byte needed.
        offset: u64,
        /// One past the last byte needed.
        end: u64,
        /// Length of the file.
        len: u64,
    },
    /// The file is longer than its header says.
    #[error("update has {extra} trailing bytes after offset {offset}")]
    TrailingBytes {
        /// Where the declared structure ends.
        offset: u64,
        /// How many bytes follow.
        extra: u64,
    },
    /// A reserved field is not zero.
    #[error("reserved bytes at offset {offset} are not zero")]
    Reserved {
        /// Offset of the reserved field.
        offset: u64,
    },
    /// More entries than the directory can hold.
    #[error("entry count {count} at offset {offset} exceeds what the directory of {dir_len} bytes can hold")]
    TooManyEntries {
        /// Offset of the count field.
        offset: u64,
        /// Count declared.
        count: u64,
        /// Directory length declared.
        dir_len: u64,
    },
    /// An entry's name is too long or not UTF-8.
    #[error("entry {index}: name at offset {offset} is {reason}")]
    BadName {
        /// Entry index.
        index: usize,
        /// Offset of the name.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// An entry's fields contradict each other or the header.
    #[error("entry {index} ({name}) at offset {offset}: {reason}")]
    BadEntry {
        /// Entry index.
        index: usize,
        /// Entry name.
        name: String,
        /// Offset of the entry record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Two length fields that must agree do not.
    #[error("{field} at offset {offset} is {found}, expected {expected}")]
    LengthMismatch {
        /// Field name.
        field: &'static str,
        /// Offset of the field.
        offset: u64,
        /// Value the rest of the file implies.
        expected: u64,
        /// Value found.
        found: u64,
    },
    /// The update's trailing checksum does not match its bytes (corrupted or truncated).
    #[error("update checksum at offset {offset} does not match its contents: the update is corrupted")]
    UpdateChecksum {
        /// Offset of the trailer.
        offset: u64,
    },
    /// The old file is not the base the update was made from.
    #[error("wrong base: the update was made from a file of {expected_len} bytes with BLAKE3 {expected_hash}, this one has {found_len} bytes and BLAKE3 {found_hash}")]
    WrongBase {
        /// Base length recorded in the update.
        expected_len: u64,
        /// Base hash recorded in the update (hex).
        expected_hash: String,
        /// Length of the file given.
        found_len: u64,
        /// Hash of the file given (hex).
        found_hash: String,
    },
    /// A payload does not decode to what its entry says.
    #[error("entry {index} ({name}): payload at offset {offset} does not decode: {reason}")]
    Decode {
        /// Entry index.
        index: usize,
        /// Entry name.
        name: String,
        /// Offset of the payload.
        offset: u64,
        /// What went wrong.
        reason: String,
    },
    /// An entry decoded to bytes whose hash is not the recorded one.
    #[error("entry {index} ({name}): decoded bytes do not match the hash recorded at offset {offset}")]
    EntryHash {
        /// Entry index.
        index: usize,
        /// Entry name.
        name: String,
        /// Offset of the recorded hash.
        offset: u64,
    },
    /// The whole result does not match the recorded result hash.
    #[error("patched result does not match the result hash recorded at offset {offset}")]
    ResultHash {
        /// Offset of the recorded hash.
        offset: u64,
    },
    /// Compressing failed (a zstd or lz4 error while making an update).
    #[error("cannot encode {name}: {reason}")]
    Encode {
        /// Entry name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// Writing the result failed.
    #[error("cannot write the result: {0}")]
    Write(#[source] std::io::Error),
}
