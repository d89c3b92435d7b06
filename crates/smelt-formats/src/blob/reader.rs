//! Validation of a whole blob held in memory: every check of the spec's "Reader obligations",
//! in the spec's order, each failure a [`BlobError`] with its byte offset. What passes is a
//! header and a list of [`Entry`]s whose sections are in-range, non-overlapping slices of the
//! input; tensor CRCs and the metadata are checked later, on request.

use std::collections::HashMap;

use bytes::Bytes;

use super::codes::{dtype_code, dtype_from_code, Codec, EntryFlags, Scheme};
use super::entry::{Entry, Section};
use super::error::{BlobError, Region};
use super::layout::{
    entry_field, header_field, Header, RawEntry, ALIGN, ENTRY_SIZE, HEADER_FLAG_UNCOMPRESSED, HEADER_SIZE,
    MAGIC, MAX_RANK, NO_AXIS, VERSION_MAJOR,
};
use super::scheme_rules::{
    first_bad_group_index, section_rules, EntryShape, SchemeRuleError, SectionKind, SectionRules,
};
use crate::limits;

/// A blob whose header and directory passed every structural check.
pub(crate) struct Parsed {
    pub header: Header,
    pub entries: Vec<Entry>,
}

/// Checks the header and every directory entry of `bytes`.
pub(crate) fn parse_blob(bytes: &Bytes) -> Result<Parsed, BlobError> {
    let header = parse_header(bytes)?;
    let mut entries = Vec::with_capacity(header.tensor_count as usize);
    let mut names: HashMap<String, u64> = HashMap::with_capacity(header.tensor_count as usize);
    // Names are packed in directory order: entry i's starts where entry i-1's ends.
    let mut name_end = 0u64;
    // Present sections must come in file order, all inside the data region.
    let mut previous_end = header.data_offset;
    for index in 0..u64::from(header.tensor_count) {
        let entry = parse_entry(bytes, &header, index, &mut names, &mut name_end, &mut previous_end)?;
        entries.push(entry);
    }
    Ok(Parsed { header, entries })
}

