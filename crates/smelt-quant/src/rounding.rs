//! The rounding the reference implementations do, reproduced exactly: ties-to-even rounding to
//! integers (ONNX QuantizeLinear, `torch.round`, `numpy.round`) and the order in which PyTorch's
//! CPU kernels add f32 numbers.
//!
//! Summation order matters because every f32 addition rounds: the mean bitsandbytes subtracts
//! before double quantization (`absmax.mean()`) and BitNet's absmean scale (`w.abs().mean()`)
//! are `torch.mean` over f32 tensors, and a plain left-to-right sum differs from it in the last
//! bits often enough to change codes downstream. [`TorchReduction`] reproduces ATen's
//! `cascade_sum` (aten/src/ATen/native/cpu/SumKernel.cpp) for a contiguous 1-D f32 tensor:
//! vectors of `lanes` floats, four interleaved accumulators ("ilp"), a four-level cascade whose
//! level width grows with the length, a scalar tail, then the lanes added left to right; above
//! ATen's grain size (32768 elements) the range is split evenly across threads as
//! `at::parallel_for` does and the per-thread sums are reduced the same way. `torch.mean` is
//! that sum divided by the element count in f32.
//!
//! Verified bit for bit against torch 2.15 (AVX2 capability, 8 lanes) for lengths 0 to 70001
//! and 1, 2 and 3 threads (`tools/fixtures/gen_quant_refs.py` records reference means, tested in
//! `tests/nf4.rs`). 16 lanes (ATen's AVX-512 capability) and 8 or more threads follow the same
//! code but were not checked against torch (no such machine was available).

/// Rounds to the nearest integer, ties to even (IEEE `roundTiesToEven`), as ONNX
/// QuantizeLinear, `torch.round` and `numpy.round` do. NaN stays NaN.
///
/// The same value as `f32::round_ties_even` for every input, computed with the 2^23 "magic
/// number": below 2^23 in magnitude, `(|x| + 2^23) - 2^23` is `|x|` rounded to an integer
/// by the adder itself (ties to even), and the sign is put back (so `-0.3` gives `-0.0`);
/// from 2^23 up (and for NaN and infinities) `x` is already its own rounding. On baseline
/// x86-64 `round_ties_even` is a libm call that keeps every quantizer loop scalar; this is a
/// few float and bit operations that vectorize.
#[inline(always)]
pub fn round_half_even(x: f32) -> f32 {
    const MAGIC: f32 = 8_388_608.0; // 2^23
    let a = x.abs();
    let r = ((a + MAGIC) - MAGIC).copysign(x);
    if a < MAGIC {
        r
    } else {
        x
    }
}

/// How PyTorch's CPU reduction kernels split an f32 sum, which decides its rounding.
///
/// The default (1 thread, 8 lanes) matches `torch.sum`/`torch.mean` on x86-64 with AVX2 or on
/// aarch64 for any length, and for any thread count below 32768 elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TorchReduction {
    /// `torch.get_num_threads()` in the process being matched (only matters from 32768
    /// elements on). Clamped to 1..=1024.
    pub threads: usize,
    /// f32 lanes in ATen's `Vectorized<float>`: 8 (AVX2, NEON, default builds) or 16 (the
    /// AVX-512 capability). Any other value is treated as 8.
    pub lanes: usize,
}

impl Default for TorchReduction {
    fn default() -> Self {
        TorchReduction { threads: 1, lanes: 8 }
    }
}

/// ATen's `internal::GRAIN_SIZE`: below it a reduction runs on one thread.
const GRAIN_SIZE: usize = 32768;

impl TorchReduction {
    /// `torch.sum` of a contiguous f32 tensor, as ATen computes it.
    pub fn sum(&self, values: &[f32]) -> f32 {
        let threads = self.threads.clamp(1, 1024);
        let n = values.len();
        if n < GRAIN_SIZE || threads == 1 {
            return 0.0 + self.inner_sum(values);
        }
        // at::parallel_for (OpenMP): min(threads, ceil(n / grain)) tasks of ceil(n / tasks).
        let tasks = threads.min(n.div_ceil(GRAIN_SIZE));
        let chunk = n.div_ceil(tasks);
        let mut per_thread = vec![0.0f32; threads];
        for (t, slot) in per_thread.iter_mut().enumerate().take(tasks) {
            let begin = t * chunk;
            if begin < n {
                *slot += self.inner_sum(&values[begin..n.min(begin + chunk)]);
            }
        }
        0.0 + self.inner_sum(&per_thread)
    }

