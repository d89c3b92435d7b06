//! The fixed-width parts of a blob: the 128-byte header and the 176-byte directory entry, as
//! plain structs with byte-exact encode and decode (docs/blob-format.md, "Header", "Directory
//! entry"). No validation here: the reader checks the decoded fields, the writer fills them.

/// `"SMELTBLB"`.
pub const MAGIC: [u8; 8] = *b"SMELTBLB";
/// The major version this code reads and writes.
pub const VERSION_MAJOR: u16 = 1;
/// The minor version this code writes.
pub const VERSION_MINOR: u16 = 0;
/// Size of the header in bytes.
pub const HEADER_SIZE: u64 = 128;
/// Size of one directory entry in bytes.
pub const ENTRY_SIZE: u64 = 176;
/// Alignment of the metadata, the data region and every present section.
pub const ALIGN: u64 = 64;
/// Maximum rank of a tensor (the directory has room for 8 dims).
pub const MAX_RANK: usize = 8;
/// Header flag bit 0: every entry has codec 0.
pub const HEADER_FLAG_UNCOMPRESSED: u64 = 1;
/// `axis` of an entry that has none.
pub const NO_AXIS: u32 = u32::MAX;

/// Byte offsets of the header's fields (the spec's "Header" table), for error messages.
#[allow(missing_docs)]
pub mod header_field {
    pub const MAGIC: u64 = 0;
    pub const VERSION_MAJOR: u64 = 8;
    pub const VERSION_MINOR: u64 = 10;
    pub const HEADER_SIZE: u64 = 12;
    pub const DIR_ENTRY_SIZE: u64 = 16;
    pub const TENSOR_COUNT: u64 = 20;
    pub const DIR_OFFSET: u64 = 24;
    pub const STRTAB_OFFSET: u64 = 32;
    pub const STRTAB_SIZE: u64 = 40;
    pub const META_OFFSET: u64 = 48;
    pub const META_SIZE: u64 = 56;
    pub const DATA_OFFSET: u64 = 64;
    pub const DATA_SIZE: u64 = 72;
    pub const FILE_SIZE: u64 = 80;
    pub const FLAGS: u64 = 88;
    pub const DIR_CRC: u64 = 96;
    pub const META_CRC: u64 = 100;
    pub const RESERVED: u64 = 104;
    pub const HEADER_CRC: u64 = 124;
}

/// Byte offsets of a directory entry's fields, relative to the entry (the spec's "Directory
/// entry" table), for error messages.
#[allow(missing_docs)]
pub mod entry_field {
    pub const NAME_OFFSET: u64 = 0;
    pub const NAME_LEN: u64 = 4;
    pub const SCHEME: u64 = 8;
    pub const DTYPE: u64 = 10;
    pub const RANK: u64 = 12;
    pub const CODEC: u64 = 13;
    pub const FLAGS: u64 = 14;
    pub const BLOCK_SIZE: u64 = 16;
    pub const AXIS: u64 = 20;
    pub const DIMS: u64 = 24;
    pub const DATA_OFFSET: u64 = 88;
    pub const DATA_STORED_LEN: u64 = 96;
    pub const DATA_RAW_LEN: u64 = 104;
    pub const SCALES_OFFSET: u64 = 112;
    pub const SCALES_LEN: u64 = 120;
    pub const ZEROS_OFFSET: u64 = 128;
    pub const ZEROS_LEN: u64 = 136;
    pub const AUX_OFFSET: u64 = 144;
    pub const AUX_LEN: u64 = 152;
    pub const SCALES_DTYPE: u64 = 160;
    pub const ZEROS_DTYPE: u64 = 162;
    pub const AUX_DTYPE: u64 = 164;
    pub const RESERVED_166: u64 = 166;
    pub const CRC: u64 = 168;
    pub const RESERVED_172: u64 = 172;
}

/// Little-endian loads and stores at constant offsets of a fixed-size record.
struct Record<'a>(&'a [u8]);

impl Record<'_> {
    fn bytes<const N: usize>(&self, at: u64) -> [u8; N] {
        let mut out = [0u8; N];
        // Offsets are the constants above, inside the 128- or 176-byte record by construction.
        if let Some(src) = self.0.get(at as usize..at as usize + N) {
            out.copy_from_slice(src);
        }
        out
    }
    fn u8(&self, at: u64) -> u8 {
        self.bytes::<1>(at)[0]
    }
    fn u16(&self, at: u64) -> u16 {
        u16::from_le_bytes(self.bytes(at))
    }
    fn u32(&self, at: u64) -> u32 {
        u32::from_le_bytes(self.bytes(at))
    }
    fn u64(&self, at: u64) -> u64 {
        u64::from_le_bytes(self.bytes(at))
    }
}