fn parse_header(bytes: &[u8]) -> Result<Header, BlobError> {
    use header_field as f;
    let len = bytes.len() as u64;
    let head: &[u8; HEADER_SIZE as usize] = bytes
        .get(..HEADER_SIZE as usize)
        .and_then(|h| h.try_into().ok())
        .ok_or(BlobError::FileTooShort { len })?;
    if head[..8] != MAGIC {
        let mut found = [0u8; 8];
        found.copy_from_slice(&head[..8]);
        return Err(BlobError::BadMagic { offset: f::MAGIC, found });
    }
    let h = Header::decode(head);
    if h.version_major != VERSION_MAJOR {
        return Err(BlobError::UnsupportedVersion {
            offset: f::VERSION_MAJOR,
            major: h.version_major,
            minor: h.version_minor,
        });
    }
    let computed = crc32fast::hash(&head[..f::HEADER_CRC as usize]);
    if computed != h.header_crc {
        return Err(BlobError::HeaderChecksum { offset: f::HEADER_CRC, stored: h.header_crc, computed });
    }
    let field = |field: &'static str, offset: u64, expected: u64, found: u64| {
        if expected == found {
            Ok(())
        } else {
            Err(BlobError::HeaderFieldValue { field, offset, expected, found })
        }
    };
    field("header_size", f::HEADER_SIZE, HEADER_SIZE, u64::from(h.header_size))?;
    field("dir_entry_size", f::DIR_ENTRY_SIZE, ENTRY_SIZE, u64::from(h.dir_entry_size))?;
    if h.file_size != len {
        return Err(BlobError::FileSizeMismatch { offset: f::FILE_SIZE, declared: h.file_size, actual: len });
    }
    if h.version_minor == 0 {
        if let Some(i) = h.reserved.iter().position(|&b| b != 0) {
            return Err(BlobError::ReservedNotZero {
                field: "header reserved bytes".into(),
                offset: f::RESERVED + i as u64,
                found: u64::from(h.reserved[i]),
            });
        }
        let undefined = h.flags & !HEADER_FLAG_UNCOMPRESSED;
        if undefined != 0 {
            return Err(BlobError::ReservedNotZero {
                field: "header flags".into(),
                offset: f::FLAGS,
                found: undefined,
            });
        }
    }
    let count = u64::from(h.tensor_count);
    if count > limits::MAX_TENSORS {
        return Err(BlobError::TooManyTensors { offset: f::TENSOR_COUNT, count, max: limits::MAX_TENSORS });
    }
    field("dir_offset", f::DIR_OFFSET, HEADER_SIZE, h.dir_offset)?;
    // count <= 2^20, so this cannot overflow.
    let dir_end = HEADER_SIZE + count * ENTRY_SIZE;
    field("strtab_offset", f::STRTAB_OFFSET, dir_end, h.strtab_offset)?;
    let has_meta = h.meta_size != 0;
    if has_meta != (h.meta_offset != 0) {
        return Err(BlobError::MetadataPresence {
            offset: f::META_OFFSET,
            meta_offset: h.meta_offset,
            meta_size: h.meta_size,
        });
    }
    for (what, offset, value) in
        [("meta_offset", f::META_OFFSET, h.meta_offset), ("data_offset", f::DATA_OFFSET, h.data_offset)]
    {
        if value % ALIGN != 0 {
            return Err(BlobError::Misaligned { what: what.into(), offset, value });
        }
    }

    let region = |region: Region, offset: u64, start: u64, size: u64, min: u64, max: u64| {
        let end = start.saturating_add(size);
        if start < min || start.checked_add(size).is_none_or(|end| end > max) {
            Err(BlobError::RegionOutOfBounds { region, offset, start, end, min, max })
        } else {
            Ok(end)
        }
    };
    region(Region::Directory, f::TENSOR_COUNT, HEADER_SIZE, dir_end - HEADER_SIZE, HEADER_SIZE, len)?;
    let strtab_limit = if has_meta { h.meta_offset } else { h.data_offset };
    let strtab_end = region(
        Region::StringTable,
        f::STRTAB_SIZE,
        h.strtab_offset,
        h.strtab_size,
        dir_end,
        strtab_limit.min(len),
    )?;
    if has_meta {
        region(
            Region::Metadata,
            f::META_OFFSET,
            h.meta_offset,
            h.meta_size,
            strtab_end,
            h.data_offset.min(len),
        )?;
    }
    region(Region::Data, f::DATA_OFFSET, h.data_offset, 0, strtab_end, len)?;
    field("data_size", f::DATA_SIZE, len - h.data_offset, h.data_size)?;

    // The region checks put strtab_end inside the file.
    let computed = crc32fast::hash(&bytes[HEADER_SIZE as usize..strtab_end as usize]);
    if computed != h.dir_crc {
        return Err(BlobError::DirectoryChecksum { offset: h.dir_offset, stored: h.dir_crc, computed });
    }
    Ok(h)
}