    /// `torch.mean` of a contiguous f32 tensor: [`TorchReduction::sum`] divided by the count
    /// in f32 (NaN for no elements, as torch).
    pub fn mean(&self, values: &[f32]) -> f32 {
        self.sum(values) / values.len() as f32
    }

    /// ATen's `vectorized_inner_sum` for one row (or `scalar_inner_sum` when the row is
    /// shorter than a vector).
    fn inner_sum(&self, x: &[f32]) -> f32 {
        if self.lanes == 16 {
            inner_sum::<16>(x)
        } else {
            inner_sum::<8>(x)
        }
    }
}

fn inner_sum<const L: usize>(x: &[f32]) -> f32 {
    if x.len() >= L {
        let vectors = x.len() / L;
        let (head, tail) = x.split_at(vectors * L);
        let lanes = row_sum::<L>(head);
        let mut total = 0.0f32;
        for &v in tail {
            total += v;
        }
        for v in lanes {
            total += v;
        }
        total
    } else {
        row_sum::<1>(x)[0]
    }
}

/// [`TorchReduction::sum`] with one thread and 8 lanes (`TorchReduction::default()`) of `n`
/// values that arrive in order, in pieces of any length: the same additions in the same
/// order, so the same bits, without holding the values. Feed exactly `n` values, then
/// [`StreamingSum::finish`].
#[derive(Clone, Debug)]
pub struct StreamingSum {
    n: usize,
    /// Rows of 4 vectors of 8 floats the cascade takes (ATen's `size`).
    rows: usize,
    level_step: usize,
    acc: [[[f32; 8]; 4]; 4],
    /// Rows added so far.
    done: usize,
    /// An incomplete row, or (after the last row) the leftover vectors and scalar tail.
    pending: Vec<f32>,
}

impl StreamingSum {
    /// A sum of `n` values.
    pub fn new(n: usize) -> StreamingSum {
        let rows = if n >= 8 { n / 8 / 4 } else { 0 };
        let level_power = 4usize.max(ceil_log2(rows) / 4);
        StreamingSum {
            n,
            rows,
            level_step: 1 << level_power,
            acc: [[[0.0; 8]; 4]; 4],
            done: 0,
            pending: Vec::new(),
        }
    }

    /// The next values, in order.
    pub fn feed(&mut self, mut values: &[f32]) {
        const ROW: usize = 32;
        if !self.pending.is_empty() && self.done < self.rows {
            let take = (ROW - self.pending.len()).min(values.len());
            self.pending.extend_from_slice(&values[..take]);
            values = &values[take..];
            if self.pending.len() == ROW {
                let row = std::mem::take(&mut self.pending);
                self.add_row(&row);
            }
        }
        while self.done < self.rows && values.len() >= ROW {
            let (row, rest) = values.split_at(ROW);
            self.add_row(row);
            values = rest;
        }
        self.pending.extend_from_slice(values);
    }

    fn add_row(&mut self, row: &[f32]) {
        for (k, a) in self.acc[0].iter_mut().enumerate() {
            add(a, &item::<8>(row, k));
        }
        self.done += 1;
        self.cascade();
    }

    /// Values per block: the sum's first level starts from zero at every block boundary (the
    /// cascade moves it up and clears it after each [`Self::block_elems`] values of whole
    /// rows), so blocks can be summed apart, in parallel, with [`Self::block_partial`], and
    /// handed over in order with [`Self::feed_partial`]: the same additions in the same order.
    pub fn block_elems(&self) -> usize {
        self.level_step * 32
    }

    /// Values of whole rows, the rest (fewer than 32) is the tail [`Self::feed`] takes.
    pub fn row_elems(&self) -> usize {
        self.rows * 32
    }

    /// The first level's sum of one block (at most [`Self::block_elems`] values of whole
    /// rows, a multiple of 32), from zero, row after row as [`Self::feed`] adds them.
    pub fn block_partial(values: &[f32]) -> [[f32; 8]; 4] {
        let mut acc = [[0.0f32; 8]; 4];
        for row in values.chunks_exact(32) {
            for (k, a) in acc.iter_mut().enumerate() {
                add(a, &item::<8>(row, k));
            }
        }
        acc
    }

    /// [`Self::block_partial`] of the absolute values of BF16 weights (little-endian bytes,
    /// two per value, a multiple of 32 values), read straight from their bits (`|x|` of a
    /// BF16 weight is its f32 with the sign bit cleared, so the same additions of the same
    /// values as decoding, taking `|x|`, then summing). `None` when a weight is NaN or
    /// infinite (its caller finds which); the loop is compiled for the CPU's SIMD level.
    pub fn block_partial_abs_bf16(bytes: &[u8]) -> Option<[[f32; 8]; 4]> {
        block_partial_abs_bf16_tiered(smelt_tensor::simd::tier(), bytes)
    }