fn put(out: &mut [u8], at: u64, bytes: &[u8]) {
    out[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
}

/// The header's fields as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Must be [`VERSION_MAJOR`].
    pub version_major: u16,
    /// Any; 0 for files this code writes.
    pub version_minor: u16,
    /// Must be [`HEADER_SIZE`].
    pub header_size: u32,
    /// Must be [`ENTRY_SIZE`].
    pub dir_entry_size: u32,
    /// Number of directory entries.
    pub tensor_count: u32,
    /// Must be [`HEADER_SIZE`].
    pub dir_offset: u64,
    /// End of the directory.
    pub strtab_offset: u64,
    /// Length of the string table.
    pub strtab_size: u64,
    /// Start of the metadata, 0 when absent.
    pub meta_offset: u64,
    /// Length of the metadata, 0 when absent.
    pub meta_size: u64,
    /// Start of the data region.
    pub data_offset: u64,
    /// `file_size - data_offset`.
    pub data_size: u64,
    /// Length of the file.
    pub file_size: u64,
    /// Bit 0: every entry is uncompressed ([`HEADER_FLAG_UNCOMPRESSED`]).
    pub flags: u64,
    /// CRC-32 of the directory and the string table.
    pub dir_crc: u32,
    /// CRC-32 of the metadata (0 when absent).
    pub meta_crc: u32,
    /// Reserved bytes 104..124.
    pub reserved: [u8; 20],
    /// CRC-32 of bytes 0..124.
    pub header_crc: u32,
}

impl Header {
    /// Decodes the 128 header bytes (the magic is not part of the struct).
    pub fn decode(b: &[u8; HEADER_SIZE as usize]) -> Header {
        use header_field as f;
        let r = Record(b);
        Header {
            version_major: r.u16(f::VERSION_MAJOR),
            version_minor: r.u16(f::VERSION_MINOR),
            header_size: r.u32(f::HEADER_SIZE),
            dir_entry_size: r.u32(f::DIR_ENTRY_SIZE),
            tensor_count: r.u32(f::TENSOR_COUNT),
            dir_offset: r.u64(f::DIR_OFFSET),
            strtab_offset: r.u64(f::STRTAB_OFFSET),
            strtab_size: r.u64(f::STRTAB_SIZE),
            meta_offset: r.u64(f::META_OFFSET),
            meta_size: r.u64(f::META_SIZE),
            data_offset: r.u64(f::DATA_OFFSET),
            data_size: r.u64(f::DATA_SIZE),
            file_size: r.u64(f::FILE_SIZE),
            flags: r.u64(f::FLAGS),
            dir_crc: r.u32(f::DIR_CRC),
            meta_crc: r.u32(f::META_CRC),
            reserved: r.bytes(f::RESERVED),
            header_crc: r.u32(f::HEADER_CRC),
        }
    }

    /// Encodes the header with the magic, computing `header_crc` over bytes 0..124 (the
    /// struct's own `header_crc` is ignored).
    pub fn encode(&self) -> [u8; HEADER_SIZE as usize] {
        use header_field as f;
        let mut b = [0u8; HEADER_SIZE as usize];
        put(&mut b, f::MAGIC, &MAGIC);
        put(&mut b, f::VERSION_MAJOR, &self.version_major.to_le_bytes());
        put(&mut b, f::VERSION_MINOR, &self.version_minor.to_le_bytes());
        put(&mut b, f::HEADER_SIZE, &self.header_size.to_le_bytes());
        put(&mut b, f::DIR_ENTRY_SIZE, &self.dir_entry_size.to_le_bytes());
        put(&mut b, f::TENSOR_COUNT, &self.tensor_count.to_le_bytes());
        put(&mut b, f::DIR_OFFSET, &self.dir_offset.to_le_bytes());
        put(&mut b, f::STRTAB_OFFSET, &self.strtab_offset.to_le_bytes());
        put(&mut b, f::STRTAB_SIZE, &self.strtab_size.to_le_bytes());
        put(&mut b, f::META_OFFSET, &self.meta_offset.to_le_bytes());
        put(&mut b, f::META_SIZE, &self.meta_size.to_le_bytes());
        put(&mut b, f::DATA_OFFSET, &self.data_offset.to_le_bytes());
        put(&mut b, f::DATA_SIZE, &self.data_size.to_le_bytes());
        put(&mut b, f::FILE_SIZE, &self.file_size.to_le_bytes());
        put(&mut b, f::FLAGS, &self.flags.to_le_bytes());
        put(&mut b, f::DIR_CRC, &self.dir_crc.to_le_bytes());
        put(&mut b, f::META_CRC, &self.meta_crc.to_le_bytes());
        put(&mut b, f::RESERVED, &self.reserved);
        let crc = crc32fast::hash(&b[..f::HEADER_CRC as usize]);
        put(&mut b, f::HEADER_CRC, &crc.to_le_bytes());
        b
    }
}

