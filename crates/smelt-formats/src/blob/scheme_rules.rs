//! The spec's "Exact rules per scheme": which dtype, flags, block size and axis an entry may
//! have, and the exact length and dtype of each of its sections. The reader checks a file's
//! directory against these rules and the writer checks what its caller declares, so a blob the
//! writer accepts is one the reader accepts.

use std::fmt;

use smelt_tensor::DType;

use super::codes::{EntryFlags, Scheme};
use super::layout::NO_AXIS;

/// One of a tensor's four sections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// The (possibly compressed) codes or values.
    Data,
    /// Scales (or NF4 absmax).
    Scales,
    /// Zero points.
    Zeros,
    /// Auxiliary data (`g_idx`, NF4 double-quantization statistics).
    Aux,
}

impl SectionKind {
    /// The four sections in file order.
    pub const ALL: [SectionKind; 4] =
        [SectionKind::Data, SectionKind::Scales, SectionKind::Zeros, SectionKind::Aux];

    /// Lower-case name (`data`, `scales`, `zeros`, `aux`).
    pub const fn name(self) -> &'static str {
        match self {
            SectionKind::Data => "data",
            SectionKind::Scales => "scales",
            SectionKind::Zeros => "zeros",
            SectionKind::Aux => "aux",
        }
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an entry declares about itself, before any section is looked at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryShape<'a> {
    pub scheme: Scheme,
    pub dtype: DType,
    pub dims: &'a [u64],
    pub block_size: u32,
    /// [`NO_AXIS`] when none.
    pub axis: u32,
    /// Only the bits the format defines ([`EntryFlags::DEFINED`]).
    pub flags: EntryFlags,
}

/// What one section of an entry must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SectionRule {
    /// Length 0.
    Absent,
    /// Exactly this many bytes of this dtype.
    Exactly { dtype: DType, len: u64 },
    /// Either absent or exactly this (int4's optional `g_idx`).
    AbsentOr { dtype: DType, len: u64 },
}

impl SectionRule {
    fn exactly(dtype: DType, len: u64) -> SectionRule {
        if len == 0 {
            SectionRule::Absent
        } else {
            SectionRule::Exactly { dtype, len }
        }
    }

    /// Whether a section of `len` bytes satisfies the rule.
    pub fn allows_len(self, len: u64) -> bool {
        match self {
            SectionRule::Absent => len == 0,
            SectionRule::Exactly { len: want, .. } => len == want,
            SectionRule::AbsentOr { len: want, .. } => len == 0 || len == want,
        }
    }

    /// The dtype a present section must have.
    pub fn dtype(self) -> Option<DType> {
        match self {
            SectionRule::Absent => None,
            SectionRule::Exactly { dtype, .. } | SectionRule::AbsentOr { dtype, .. } => Some(dtype),
        }
    }

    /// The length the rule names (0 when absent), for error messages.
    pub fn expected_len(self) -> u64 {
        match self {
            SectionRule::Absent => 0,
            SectionRule::Exactly { len, .. } | SectionRule::AbsentOr { len, .. } => len,
        }
    }
}

/// The sections an entry must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SectionRules {
    /// Exact `data_raw_len`.
    pub data_raw_len: u64,
    pub scales: SectionRule,
    pub zeros: SectionRule,
    pub aux: SectionRule,
    /// For int4 with `g_idx`: the number of groups each value must stay below.
    pub groups: Option<u64>,
}

impl SectionRules {
    /// The rule of a non-data section.
    pub fn rule(&self, kind: SectionKind) -> SectionRule {
        match kind {
            SectionKind::Data => SectionRule::Absent,
            SectionKind::Scales => self.scales,
            SectionKind::Zeros => self.zeros,
            SectionKind::Aux => self.aux,
        }
    }
}