    /// The next block's [`Self::block_partial`] over `values_len` values, in order. Only at a
    /// block boundary (nothing fed but whole blocks), and a block shorter than
    /// [`Self::block_elems`] only as the last of the rows. Returns `false`, changing nothing,
    /// when those do not hold.
    pub fn feed_partial(&mut self, partial: &[[f32; 8]; 4], values_len: usize) -> bool {
        let rows = values_len / 32;
        let aligned = self.pending.is_empty() && self.done % self.level_step == 0;
        let whole = values_len % 32 == 0
            && (rows == self.level_step || (rows < self.level_step && self.done + rows == self.rows));
        if !aligned || !whole || self.done + rows > self.rows || rows == 0 {
            return false;
        }
        // The first level is zero at a block boundary: the block's own sum from zero is it.
        self.acc[0] = *partial;
        self.done += rows;
        self.cascade();
        true
    }

    fn cascade(&mut self) {
        // ATen's multi_row_sum cascades after each whole step of rows.
        if self.done % self.level_step == 0 {
            let level_power = self.level_step.trailing_zeros() as usize;
            let level_mask = (self.level_step as u64) - 1;
            for j in 1..4 {
                let (lower, upper) = self.acc.split_at_mut(j);
                for (a, l) in upper[0].iter_mut().zip(lower[j - 1].iter_mut()) {
                    add(a, l);
                    *l = [0.0; 8];
                }
                if (self.done as u64) & (level_mask << (j * level_power)) != 0 {
                    break;
                }
            }
        }
    }

    /// The sum, as [`TorchReduction::sum`] of all the values fed. `None` if not exactly `n`
    /// values were fed.
    pub fn finish(self) -> Option<f32> {
        if self.done != self.rows || self.rows * 32 + self.pending.len() != self.n {
            return None;
        }
        if self.n < 8 {
            return Some(0.0 + row_sum::<1>(&self.pending)[0]);
        }
        let mut acc = self.acc;
        let (first, rest) = acc.split_at_mut(1);
        for level in rest.iter() {
            for (a, v) in first[0].iter_mut().zip(level) {
                add(a, v);
            }
        }
        let mut partial = first[0];
        let vectors = self.n / 8;
        let leftover = vectors - self.rows * 4;
        for i in 0..leftover {
            add(&mut partial[0], &item::<8>(&self.pending, i));
        }
        for k in 1..4 {
            let p = partial[k];
            add(&mut partial[0], &p);
        }
        let mut total = 0.0f32;
        for &v in &self.pending[leftover * 8..] {
            total += v;
        }
        for v in partial[0] {
            total += v;
        }
        Some(0.0 + total)
    }
}

smelt_tensor::tiered!(fn block_partial_abs_bf16_tiered(bytes: &[u8]) -> Option<[[f32; 8]; 4]> = block_partial_abs_bf16_body);

#[inline(always)]
fn block_partial_abs_bf16_body(bytes: &[u8]) -> Option<[[f32; 8]; 4]> {
    let mut acc = [[0.0f32; 8]; 4];
    let mut bad = 0u32;
    for row in bytes.chunks_exact(64) {
        // Decoded in a loop of its own (the shape that vectorizes), then added as
        // `block_partial` adds a row.
        let mut v = [0.0f32; 32];
        for (o, c) in v.iter_mut().zip(row.chunks_exact(2)) {
            let h = u16::from_le_bytes([c[0], c[1]]) & 0x7fff;
            // Exponent bits all set: NaN or infinity (no early exit, so it vectorizes).
            bad |= (h >= 0x7f80) as u32;
            *o = f32::from_bits((h as u32) << 16);
        }
        for (k, a) in acc.iter_mut().enumerate() {
            add(a, &item::<8>(&v, k));
        }
    }
    (bad == 0).then_some(acc)
}

/// ATen's `row_sum` over `x` read as items of `W` floats: four interleaved partial sums.
fn row_sum<const W: usize>(x: &[f32]) -> [f32; W] {
    const ILP: usize = 4;
    let items = x.len() / W;
    let rows = items / ILP;
    let mut partial = multi_row_sum::<W>(x, rows);
    for i in rows * ILP..items {
        add(&mut partial[0], &item::<W>(x, i));
    }
    for k in 1..ILP {
        let p = partial[k];
        add(&mut partial[0], &p);
    }
    partial[0]
}

