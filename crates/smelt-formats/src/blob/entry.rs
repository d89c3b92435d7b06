//! One tensor of a blob as the reader hands it out: the directory entry's fields, decoded and
//! checked, and its sections as zero-copy slices of the file's bytes. Decompressing and
//! checksumming happen here, on request.

use std::io::Read as _;

use bytes::Bytes;
use smelt_tensor::DType;

use super::codes::{Codec, EntryFlags, Scheme};
use super::error::BlobError;
use super::scheme_rules::SectionKind;
use crate::{Location, Tensor};

/// One stored section of a tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Absolute offset of its first byte (0 for an empty data section).
    pub offset: u64,
    /// Dtype of its elements (for data: the entry's dtype).
    pub dtype: DType,
    /// The stored bytes, a slice of the file's bytes.
    pub bytes: Bytes,
}

impl Section {
    /// Stored length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// True when the section stores nothing.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// One directory entry and its sections.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Tensor name.
    pub name: String,
    /// How to interpret the sections.
    pub scheme: Scheme,
    /// Dtype of the data section's elements (after decompression).
    pub dtype: DType,
    /// Row-major dims, outermost first (the tensor's logical shape).
    pub dims: Vec<u64>,
    /// Compression of the data section.
    pub codec: Codec,
    /// Symmetric / per-axis / double-quantized.
    pub flags: EntryFlags,
    /// Elements per quantization block or group; 0 when the scheme has none.
    pub block_size: u32,
    /// Quantization axis of a per-axis entry.
    pub axis: Option<u32>,
    /// The data section as stored (compressed when `codec` is not [`Codec::None`]).
    pub data: Section,
    /// Length of the data section after decompression.
    pub data_raw_len: u64,
    /// Scales, when present.
    pub scales: Option<Section>,
    /// Zero points, when present.
    pub zeros: Option<Section>,
    /// Auxiliary data (`g_idx`, double-quantization statistics), when present.
    pub aux: Option<Section>,
    /// CRC-32 the directory gives for the stored sections.
    pub crc: u32,
    /// Absolute offset of the directory entry.
    pub entry_offset: u64,
}

impl Entry {
    /// Number of elements (product of dims; 1 for a scalar). The reader checked that it fits.
    pub fn numel(&self) -> u64 {
        smelt_tensor::numel(&self.dims).unwrap_or(u64::MAX)
    }

    /// The present sections, in file order (an empty data section is skipped).
    pub fn sections(&self) -> impl Iterator<Item = (SectionKind, &Section)> {
        let data = (!self.data.is_empty()).then_some((SectionKind::Data, &self.data));
        data.into_iter()
            .chain(self.scales.as_ref().map(|s| (SectionKind::Scales, s)))
            .chain(self.zeros.as_ref().map(|s| (SectionKind::Zeros, s)))
            .chain(self.aux.as_ref().map(|s| (SectionKind::Aux, s)))
    }

    /// Bytes the tensor occupies in the file (all sections as stored).
    pub fn stored_len(&self) -> u64 {
        self.sections().map(|(_, s)| s.len()).sum()
    }

    /// CRC-32 of the stored sections, in file order.
    pub fn computed_crc(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        for (_, s) in self.sections() {
            h.update(&s.bytes);
        }
        h.finalize()
    }

    /// Checks the stored sections against the directory's CRC.
    pub fn verify_checksum(&self) -> Result<(), BlobError> {
        let computed = self.computed_crc();
        if computed != self.crc {
            let offset = self
                .sections()
                .next()
                .map_or(self.entry_offset + super::layout::entry_field::CRC, |(_, s)| s.offset);
            return Err(BlobError::TensorChecksum {
                name: self.name.clone(),
                offset,
                stored: self.crc,
                computed,
            });
        }
        Ok(())
    }

    /// The data section's raw bytes: the stored slice itself when uncompressed (no copy), a new
    /// buffer of exactly `data_raw_len` bytes otherwise. A zstd stream is decoded incrementally,
    /// so memory follows what the stream really produces, never more than `data_raw_len`.
    pub fn decompressed_data(&self) -> Result<Bytes, BlobError> {
        match self.codec {
            Codec::None => Ok(self.data.bytes.clone()),
            Codec::Zstd => {
                let mut decoder = self.zstd_decoder()?;
                let mut out = Vec::new();
                // One byte more than expected tells a too-long stream from an exact one.
                let limit = self.data_raw_len.saturating_add(1);
                (&mut decoder)
                    .take(limit)
                    .read_to_end(&mut out)
                    .map_err(|e| self.decode_error(e.to_string()))?;
                self.check_decoded_len(out.len() as u64)?;
                Ok(Bytes::from(out))
            }
            Codec::Lz4 => {
                // The reader checked data_raw_len <= 255 × stored length, so this allocation is
                // bounded by the file's size.
                let len = usize::try_from(self.data_raw_len)
                    .map_err(|_| self.decode_error("too large for memory"))?;
                let mut out = vec![0u8; len];
                self.decompress_data_into(&mut out)?;
                Ok(Bytes::from(out))
            }
        }
    }