/// How an entry breaks its scheme's rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemeRuleError {
    /// The data dtype is not one the scheme allows.
    #[error("scheme {scheme} stores {allowed}, not {found}")]
    DtypeNotAllowed {
        /// The scheme.
        scheme: Scheme,
        /// The dtype found.
        found: DType,
        /// What the scheme allows, in words.
        allowed: &'static str,
    },
    /// The rank is not one the scheme allows (int4 needs rank ≥ 1).
    #[error("scheme {scheme} needs rank >= 1, found rank {rank}")]
    RankNotAllowed {
        /// The scheme.
        scheme: Scheme,
        /// The rank found.
        rank: usize,
    },
    /// A flag the scheme does not use is set.
    #[error("scheme {scheme} does not use flag bits {bits:#06x} (flags {flags:#06x})")]
    FlagsNotAllowed {
        /// The scheme.
        scheme: Scheme,
        /// All the entry's flags.
        flags: u16,
        /// The bits the scheme does not use.
        bits: u16,
    },
    /// The block size is wrong for the scheme.
    #[error("scheme {scheme} needs block_size {expected}, found {found}")]
    BadBlockSize {
        /// The scheme.
        scheme: Scheme,
        /// The block size found.
        found: u32,
        /// What the scheme needs, in words.
        expected: &'static str,
    },
    /// The axis is out of range, or given where the scheme has none.
    #[error("axis {axis:#x} is not valid for rank {rank} (per-axis: {per_axis})")]
    BadAxis {
        /// The axis found.
        axis: u32,
        /// The rank.
        rank: usize,
        /// Whether the per-axis flag is set.
        per_axis: bool,
    },
    /// The element count or a section size does not fit in 64 bits.
    #[error("element count or a section size overflows 64 bits")]
    SizeOverflow,
    /// A ggml tensor's rows are not whole blocks.
    #[error("row length {row_len} is not a multiple of {dtype}'s block of {block}")]
    RowNotWholeBlocks {
        /// The dtype.
        dtype: DType,
        /// `dims[rank-1]` (1 for a scalar).
        row_len: u64,
        /// The dtype's block size in elements.
        block: u64,
    },
}

/// The flag bits each scheme uses.
fn flags_used(scheme: Scheme) -> u16 {
    match scheme {
        Scheme::Int8 => EntryFlags::SYMMETRIC | EntryFlags::PER_AXIS,
        Scheme::Nf4 => EntryFlags::DOUBLE_QUANT,
        Scheme::Int4 => EntryFlags::SYMMETRIC,
        Scheme::Raw | Scheme::Ternary2 | Scheme::Ternary3 | Scheme::Ggml => 0,
    }
}