/// A directory entry's fields as stored (before any validation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub name_offset: u32,
    pub name_len: u32,
    pub scheme: u16,
    pub dtype: u16,
    pub rank: u8,
    pub codec: u8,
    pub flags: u16,
    pub block_size: u32,
    pub axis: u32,
    pub dims: [u64; MAX_RANK],
    pub data_offset: u64,
    pub data_stored_len: u64,
    pub data_raw_len: u64,
    pub scales_offset: u64,
    pub scales_len: u64,
    pub zeros_offset: u64,
    pub zeros_len: u64,
    pub aux_offset: u64,
    pub aux_len: u64,
    pub scales_dtype: u16,
    pub zeros_dtype: u16,
    pub aux_dtype: u16,
    pub reserved_166: u16,
    pub crc: u32,
    pub reserved_172: u32,
}

impl RawEntry {
    /// Decodes one 176-byte entry.
    pub fn decode(b: &[u8; ENTRY_SIZE as usize]) -> RawEntry {
        use entry_field as f;
        let r = Record(b);
        let mut dims = [0u64; MAX_RANK];
        for (i, d) in dims.iter_mut().enumerate() {
            *d = r.u64(f::DIMS + 8 * i as u64);
        }
        RawEntry {
            name_offset: r.u32(f::NAME_OFFSET),
            name_len: r.u32(f::NAME_LEN),
            scheme: r.u16(f::SCHEME),
            dtype: r.u16(f::DTYPE),
            rank: r.u8(f::RANK),
            codec: r.u8(f::CODEC),
            flags: r.u16(f::FLAGS),
            block_size: r.u32(f::BLOCK_SIZE),
            axis: r.u32(f::AXIS),
            dims,
            data_offset: r.u64(f::DATA_OFFSET),
            data_stored_len: r.u64(f::DATA_STORED_LEN),
            data_raw_len: r.u64(f::DATA_RAW_LEN),
            scales_offset: r.u64(f::SCALES_OFFSET),
            scales_len: r.u64(f::SCALES_LEN),
            zeros_offset: r.u64(f::ZEROS_OFFSET),
            zeros_len: r.u64(f::ZEROS_LEN),
            aux_offset: r.u64(f::AUX_OFFSET),
            aux_len: r.u64(f::AUX_LEN),
            scales_dtype: r.u16(f::SCALES_DTYPE),
            zeros_dtype: r.u16(f::ZEROS_DTYPE),
            aux_dtype: r.u16(f::AUX_DTYPE),
            reserved_166: r.u16(f::RESERVED_166),
            crc: r.u32(f::CRC),
            reserved_172: r.u32(f::RESERVED_172),
        }
    }