fn parse_entry(
    bytes: &Bytes,
    h: &Header,
    index: u64,
    names: &mut HashMap<String, u64>,
    name_end: &mut u64,
    previous_end: &mut u64,
) -> Result<Entry, BlobError> {
    use entry_field as f;
    // parse_header checked that the directory lies inside the file.
    let eo = HEADER_SIZE + index * ENTRY_SIZE;
    let raw_bytes: &[u8; ENTRY_SIZE as usize] = bytes
        .get(eo as usize..(eo + ENTRY_SIZE) as usize)
        .and_then(|b| b.try_into().ok())
        .ok_or(BlobError::FileTooShort { len: bytes.len() as u64 })?;
    let raw = RawEntry::decode(raw_bytes);

    let name = parse_name(bytes, h, index, eo, &raw, name_end)?;
    if let Some(&first_offset) = names.get(&name) {
        return Err(BlobError::DuplicateName { name, offset: eo, first_offset });
    }

    if h.version_minor == 0 {
        let reserved = [
            ("reserved bytes 166..168", f::RESERVED_166, u64::from(raw.reserved_166)),
            ("reserved bytes 172..176", f::RESERVED_172, u64::from(raw.reserved_172)),
            ("flags", f::FLAGS, u64::from(raw.flags & !EntryFlags::DEFINED)),
        ];
        for (what, at, found) in reserved {
            if found != 0 {
                return Err(BlobError::ReservedNotZero {
                    field: format!("tensor '{name}' {what}"),
                    offset: eo + at,
                    found,
                });
            }
        }
    }

    if usize::from(raw.rank) > MAX_RANK {
        return Err(BlobError::RankTooLarge { name, offset: eo + f::RANK, rank: raw.rank });
    }
    let rank = usize::from(raw.rank);
    if let Some(i) = (rank..MAX_RANK).find(|&i| raw.dims[i] != 0) {
        return Err(BlobError::UnusedDimNotZero {
            name,
            offset: eo + f::DIMS + 8 * i as u64,
            index: i,
            value: raw.dims[i],
            rank: raw.rank,
        });
    }
    let dims = &raw.dims[..rank];

    let scheme = Scheme::from_code(raw.scheme).ok_or_else(|| BlobError::UnknownScheme {
        name: name.clone(),
        offset: eo + f::SCHEME,
        code: raw.scheme,
    })?;
    let dtype_field = |field: &'static str, at: u64, code: u16| {
        dtype_from_code(code).ok_or_else(|| BlobError::UnknownDtype {
            name: name.clone(),
            field,
            offset: eo + at,
            code,
        })
    };
    let dtype = dtype_field("dtype", f::DTYPE, raw.dtype)?;
    let scales_dtype = dtype_field("scales_dtype", f::SCALES_DTYPE, raw.scales_dtype)?;
    let zeros_dtype = dtype_field("zeros_dtype", f::ZEROS_DTYPE, raw.zeros_dtype)?;
    let aux_dtype = dtype_field("aux_dtype", f::AUX_DTYPE, raw.aux_dtype)?;
    let codec = Codec::from_code(raw.codec).ok_or_else(|| BlobError::UnknownCodec {
        name: name.clone(),
        offset: eo + f::CODEC,
        code: raw.codec,
    })?;
    if h.flags & HEADER_FLAG_UNCOMPRESSED != 0 && codec != Codec::None {
        return Err(BlobError::CompressedInUncompressedFile { name, offset: eo + f::CODEC, codec });
    }

    let flags = EntryFlags(raw.flags & EntryFlags::DEFINED);
    let shape = EntryShape { scheme, dtype, dims, block_size: raw.block_size, axis: raw.axis, flags };
    let rules = section_rules(&shape).map_err(|e| rule_error(e, &name, eo, &raw))?;
    check_lengths(&rules, &name, eo, scheme, codec, &raw)?;
    let section_dtypes = [
        (SectionKind::Scales, "scales_dtype", f::SCALES_DTYPE, raw.scales_len, scales_dtype),
        (SectionKind::Zeros, "zeros_dtype", f::ZEROS_DTYPE, raw.zeros_len, zeros_dtype),
        (SectionKind::Aux, "aux_dtype", f::AUX_DTYPE, raw.aux_len, aux_dtype),
    ];
    for (kind, field, at, len, found) in section_dtypes {
        let expected = if len == 0 { None } else { rules.rule(kind).dtype() };
        let ok = match expected {
            Some(d) => d == found,
            None => dtype_code(found) == Some(0),
        };
        if !ok {
            let expected =
                expected.map_or_else(|| "code 0 (section absent)".to_owned(), |d| d.name().to_owned());
            return Err(BlobError::DtypeNotAllowed { name, field, offset: eo + at, scheme, expected, found });
        }
    }

    let sections = [
        (SectionKind::Data, f::DATA_OFFSET, raw.data_offset, raw.data_stored_len),
        (SectionKind::Scales, f::SCALES_OFFSET, raw.scales_offset, raw.scales_len),
        (SectionKind::Zeros, f::ZEROS_OFFSET, raw.zeros_offset, raw.zeros_len),
        (SectionKind::Aux, f::AUX_OFFSET, raw.aux_offset, raw.aux_len),
    ];
    for (section, at, start, len) in sections {
        if len == 0 {
            if start != 0 {
                return Err(BlobError::AbsentSectionOffset { name, section, offset: eo + at, value: start });
            }
            continue;
        }
        if start % ALIGN != 0 {
            let what = format!("tensor '{name}' {section}_offset");
            return Err(BlobError::Misaligned { what, offset: eo + at, value: start });
        }
        let end = start.checked_add(len).filter(|&end| start >= h.data_offset && end <= h.file_size);
        let Some(end) = end else {
            return Err(BlobError::SectionOutOfBounds {
                name,
                section,
                start,
                end: start.saturating_add(len),
                data_offset: h.data_offset,
                file_size: h.file_size,
            });
        };
        if start < *previous_end {
            return Err(BlobError::SectionOutOfOrder { name, section, start, previous_end: *previous_end });
        }
        *previous_end = end;
    }

    // Every present section is inside the file now, so these slices are in range.
    let slice = |start: u64, len: u64| {
        if len == 0 {
            Bytes::new()
        } else {
            bytes.slice(start as usize..(start + len) as usize)
        }
    };
    let section = |start: u64, len: u64, dtype| {
        (len != 0).then(|| Section { offset: start, dtype, bytes: slice(start, len) })
    };
    let aux = section(raw.aux_offset, raw.aux_len, aux_dtype);
    if let (Some(groups), Some(aux)) = (rules.groups, &aux) {
        check_group_indices(&name, aux, groups)?;
    }
    names.insert(name.clone(), eo);
    Ok(Entry {
        name,
        scheme,
        dtype,
        dims: dims.to_vec(),
        codec,
        flags,
        block_size: raw.block_size,
        axis: (raw.axis != NO_AXIS).then_some(raw.axis),
        data: Section { offset: raw.data_offset, dtype, bytes: slice(raw.data_offset, raw.data_stored_len) },
        data_raw_len: raw.data_raw_len,
        scales: section(raw.scales_offset, raw.scales_len, scales_dtype),
        zeros: section(raw.zeros_offset, raw.zeros_len, zeros_dtype),
        aux,
        crc: raw.crc,
        entry_offset: eo,
    })
}