/// ATen's `multi_row_sum` with 4 rows (row `r` is items `4r..4r+4`) and 4 cascade levels.
fn multi_row_sum<const W: usize>(x: &[f32], size: usize) -> [[f32; W]; 4] {
    const LEVELS: usize = 4;
    let level_power = 4usize.max(ceil_log2(size) / LEVELS);
    let level_step = 1usize << level_power;
    let level_mask = (level_step as u64) - 1;
    let mut acc = [[[0.0f32; W]; 4]; LEVELS];
    let mut i = 0usize;
    let add_row = |level: &mut [[f32; W]; 4], i: usize| {
        for (k, a) in level.iter_mut().enumerate() {
            add(a, &item::<W>(x, 4 * i + k));
        }
    };
    while i + level_step <= size {
        for _ in 0..level_step {
            add_row(&mut acc[0], i);
            i += 1;
        }
        for j in 1..LEVELS {
            let (lower, upper) = acc.split_at_mut(j);
            for (a, l) in upper[0].iter_mut().zip(lower[j - 1].iter_mut()) {
                add(a, l);
                *l = [0.0; W];
            }
            let mask = level_mask << (j * level_power);
            if (i as u64) & mask != 0 {
                break;
            }
        }
    }
    while i < size {
        add_row(&mut acc[0], i);
        i += 1;
    }
    let (first, rest) = acc.split_at_mut(1);
    for level in rest.iter() {
        for (a, v) in first[0].iter_mut().zip(level) {
            add(a, v);
        }
    }
    first[0]
}

/// `c10::utils::CeilLog2`: 1 for x <= 2, else ceil(log2(x)).
fn ceil_log2(x: usize) -> usize {
    if x <= 2 {
        1
    } else {
        (usize::BITS - (x - 1).leading_zeros()) as usize
    }
}

#[inline]
fn item<const W: usize>(x: &[f32], i: usize) -> [f32; W] {
    let mut v = [0.0f32; W];
    v.copy_from_slice(&x[i * W..(i + 1) * W]);
    v
}