    /// Decodes the data section into `out`, which must be exactly `data_raw_len` bytes long (a
    /// caller that manages its own buffers, as a device would).
    pub fn decompress_data_into(&self, out: &mut [u8]) -> Result<(), BlobError> {
        if out.len() as u64 != self.data_raw_len {
            return Err(self.decode_error(format!(
                "output buffer is {} bytes, data_raw_len is {}",
                out.len(),
                self.data_raw_len
            )));
        }
        match self.codec {
            Codec::None => {
                out.copy_from_slice(&self.data.bytes);
                Ok(())
            }
            Codec::Zstd => {
                let mut decoder = self.zstd_decoder()?;
                let mut filled = 0usize;
                while filled < out.len() {
                    match decoder.read(&mut out[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(self.decode_error(e.to_string())),
                    }
                }
                let mut probe = [0u8; 1];
                let extra = decoder.read(&mut probe).map_err(|e| self.decode_error(e.to_string()))?;
                self.check_decoded_len(filled as u64 + extra as u64)
            }
            Codec::Lz4 => {
                let n = lz4_flex::block::decompress_into(&self.data.bytes, out).map_err(|e| match e {
                    lz4_flex::block::DecompressError::OutputTooSmall { expected, .. } => {
                        BlobError::DecompressedLength {
                            name: self.name.clone(),
                            offset: self.data.offset,
                            expected: self.data_raw_len,
                            found: expected as u64,
                        }
                    }
                    other => self.decode_error(other.to_string()),
                })?;
                self.check_decoded_len(n as u64)
            }
        }
    }

    /// A zstd decoder over the stored bytes whose window may not exceed what `data_raw_len`
    /// needs (zstd's one-shot compressor never uses more), so that a hostile frame header cannot
    /// make the decoder allocate a large window for a small tensor. Every stored byte must
    /// decode: bytes after the frame are read as a next frame, which fails to parse.
    fn zstd_decoder(&self) -> Result<zstd::stream::read::Decoder<'static, &[u8]>, BlobError> {
        let mut decoder = zstd::stream::read::Decoder::with_buffer(&self.data.bytes[..])
            .map_err(|e| self.decode_error(e.to_string()))?;
        decoder
            .window_log_max(zstd_window_log(self.data_raw_len))
            .map_err(|e| self.decode_error(e.to_string()))?;
        Ok(decoder)
    }

    fn check_decoded_len(&self, found: u64) -> Result<(), BlobError> {
        if found != self.data_raw_len {
            return Err(BlobError::DecompressedLength {
                name: self.name.clone(),
                offset: self.data.offset,
                expected: self.data_raw_len,
                found,
            });
        }
        Ok(())
    }

    fn decode_error(&self, reason: impl Into<String>) -> BlobError {
        BlobError::Decompression {
            name: self.name.clone(),
            offset: self.data.offset,
            codec: self.codec,
            reason: reason.into(),
        }
    }

    /// The entry as a plain [`Tensor`] when it is one: scheme `raw` or `ggml`, uncompressed
    /// (its bytes are then exactly `dtype.storage_bytes(dims)`). Quantized schemes have no
    /// faithful `Tensor` form (their `dtype` is that of packed codes).
    pub fn as_tensor(&self) -> Option<Tensor> {
        let plain = matches!(self.scheme, Scheme::Raw | Scheme::Ggml) && self.codec == Codec::None;
        plain.then(|| Tensor {
            name: self.name.clone(),
            dtype: self.dtype,
            shape: self.dims.clone(),
            data: self.data.bytes.clone(),
            location: Location { file: 0, offset: self.data.offset },
        })
    }
}

/// The largest zstd window (as a power of two) a frame of `raw_len` bytes may use: the smallest
/// power of two holding `raw_len`, at least zstd's minimum of 2^10, at most 2^31.
pub(crate) fn zstd_window_log(raw_len: u64) -> u32 {
    let bits = 64 - raw_len.saturating_sub(1).leading_zeros();
    bits.clamp(10, 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_window_holds_the_raw_length() {
        assert_eq!(zstd_window_log(0), 10);
        assert_eq!(zstd_window_log(1024), 10);
        assert_eq!(zstd_window_log(1025), 11);
        assert_eq!(zstd_window_log(1 << 20), 20);
        assert_eq!(zstd_window_log((1 << 20) + 1), 21);
        assert_eq!(zstd_window_log(u64::MAX), 31);
    }

    /// Regression: a frame that declares a 128 MiB window for a 16-byte tensor is refused
    /// instead of making the decoder allocate the window.
    #[test]
    fn zstd_window_larger_than_the_tensor_is_refused() {
        // Frame header: no single segment, window descriptor 0x88 (2^27), no content size;
        // then one raw last block of 16 bytes.
        let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x88];
        frame.extend_from_slice(&(1u32 | (16 << 3)).to_le_bytes()[..3]);
        frame.extend_from_slice(&[7u8; 16]);
        let entry = |stored: Vec<u8>| Entry {
            name: "t".into(),
            scheme: Scheme::Raw,
            dtype: DType::U8,
            dims: vec![16],
            codec: Codec::Zstd,
            flags: EntryFlags::NONE,
            block_size: 0,
            axis: None,
            data: Section { offset: 64, dtype: DType::U8, bytes: Bytes::from(stored) },
            data_raw_len: 16,
            scales: None,
            zeros: None,
            aux: None,
            crc: 0,
            entry_offset: 128,
        };
        let e = entry(frame.clone());
        assert!(matches!(e.decompressed_data(), Err(BlobError::Decompression { .. })));
        // The same content in a frame sized to it decodes.
        let ok = entry(zstd::bulk::compress(&[7u8; 16], 3).unwrap());
        assert_eq!(&ok.decompressed_data().unwrap()[..], &[7u8; 16]);
    }
}
