//! XOR with the old bytes plus byte grouping, the transform that makes a slightly changed
//! float tensor compress: a fine-tune leaves the sign and exponent byte of most values alone
//! and changes low mantissa bits, so after XOR the high-byte plane is nearly all zeros and the
//! low-byte plane holds small values, and an entropy coder sees each plane's statistics apart.
//!
//! With `n = len / w` whole elements, plane `j` (0 ≤ j < w) holds byte `j` of every element,
//! planes follow each other, and the `len % w` tail bytes come last, ungrouped (spec:
//! docs/delta-format.md, "XOR methods").

/// XORs `new` with `old` (same length) and groups the result into `w` byte planes.
pub fn xor_group(new: &[u8], old: &[u8], w: usize) -> Vec<u8> {
    debug_assert_eq!(new.len(), old.len());
    let w = w.max(1);
    let n = new.len() / w;
    let mut out = vec![0u8; new.len()];
    if w == 1 {
        for ((o, a), b) in out.iter_mut().zip(new).zip(old) {
            *o = a ^ b;
        }
        return out;
    }
    let (planes, tail) = out.split_at_mut(n * w);
    for (i, (a, b)) in new[..n * w].chunks_exact(w).zip(old[..n * w].chunks_exact(w)).enumerate() {
        for j in 0..w {
            planes[j * n + i] = a[j] ^ b[j];
        }
    }
    for ((o, a), b) in tail.iter_mut().zip(&new[n * w..]).zip(&old[n * w..]) {
        *o = a ^ b;
    }
    out
}