#[inline]
fn add<const W: usize>(acc: &mut [f32; W], v: &[f32; W]) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a += *b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_even_ties() {
        assert_eq!(round_half_even(0.5), 0.0);
        assert_eq!(round_half_even(1.5), 2.0);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(-0.5), -0.0);
        assert_eq!(round_half_even(-1.5), -2.0);
        assert!(round_half_even(f32::NAN).is_nan());
    }

    /// `block_partial_abs_bf16` adds the same values in the same order as decoding, taking
    /// `|x|` and `block_partial`, at every tier; a NaN or an infinity anywhere gives `None`.
    #[test]
    fn bf16_abs_partial_is_the_decoded_one_at_every_tier() {
        use smelt_tensor::simd::Tier;
        let mut x = 0x2545_f491u32;
        let mut bits: Vec<u16> = (0..32 * 37)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                match i % 11 {
                    0 => 0x8000,                       // -0.0
                    1 => (x & 0x807f) as u16,          // subnormal
                    2 => 0x7f7f | (x & 0x8000) as u16, // largest finite
                    _ => ((x >> 16) as u16 & 0xbfff) | 0x3000,
                }
            })
            .collect();
        let bytes = |b: &[u16]| b.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        for rows in [0usize, 1, 2, 16, 37] {
            let b = &bits[..32 * rows];
            let abs: Vec<f32> = b.iter().map(|&h| half::bf16::from_bits(h).to_f32().abs()).collect();
            let want = StreamingSum::block_partial(&abs);
            for tier in Tier::ALL {
                let got = block_partial_abs_bf16_tiered(tier, &bytes(b)).unwrap();
                let eq =
                    got.iter().flatten().zip(want.iter().flatten()).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(eq, "{rows} rows, {}", tier.name());
            }
        }
        for bad in [0x7fc0u16, 0xff80, 0x7f80, 0x7f81] {
            bits[32 * 5 + 13] = bad;
            for tier in Tier::ALL {
                assert_eq!(
                    block_partial_abs_bf16_tiered(tier, &bytes(&bits)),
                    None,
                    "{bad:#x} {}",
                    tier.name()
                );
            }
        }
    }

    #[test]
    fn magic_rounding_equals_round_ties_even() {
        let mut v = vec![f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN_POSITIVE, 1e-45, 0.0, -0.0];
        for k in -40_000i32..40_000 {
            let h = k as f32 * 0.5;
            v.extend([h, f32::from_bits(h.to_bits().wrapping_sub(1)), f32::from_bits(h.to_bits() + 1)]);
        }
        for e in [8_388_607.5f32, 8_388_608.0, 8_388_609.0, 4_194_303.5, 16_777_217.0, 0.49999997, 0.50000006]
        {
            v.extend([e, -e]);
        }
        let mut bits = 0x9E37_79B9u32;
        for _ in 0..200_000 {
            bits = bits.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            v.push(f32::from_bits(bits));
        }
        for x in v {
            let (got, want) = (round_half_even(x), x.round_ties_even());
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{x:e}: {got:e} vs {want:e}"
            );
        }
    }

    #[test]
    fn streaming_sum_equals_the_whole_sum() {
        let mut x = 0x2545_f491u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let lengths = [0usize, 1, 7, 8, 31, 32, 33, 39, 40, 511, 512, 513, 4096 * 32 + 37, 70_001, 300_017];
        for n in lengths {
            let v: Vec<f32> = (0..n).map(|_| (next() >> 8) as f32 * 1e-7 + 1e-9).collect();
            let want = TorchReduction::default().sum(&v);
            for piece in [1usize, 5, 32, 1000, 1 << 18] {
                let mut s = StreamingSum::new(n);
                let mut rest = &v[..];
                let mut k = 0;
                while !rest.is_empty() {
                    // Irregular pieces around `piece`.
                    let len = (piece + (k * 7919) % (piece + 1)).min(rest.len());
                    s.feed(&rest[..len]);
                    rest = &rest[len..];
                    k += 1;
                }
                assert_eq!(s.finish().map(f32::to_bits), Some(want.to_bits()), "n {n}, pieces of ~{piece}");
            }
        }
        // Blocks summed apart and handed over in order, then the tail: the same bits.
        for n in [0usize, 7, 31, 32, 33, 511, 512, 513, 4096 * 32 + 5, 100_003, 1 << 20] {
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    // Full mantissas over six decades: any other order of additions rounds
                    // differently somewhere.
                    let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                    (h as f32 / (1u64 << 24) as f32 + 0.1) * 10f32.powi((i % 7) as i32 - 3)
                })
                .collect();
            let want = TorchReduction::default().sum(&v);
            let mut s = StreamingSum::new(n);
            let (be, re) = (s.block_elems(), s.row_elems());
            for block in v[..re].chunks(be) {
                assert!(s.feed_partial(&StreamingSum::block_partial(block), block.len()), "n {n}");
            }
            s.feed(&v[re..]);
            assert_eq!(s.finish().map(f32::to_bits), Some(want.to_bits()), "n {n}, blocks of {be}");
        }
        // Refused off a block boundary or for a short block that is not the last.
        let mut s = StreamingSum::new(1 << 20);
        let be = s.block_elems();
        assert!(!s.feed_partial(&[[0.0; 8]; 4], be - 32));
        s.feed(&[1.0; 32]);
        assert!(!s.feed_partial(&[[0.0; 8]; 4], be));
        let mut short = StreamingSum::new(10);
        short.feed(&[1.0; 9]);
        assert_eq!(short.finish(), None);
    }

    #[test]
    fn ceil_log2_matches_c10() {
        assert_eq!([0, 1, 2, 3, 4, 5, 8, 9].map(ceil_log2), [1, 1, 1, 2, 2, 3, 3, 4]);
    }

    #[test]
    fn small_sums_are_exact_and_empty_mean_is_nan() {
        let r = TorchReduction::default();
        assert_eq!(r.sum(&[]), 0.0);
        assert!(r.mean(&[]).is_nan());
        let v: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        assert_eq!(r.sum(&v), 5050.0);
        assert_eq!(r.mean(&v), 50.5);
    }

    #[test]
    fn cascade_differs_from_left_to_right() {
        // 1 followed by many tiny values: a running sum loses each tiny value, the cascade
        // adds them among themselves first.
        let mut v = vec![1.0f32];
        v.extend(std::iter::repeat_n(1e-8f32, 4095));
        let naive = v.iter().fold(0.0f32, |a, &b| a + b);
        assert_eq!(naive, 1.0);
        assert!(TorchReduction::default().sum(&v) > 1.0);
    }

    #[test]
    fn thread_split_is_deterministic_and_bounded() {
        let v: Vec<f32> = (0..70_001).map(|i| ((i * 7919) % 1000) as f32 * 1e-3).collect();
        let exact: f64 = v.iter().map(|&x| x as f64).sum();
        for threads in [0, 1, 2, 3, 8, 5000] {
            let r = TorchReduction { threads, lanes: 8 };
            let s = r.sum(&v);
            assert_eq!(s, r.sum(&v));
            assert!((s as f64 - exact).abs() < exact * 1e-6, "{threads} threads: {s} vs {exact}");
        }
    }
}