/// The entry's name, which must start at `*name_end` (where the previous one ended); moves
/// `*name_end` past it. Packing means the names' total length is the string table's, however
/// many entries there are.
fn parse_name(
    bytes: &[u8],
    h: &Header,
    index: u64,
    eo: u64,
    raw: &RawEntry,
    name_end: &mut u64,
) -> Result<String, BlobError> {
    use entry_field as f;
    let start = u64::from(raw.name_offset);
    let len = u64::from(raw.name_len);
    if start != *name_end {
        return Err(BlobError::NameNotPacked {
            index,
            offset: eo + f::NAME_OFFSET,
            expected: *name_end,
            found: raw.name_offset,
        });
    }
    // start + len < 2^33: no overflow.
    if start + len > h.strtab_size {
        return Err(BlobError::NameOutOfBounds {
            index,
            offset: eo + f::NAME_OFFSET,
            name_offset: raw.name_offset,
            name_len: raw.name_len,
            strtab_size: h.strtab_size,
        });
    }
    if len == 0 {
        return Err(BlobError::EmptyName { index, offset: eo + f::NAME_LEN });
    }
    if len > limits::MAX_NAME_LEN {
        return Err(BlobError::NameTooLong {
            index,
            offset: eo + f::NAME_LEN,
            len,
            max: limits::MAX_NAME_LEN,
        });
    }
    // The string table lies inside the file (parse_header), and the name inside the table.
    let at = h.strtab_offset + start;
    let name_bytes = &bytes[at as usize..(at + len) as usize];
    match std::str::from_utf8(name_bytes) {
        Ok(s) => {
            *name_end = start + len;
            Ok(s.to_owned())
        }
        Err(e) => Err(BlobError::NameNotUtf8 { index, offset: at, bad_byte: at + e.valid_up_to() as u64 }),
    }
}