/// Checks `e` against its scheme's rules and returns what its sections must be.
pub(crate) fn section_rules(e: &EntryShape<'_>) -> Result<SectionRules, SchemeRuleError> {
    use SchemeRuleError as R;
    let scheme = e.scheme;
    let rank = e.dims.len();

    let dtype_ok = match scheme {
        Scheme::Raw => !e.dtype.is_ggml_block(),
        Scheme::Int8 => matches!(e.dtype, DType::I8 | DType::U8),
        Scheme::Nf4 | Scheme::Int4 | Scheme::Ternary2 | Scheme::Ternary3 => e.dtype == DType::U8,
        Scheme::Ggml => e.dtype.is_ggml_block(),
    };
    if !dtype_ok {
        let allowed = match scheme {
            Scheme::Raw => "a non-ggml dtype",
            Scheme::Int8 => "I8 or U8",
            Scheme::Ggml => "a ggml block type",
            _ => "U8",
        };
        return Err(R::DtypeNotAllowed { scheme, found: e.dtype, allowed });
    }
    if scheme == Scheme::Int4 && rank == 0 {
        return Err(R::RankNotAllowed { scheme, rank });
    }
    let bits = e.flags.0 & !flags_used(scheme);
    if bits != 0 {
        return Err(R::FlagsNotAllowed { scheme, flags: e.flags.0, bits });
    }
    let needs_block = matches!(scheme, Scheme::Nf4 | Scheme::Int4);
    if needs_block != (e.block_size != 0) {
        let expected = if needs_block { ">= 1" } else { "0" };
        return Err(R::BadBlockSize { scheme, found: e.block_size, expected });
    }
    let per_axis = e.flags.per_axis();
    let axis_ok = if per_axis { (e.axis as usize) < rank && e.axis != NO_AXIS } else { e.axis == NO_AXIS };
    if !axis_ok {
        return Err(R::BadAxis { axis: e.axis, rank, per_axis });
    }

    let numel = smelt_tensor::numel(e.dims).ok_or(R::SizeOverflow)?;
    let times = |a: u64, b: u64| a.checked_mul(b).ok_or(R::SizeOverflow);
    let block = u64::from(e.block_size);
    let mut rules = SectionRules {
        data_raw_len: 0,
        scales: SectionRule::Absent,
        zeros: SectionRule::Absent,
        aux: SectionRule::Absent,
        groups: None,
    };
    match scheme {
        Scheme::Raw => {
            rules.data_raw_len = e.dtype.storage_bytes(e.dims).ok_or(R::SizeOverflow)?;
        }
        Scheme::Ggml => {
            let row_len = e.dims.last().copied().unwrap_or(1);
            let block = e.dtype.block_elems();
            if row_len % block != 0 {
                return Err(R::RowNotWholeBlocks { dtype: e.dtype, row_len, block });
            }
            rules.data_raw_len = e.dtype.storage_bytes(e.dims).ok_or(R::SizeOverflow)?;
        }
        Scheme::Int8 => {
            let count = if per_axis { e.dims[e.axis as usize] } else { 1 };
            rules.data_raw_len = numel;
            rules.scales = SectionRule::exactly(DType::F32, times(count, 4)?);
            if !e.flags.symmetric() {
                rules.zeros = SectionRule::exactly(e.dtype, count);
            }
        }
        Scheme::Nf4 => {
            let n_blocks = numel.div_ceil(block);
            rules.data_raw_len = numel.div_ceil(2);
            if e.flags.double_quant() {
                rules.scales = SectionRule::exactly(DType::U8, n_blocks);
                let aux_floats = n_blocks.div_ceil(256) + 1 + 256;
                rules.aux = SectionRule::exactly(DType::F32, times(aux_floats, 4)?);
            } else {
                rules.scales = SectionRule::exactly(DType::F32, times(n_blocks, 4)?);
            }
        }
        Scheme::Int4 => {
            let cols = e.dims[rank - 1];
            let rows = smelt_tensor::numel(&e.dims[..rank - 1]).ok_or(R::SizeOverflow)?;
            let groups = cols.div_ceil(block);
            let cells = times(rows, groups)?;
            rules.data_raw_len = times(rows, cols.div_ceil(2))?;
            rules.scales = SectionRule::exactly(DType::F32, times(cells, 4)?);
            if !e.flags.symmetric() {
                rules.zeros = SectionRule::exactly(DType::U8, cells);
            }
            let g_idx_len = times(cols, 4)?;
            if g_idx_len != 0 {
                rules.aux = SectionRule::AbsentOr { dtype: DType::I32, len: g_idx_len };
            }
            rules.groups = Some(groups);
        }
        Scheme::Ternary2 => {
            rules.data_raw_len = numel.div_ceil(4);
            rules.scales = SectionRule::exactly(DType::F32, 4);
        }
        Scheme::Ternary3 => {
            rules.data_raw_len = numel.div_ceil(5);
            rules.scales = SectionRule::exactly(DType::F32, 4);
        }
    }
    Ok(rules)
}

