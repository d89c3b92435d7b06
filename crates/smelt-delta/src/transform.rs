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
                let (p0, p1) = (&grouped[e0..e1], &grouped[n + e0..n + e1]);
                for (k, (d, o)) in dst.chunks_exact_mut(2).zip(src_old.chunks_exact(2)).enumerate() {
                    d[0] = p0[k] ^ o[0];
                    d[1] = p1[k] ^ o[1];
                }
            }
            4 => {
                let p0 = &grouped[e0..e1];
                let p1 = &grouped[n + e0..n + e1];
                let p2 = &grouped[2 * n + e0..2 * n + e1];
                let p3 = &grouped[3 * n + e0..3 * n + e1];
                for (k, (d, o)) in dst.chunks_exact_mut(4).zip(src_old.chunks_exact(4)).enumerate() {
                    d[0] = p0[k] ^ o[0];
                    d[1] = p1[k] ^ o[1];
                    d[2] = p2[k] ^ o[2];
                    d[3] = p3[k] ^ o[3];
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