fn rule_error(e: SchemeRuleError, name: &str, eo: u64, raw: &RawEntry) -> BlobError {
    use entry_field as f;
    use SchemeRuleError as R;
    let name = name.to_owned();
    match e {
        R::DtypeNotAllowed { scheme, found, allowed } => BlobError::DtypeNotAllowed {
            name,
            field: "dtype",
            offset: eo + f::DTYPE,
            scheme,
            expected: allowed.to_owned(),
            found,
        },
        R::RankNotAllowed { scheme, .. } => {
            BlobError::RankNotAllowed { name, offset: eo + f::RANK, scheme, rank: raw.rank }
        }
        R::FlagsNotAllowed { scheme, bits, .. } => {
            BlobError::FlagsNotAllowed { name, offset: eo + f::FLAGS, scheme, bits }
        }
        R::BadBlockSize { scheme, found, expected } => {
            BlobError::BadBlockSize { name, offset: eo + f::BLOCK_SIZE, scheme, found, expected }
        }
        R::BadAxis { axis, per_axis, .. } => {
            BlobError::BadAxis { name, offset: eo + f::AXIS, axis, rank: raw.rank, per_axis }
        }
        R::SizeOverflow => BlobError::SizeOverflow { name, offset: eo + f::DIMS },
        R::RowNotWholeBlocks { dtype, row_len, block } => {
            let last = u64::from(raw.rank.saturating_sub(1));
            BlobError::RowNotWholeBlocks { name, offset: eo + f::DIMS + 8 * last, dtype, row_len, block }
        }
    }
}

fn check_lengths(
    rules: &SectionRules,
    name: &str,
    eo: u64,
    scheme: Scheme,
    codec: Codec,
    raw: &RawEntry,
) -> Result<(), BlobError> {
    use entry_field as f;
    let length = |section, at, expected, found| BlobError::SectionLength {
        name: name.to_owned(),
        section,
        offset: eo + at,
        scheme,
        expected,
        found,
    };
    if raw.data_raw_len != rules.data_raw_len {
        return Err(length(SectionKind::Data, f::DATA_RAW_LEN, rules.data_raw_len, raw.data_raw_len));
    }
    for (kind, at, len) in [
        (SectionKind::Scales, f::SCALES_LEN, raw.scales_len),
        (SectionKind::Zeros, f::ZEROS_LEN, raw.zeros_len),
        (SectionKind::Aux, f::AUX_LEN, raw.aux_len),
    ] {
        let rule = rules.rule(kind);
        if !rule.allows_len(len) {
            return Err(length(kind, at, rule.expected_len(), len));
        }
    }
    let (stored, raw_len) = (raw.data_stored_len, raw.data_raw_len);
    if codec == Codec::None {
        if stored != raw_len {
            return Err(BlobError::StoredLengthMismatch {
                name: name.to_owned(),
                offset: eo + f::DATA_STORED_LEN,
                stored,
                raw: raw_len,
            });
        }
    } else {
        let max = stored.saturating_mul(codec.max_expansion());
        if raw_len > max {
            return Err(BlobError::ImpossibleRawLength {
                name: name.to_owned(),
                offset: eo + f::DATA_RAW_LEN,
                codec,
                stored,
                raw: raw_len,
                max,
            });
        }
    }
    Ok(())
}

fn check_group_indices(name: &str, aux: &Section, groups: u64) -> Result<(), BlobError> {
    match first_bad_group_index(&aux.bytes, groups) {
        None => Ok(()),
        Some((column, value)) => Err(BlobError::GroupIndexOutOfRange {
            name: name.to_owned(),
            offset: aux.offset + 4 * column,
            column,
            value,
            groups,
        }),
    }
}