/// Writes bytes `start..start + out.len()` of the ungrouped result: `grouped` (the whole
/// transformed entry, `old.len()` bytes) back into element order, XORed with `old`.
/// `start` must be a multiple of `w` (the caller streams whole elements).
pub fn ungroup_xor_range(grouped: &[u8], old: &[u8], w: usize, start: usize, out: &mut [u8]) {
    let w = w.max(1);
    let len = grouped.len();
    let n = len / w;
    let end = start + out.len();
    if w == 1 {
        for ((o, g), b) in out.iter_mut().zip(&grouped[start..end]).zip(&old[start..end]) {
            *o = g ^ b;
        }
        return;
    }
    let body_end = end.min(n * w);
    if start < body_end {
        let e0 = start / w;
        let e1 = body_end / w;
        let dst = &mut out[..body_end - start];
        let src_old = &old[start..body_end];
        match w {
            2 => {
                let planes = grouped[e0..e1].iter().zip(&grouped[n + e0..n + e1]);
                for ((d, o), (&z0, &z1)) in dst.chunks_exact_mut(2).zip(src_old.chunks_exact(2)).zip(planes) {
                    d[0] = z0 ^ o[0];
                    d[1] = z1 ^ o[1];
                }
            }
            4 => {
                let p = |j: usize| &grouped[j * n + e0..j * n + e1];
                let planes = p(0).iter().zip(p(1)).zip(p(2).iter().zip(p(3)));
                for ((d, o), ((&z0, &z1), (&z2, &z3))) in
                    dst.chunks_exact_mut(4).zip(src_old.chunks_exact(4)).zip(planes)
                {
                    d[0] = z0 ^ o[0];
                    d[1] = z1 ^ o[1];
                    d[2] = z2 ^ o[2];
                    d[3] = z3 ^ o[3];
                }
            }
            _ => {
                for (k, (d, o)) in dst.chunks_exact_mut(w).zip(src_old.chunks_exact(w)).enumerate() {
                    for j in 0..w {
                        d[j] = grouped[j * n + e0 + k] ^ o[j];
                    }
                }
            }
        }
    }
    let tail_from = start.max(n * w);
    for p in tail_from..end {
        out[p - start] = grouped[p] ^ old[p];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ungroup_inverts_group_for_every_width_length_and_chunking() {
        for w in [1usize, 2, 3, 4, 34] {
            for len in [0usize, 1, 5, 63, 64, 65, 200] {
                let new: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let old: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
                let g = xor_group(&new, &old, w);
                for chunk in [w, 3 * w, 64 * w] {
                    let mut back = vec![0u8; len];
                    let mut at = 0;
                    while at < len {
                        let e = (at + chunk).min(len);
                        ungroup_xor_range(&g, &old, w, at, &mut back[at..e]);
                        at = e;
                    }
                    assert_eq!(back, new, "w {w} len {len} chunk {chunk}");
                }
            }
        }
    }

    #[test]
    fn planes_hold_one_byte_position_each() {
        let new = [1u8, 2, 3, 4, 5, 6, 7];
        let old = [0u8; 7];
        assert_eq!(xor_group(&new, &old, 2), vec![1, 3, 5, 2, 4, 6, 7]);
    }
}

/// Float-aware delta: each element of width `w` (2: f16/bf16, 4: f32; little-endian) is mapped
/// to an integer that orders like the float (sign-magnitude to offset binary), the old element's
/// key is subtracted (wrapping), the difference is zigzag-coded (small magnitudes of either sign
/// become small numbers) and the result is byte-grouped like [`xor_group`]. A change of a few
/// ulps becomes a byte plane of small values and planes of zeros, where XOR leaves carry
/// patterns. Any other `w` treats the bytes as two's-complement integers (int8 codes, ggml
/// blocks): wrapping byte difference and zigzag, grouped by `w` (1: no grouping). Tail bytes
/// (`len % w`) are XORed.
pub fn delta_group(new: &[u8], old: &[u8], w: usize) -> Vec<u8> {
    debug_assert_eq!(new.len(), old.len());
    let n = new.len() / w;
    let mut out = vec![0u8; new.len()];
    match w {
        2 => {
            for (i, (a, b)) in new.chunks_exact(2).zip(old.chunks_exact(2)).enumerate() {
                let (a, b) = (u16::from_le_bytes([a[0], a[1]]), u16::from_le_bytes([b[0], b[1]]));
                let z = zig16(key16(a).wrapping_sub(key16(b)) as i16).to_le_bytes();
                out[i] = z[0];
                out[n + i] = z[1];
            }
        }
        4 => {
            for (i, (a, b)) in new.chunks_exact(4).zip(old.chunks_exact(4)).enumerate() {
                let a = u32::from_le_bytes([a[0], a[1], a[2], a[3]]);
                let b = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let z = zig32(key32(a).wrapping_sub(key32(b)) as i32).to_le_bytes();
                for j in 0..4 {
                    out[j * n + i] = z[j];
                }
            }
        }
        _ => {
            // Bytes as int8 codes (and a ggml block's scale bytes), grouped by `w`.
            for (i, (a, b)) in new[..n * w].chunks_exact(w).zip(old[..n * w].chunks_exact(w)).enumerate() {
                for j in 0..w {
                    out[j * n + i] = zig8(a[j].wrapping_sub(b[j]) as i8);
                }
            }
        }
    }
    for p in n * w..new.len() {
        out[p] = new[p] ^ old[p];
    }
    out
}

/// Inverse of [`delta_group`] for bytes `start..start + out.len()` (`start` a multiple of `w`).
pub fn undelta_range(grouped: &[u8], old: &[u8], w: usize, start: usize, out: &mut [u8]) {
    let len = grouped.len();
    let n = len / w;
    let end = start + out.len();
    let body_end = end.min(n * w);
    if start < body_end {
        let (e0, e1) = (start / w, body_end / w);
        let dst = &mut out[..body_end - start];
        let src_old = &old[start..body_end];
        match w {
            1 => {
                for ((d, &z), &o) in dst.iter_mut().zip(&grouped[e0..e1]).zip(src_old) {
                    *d = o.wrapping_add(unzig8(z) as u8);
                }
            }
            // Zipped iterators, not indexing: no bounds checks in the loop, so it vectorizes
            // (this loop is a large share of `patch` on float tensors).
            2 => {
                let planes = grouped[e0..e1].iter().zip(&grouped[n + e0..n + e1]);
                for ((d, o), (&z0, &z1)) in dst.chunks_exact_mut(2).zip(src_old.chunks_exact(2)).zip(planes) {
                    let b = u16::from_le_bytes([o[0], o[1]]);
                    let diff = unzig16(u16::from_le_bytes([z0, z1]));
                    d.copy_from_slice(&unkey16(key16(b).wrapping_add(diff as u16)).to_le_bytes());
                }
            }
            4 => {
                let p = |j: usize| &grouped[j * n + e0..j * n + e1];
                let planes = p(0).iter().zip(p(1)).zip(p(2).iter().zip(p(3)));
                for ((d, o), ((&z0, &z1), (&z2, &z3))) in
                    dst.chunks_exact_mut(4).zip(src_old.chunks_exact(4)).zip(planes)
                {
                    let b = u32::from_le_bytes([o[0], o[1], o[2], o[3]]);
                    let diff = unzig32(u32::from_le_bytes([z0, z1, z2, z3]));
                    d.copy_from_slice(&unkey32(key32(b).wrapping_add(diff as u32)).to_le_bytes());
                }
            }
            _ => {
                for (k, (d, o)) in dst.chunks_exact_mut(w).zip(src_old.chunks_exact(w)).enumerate() {
                    for j in 0..w {
                        d[j] = o[j].wrapping_add(unzig8(grouped[j * n + e0 + k]) as u8);
                    }
                }
            }
        }
    }
    for p in start.max(n * w)..end {
        out[p - start] = grouped[p] ^ old[p];
    }
}

// Branch-free: a weight's sign is a coin flip, and a branch on it would mispredict half the
// time. key(u) = !u for negative floats, u | signbit otherwise; unkey inverts it.
fn key16(u: u16) -> u16 {
    u ^ (((u as i16) >> 15) as u16 | 0x8000)
}
fn unkey16(k: u16) -> u16 {
    k ^ (!((k as i16) >> 15) as u16 | 0x8000)
}
fn key32(u: u32) -> u32 {
    u ^ (((u as i32) >> 31) as u32 | 0x8000_0000)
}
fn unkey32(k: u32) -> u32 {
    k ^ (!((k as i32) >> 31) as u32 | 0x8000_0000)
}
fn zig8(d: i8) -> u8 {
    ((d << 1) ^ (d >> 7)) as u8
}
fn unzig8(z: u8) -> i8 {
    ((z >> 1) as i8) ^ -((z & 1) as i8)
}
fn zig16(d: i16) -> u16 {
    ((d << 1) ^ (d >> 15)) as u16
}
fn unzig16(z: u16) -> i16 {
    ((z >> 1) as i16) ^ -((z & 1) as i16)
}
fn zig32(d: i32) -> u32 {
    ((d << 1) ^ (d >> 31)) as u32
}
fn unzig32(z: u32) -> i32 {
    ((z >> 1) as i32) ^ -((z & 1) as i32)
}

#[cfg(test)]
mod delta_tests {
    use super::*;

    #[test]
    fn undelta_inverts_delta_for_every_width_length_and_chunking() {
        for w in [1usize, 2, 3, 4, 34] {
            for len in [0usize, 1, 5, 63, 64, 65, 203] {
                let new: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8 ^ 0x80).collect();
                let old: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
                let g = delta_group(&new, &old, w);
                for chunk in [w, 3 * w, 64 * w] {
                    let mut back = vec![0u8; len];
                    let mut at = 0;
                    while at < len {
                        let e = (at + chunk).min(len);
                        undelta_range(&g, &old, w, at, &mut back[at..e]);
                        at = e;
                    }
                    assert_eq!(back, new, "w {w} len {len} chunk {chunk}");
                }
            }
        }
    }

    #[test]
    fn keys_order_like_the_floats_and_invert() {
        let mut prev: Option<(f32, u16)> = None;
        let mut vals: Vec<f32> = (-300..=300).map(|i| i as f32 * 0.37).collect();
        vals.sort_by(f32::total_cmp);
        for v in vals {
            let b = half::bf16::from_f32(v).to_bits();
            assert_eq!(unkey16(key16(b)), b);
            if let Some((pv, pk)) = prev {
                if pv < v && half::bf16::from_f32(pv) != half::bf16::from_f32(v) {
                    assert!(pk < key16(b), "{pv} {v}");
                }
            }
            prev = Some((v, key16(b)));
            let u = v.to_bits();
            assert_eq!(unkey32(key32(u)), u);
        }
        assert!(key32((-1.0f32).to_bits()) < key32((-0.5f32).to_bits()));
        assert!(key32((-0.5f32).to_bits()) < key32(0.0f32.to_bits()));
        assert!(key32(0.0f32.to_bits()) < key32(1e-30f32.to_bits()));
    }

    #[test]
    fn a_one_ulp_change_across_zero_is_small() {
        // bf16 +0.0 (0x0000) -> smallest negative subnormal (0x8001): adjacent keys.
        let g = delta_group(&[0x01, 0x80], &[0x00, 0x00], 2);
        assert_eq!(g, vec![3, 0], "difference -2 zigzags to 3, high plane zero");
        let g = delta_group(&[0x81, 0x3f], &[0x80, 0x3f], 2);
        assert_eq!(g, vec![2, 0]);
        for (a, b) in [(0u16, 0xffffu16), (0x8000, 0x7fff), (0x1234, 0xfedc)] {
            let g = delta_group(&a.to_le_bytes(), &b.to_le_bytes(), 2);
            let mut back = [0u8; 2];
            undelta_range(&g, &b.to_le_bytes(), 2, 0, &mut back);
            assert_eq!(u16::from_le_bytes(back), a);
        }
    }
}
