//! zstd and lz4 as the update uses them: one zstd frame or one lz4 block per payload, zstd
//! optionally with a range of the old file as reference prefix (long-distance matching on when
//! the window is large). Decoding is single-shot into a buffer of exactly the entry's length, so
//! no window buffer is allocated however large a window the frame declares.

use zstd::zstd_safe::{self, CParameter, DParameter};

/// zstd's largest window on 64-bit targets.
const MAX_WINDOW_LOG: u32 = 31;

fn zerr(code: usize) -> String {
    zstd_safe::get_error_name(code).to_string()
}

fn window_log_for(total: usize) -> u32 {
    let bits = usize::BITS - total.max(1).leading_zeros();
    bits.clamp(10, MAX_WINDOW_LOG)
}

/// Compresses `src` into one zstd frame at `level`, with `prefix` (may be empty) as reference.
pub fn zstd_compress(src: &[u8], prefix: &[u8], level: i32) -> Result<Vec<u8>, String> {
    let mut cctx = zstd_safe::CCtx::create();
    cctx.set_parameter(CParameter::CompressionLevel(level)).map_err(zerr)?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true)).map_err(zerr)?;
    cctx.set_parameter(CParameter::ChecksumFlag(false)).map_err(zerr)?;
    if !prefix.is_empty() {
        let wlog = window_log_for(prefix.len().saturating_add(src.len()));
        cctx.set_parameter(CParameter::WindowLog(wlog)).map_err(zerr)?;
        if wlog > 27 || prefix.len() > (1 << 20) {
            cctx.set_parameter(CParameter::EnableLongDistanceMatching(true)).map_err(zerr)?;
        }
        cctx.ref_prefix(prefix).map_err(zerr)?;
    }
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(src.len()));
    cctx.compress2(&mut out, src).map_err(zerr)?;
    Ok(out)
}

/// Decodes one zstd frame that must produce exactly `out.len()` bytes, with `prefix` as
/// reference when not empty. A fresh context per frame: the prefix is borrowed only for this
/// call, and contexts are cheap next to an entry's decode.
pub fn zstd_decompress(frame: &[u8], prefix: &[u8], out: &mut [u8]) -> Result<(), String> {
    match zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n == out.len() as u64 => {}
        Ok(Some(n)) => return Err(format!("frame declares {n} bytes, the entry {}", out.len())),
        Ok(None) => return Err("frame declares no content size".to_string()),
        Err(_) => return Err("not a zstd frame".to_string()),
    }
    let mut d = zstd_safe::DCtx::create();
    d.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG)).map_err(zerr)?;
    if !prefix.is_empty() {
        d.ref_prefix(prefix).map_err(zerr)?;
    }
    let n = d.decompress(out, frame).map_err(zerr)?;
    if n != out.len() {
        return Err(format!("frame produced {n} bytes, the entry {}", out.len()));
    }
    Ok(())
}

/// Compresses `src` into one lz4 block.
pub fn lz4_compress(src: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress(src)
}

/// Decodes one lz4 block that must produce exactly `out.len()` bytes.
pub fn lz4_decompress(block: &[u8], out: &mut [u8]) -> Result<(), String> {
    let n = lz4_flex::block::decompress_into(block, out).map_err(|e| e.to_string())?;
    if n != out.len() {
        return Err(format!("block produced {n} bytes, the entry {}", out.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_round_trips_with_and_without_prefix() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let old: Vec<u8> = (0..100_000)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u8
            })
            .collect();
        let mut new = old.clone();
        new[500] ^= 1;
        for prefix in [&old[..], &[][..]] {
            let f = zstd_compress(&new, prefix, 3).unwrap();
            let mut out = vec![0u8; new.len()];
            zstd_decompress(&f, prefix, &mut out).unwrap();
            assert_eq!(out, new);
        }
        let with = zstd_compress(&new, &old, 3).unwrap();
        let without = zstd_compress(&new, &[], 3).unwrap();
        assert!(with.len() < 1000, "prefix frame is {} bytes, plain {}", with.len(), without.len());
        let mut out = vec![0u8; new.len()];
        assert!(zstd_decompress(&with, &[], &mut out).is_err() || out != new, "decoded without its prefix");
    }
}