/// The first `g_idx` value (little-endian I32s in `aux`) outside `0..groups`, as
/// `(column, value)`.
pub(crate) fn first_bad_group_index(aux: &[u8], groups: u64) -> Option<(u64, i32)> {
    aux.chunks_exact(4).enumerate().find_map(|(column, chunk)| {
        let value = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        (value < 0 || value as u64 >= groups).then_some((column as u64, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(
        scheme: Scheme,
        dtype: DType,
        dims: &[u64],
        block_size: u32,
        axis: u32,
        flags: u16,
    ) -> EntryShape<'_> {
        EntryShape { scheme, dtype, dims, block_size, axis, flags: EntryFlags(flags) }
    }

    #[test]
    fn lengths_follow_the_spec_table() {
        let r = section_rules(&shape(Scheme::Raw, DType::I4, &[3, 3], 0, NO_AXIS, 0)).unwrap();
        assert_eq!((r.data_raw_len, r.scales), (5, SectionRule::Absent));

        let r = section_rules(&shape(Scheme::Int8, DType::U8, &[3, 5], 0, 0, EntryFlags::PER_AXIS)).unwrap();
        assert_eq!(r.data_raw_len, 15);
        assert_eq!(r.scales, SectionRule::Exactly { dtype: DType::F32, len: 12 });
        assert_eq!(r.zeros, SectionRule::Exactly { dtype: DType::U8, len: 3 });

        let r =
            section_rules(&shape(Scheme::Int8, DType::I8, &[], 0, NO_AXIS, EntryFlags::SYMMETRIC)).unwrap();
        assert_eq!((r.data_raw_len, r.zeros), (1, SectionRule::Absent));

        let r = section_rules(&shape(Scheme::Nf4, DType::U8, &[3, 45], 64, NO_AXIS, 0)).unwrap();
        assert_eq!(r.data_raw_len, 68);
        assert_eq!(r.scales, SectionRule::Exactly { dtype: DType::F32, len: 3 * 4 });

        let r =
            section_rules(&shape(Scheme::Nf4, DType::U8, &[300, 64], 64, NO_AXIS, EntryFlags::DOUBLE_QUANT))
                .unwrap();
        assert_eq!(r.scales, SectionRule::Exactly { dtype: DType::U8, len: 300 });
        assert_eq!(r.aux, SectionRule::Exactly { dtype: DType::F32, len: (1 + 2 + 256) * 4 });

        let r = section_rules(&shape(Scheme::Int4, DType::U8, &[3, 33], 32, NO_AXIS, 0)).unwrap();
        assert_eq!(r.data_raw_len, 3 * 17);
        assert_eq!(r.scales, SectionRule::Exactly { dtype: DType::F32, len: 3 * 2 * 4 });
        assert_eq!(r.zeros, SectionRule::Exactly { dtype: DType::U8, len: 6 });
        assert_eq!(r.aux, SectionRule::AbsentOr { dtype: DType::I32, len: 33 * 4 });
        assert_eq!(r.groups, Some(2));

        let r = section_rules(&shape(Scheme::Ternary2, DType::U8, &[2, 5], 0, NO_AXIS, 0)).unwrap();
        assert_eq!(r.data_raw_len, 3);
        let r = section_rules(&shape(Scheme::Ternary3, DType::U8, &[2, 5], 0, NO_AXIS, 0)).unwrap();
        assert_eq!(r.data_raw_len, 2);
        let r = section_rules(&shape(Scheme::Ggml, DType::Q8_0, &[2, 64], 0, NO_AXIS, 0)).unwrap();
        assert_eq!(r.data_raw_len, 4 * 34);
    }

    #[test]
    fn violations_are_named() {
        use SchemeRuleError as R;
        let err = |s: EntryShape<'_>| section_rules(&s).unwrap_err();
        assert!(matches!(
            err(shape(Scheme::Raw, DType::Q4_0, &[32], 0, NO_AXIS, 0)),
            R::DtypeNotAllowed { .. }
        ));
        assert!(matches!(err(shape(Scheme::Int4, DType::U8, &[], 32, NO_AXIS, 0)), R::RankNotAllowed { .. }));
        assert!(matches!(
            err(shape(Scheme::Nf4, DType::U8, &[4], 64, NO_AXIS, 1)),
            R::FlagsNotAllowed { .. }
        ));
        assert!(matches!(err(shape(Scheme::Nf4, DType::U8, &[4], 0, NO_AXIS, 0)), R::BadBlockSize { .. }));
        assert!(matches!(err(shape(Scheme::Raw, DType::F32, &[4], 1, NO_AXIS, 0)), R::BadBlockSize { .. }));
        assert!(matches!(err(shape(Scheme::Int8, DType::I8, &[4], 0, 1, 2)), R::BadAxis { .. }));
        assert!(matches!(err(shape(Scheme::Int8, DType::I8, &[4], 0, 0, 0)), R::BadAxis { .. }));
        assert!(matches!(
            err(shape(Scheme::Raw, DType::F64, &[u64::MAX, 2], 0, NO_AXIS, 0)),
            R::SizeOverflow
        ));
        assert!(matches!(
            err(shape(Scheme::Ggml, DType::Q4_0, &[2, 33], 0, NO_AXIS, 0)),
            R::RowNotWholeBlocks { .. }
        ));
        assert!(matches!(
            err(shape(Scheme::Ggml, DType::Q4_0, &[], 0, NO_AXIS, 0)),
            R::RowNotWholeBlocks { .. }
        ));
    }
}