    /// Encodes the entry into its 176 bytes.
    pub fn encode(&self) -> [u8; ENTRY_SIZE as usize] {
        use entry_field as f;
        let mut b = [0u8; ENTRY_SIZE as usize];
        put(&mut b, f::NAME_OFFSET, &self.name_offset.to_le_bytes());
        put(&mut b, f::NAME_LEN, &self.name_len.to_le_bytes());
        put(&mut b, f::SCHEME, &self.scheme.to_le_bytes());
        put(&mut b, f::DTYPE, &self.dtype.to_le_bytes());
        put(&mut b, f::RANK, &[self.rank]);
        put(&mut b, f::CODEC, &[self.codec]);
        put(&mut b, f::FLAGS, &self.flags.to_le_bytes());
        put(&mut b, f::BLOCK_SIZE, &self.block_size.to_le_bytes());
        put(&mut b, f::AXIS, &self.axis.to_le_bytes());
        for (i, d) in self.dims.iter().enumerate() {
            put(&mut b, f::DIMS + 8 * i as u64, &d.to_le_bytes());
        }
        put(&mut b, f::DATA_OFFSET, &self.data_offset.to_le_bytes());
        put(&mut b, f::DATA_STORED_LEN, &self.data_stored_len.to_le_bytes());
        put(&mut b, f::DATA_RAW_LEN, &self.data_raw_len.to_le_bytes());
        put(&mut b, f::SCALES_OFFSET, &self.scales_offset.to_le_bytes());
        put(&mut b, f::SCALES_LEN, &self.scales_len.to_le_bytes());
        put(&mut b, f::ZEROS_OFFSET, &self.zeros_offset.to_le_bytes());
        put(&mut b, f::ZEROS_LEN, &self.zeros_len.to_le_bytes());
        put(&mut b, f::AUX_OFFSET, &self.aux_offset.to_le_bytes());
        put(&mut b, f::AUX_LEN, &self.aux_len.to_le_bytes());
        put(&mut b, f::SCALES_DTYPE, &self.scales_dtype.to_le_bytes());
        put(&mut b, f::ZEROS_DTYPE, &self.zeros_dtype.to_le_bytes());
        put(&mut b, f::AUX_DTYPE, &self.aux_dtype.to_le_bytes());
        put(&mut b, f::RESERVED_166, &self.reserved_166.to_le_bytes());
        put(&mut b, f::CRC, &self.crc.to_le_bytes());
        put(&mut b, f::RESERVED_172, &self.reserved_172.to_le_bytes());
        b
    }
}

/// `value` rounded up to a multiple of [`ALIGN`], `None` on overflow.
pub(crate) fn align_up(value: u64) -> Option<u64> {
    value.checked_add(ALIGN - 1).map(|v| v & !(ALIGN - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_seals_its_crc() {
        let h = Header {
            version_major: 1,
            version_minor: 2,
            header_size: 128,
            dir_entry_size: 176,
            tensor_count: 3,
            dir_offset: 128,
            strtab_offset: 656,
            strtab_size: 9,
            meta_offset: 704,
            meta_size: 5,
            data_offset: 768,
            data_size: 64,
            file_size: 832,
            flags: 1,
            dir_crc: 0xdead_beef,
            meta_crc: 7,
            reserved: [0; 20],
            header_crc: 0,
        };
        let b = h.encode();
        assert_eq!(&b[..8], b"SMELTBLB");
        let back = Header::decode(&b);
        assert_eq!(back.header_crc, crc32fast::hash(&b[..124]));
        assert_eq!(Header { header_crc: 0, ..back }, h);
    }

    #[test]
    fn entry_round_trips_field_by_field() {
        let e = RawEntry {
            name_offset: 1,
            name_len: 2,
            scheme: 3,
            dtype: 4,
            rank: 5,
            codec: 6,
            flags: 7,
            block_size: 8,
            axis: 9,
            dims: [10, 11, 12, 13, 14, 15, 16, 17],
            data_offset: 18,
            data_stored_len: 19,
            data_raw_len: 20,
            scales_offset: 21,
            scales_len: 22,
            zeros_offset: 23,
            zeros_len: 24,
            aux_offset: 25,
            aux_len: 26,
            scales_dtype: 27,
            zeros_dtype: 28,
            aux_dtype: 29,
            reserved_166: 30,
            crc: 31,
            reserved_172: 32,
        };
        let b = e.encode();
        assert_eq!(RawEntry::decode(&b), e);
        // Spot-check positions against the spec's table.
        assert_eq!(b[12], 5);
        assert_eq!(b[13], 6);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 10);
        assert_eq!(u64::from_le_bytes(b[80..88].try_into().unwrap()), 17);
        assert_eq!(u32::from_le_bytes(b[168..172].try_into().unwrap()), 31);
    }

    #[test]
    fn align_up_rounds_to_64() {
        assert_eq!(align_up(0), Some(0));
        assert_eq!(align_up(1), Some(64));
        assert_eq!(align_up(64), Some(64));
        assert_eq!(align_up(u64::MAX), None);
    }
}
