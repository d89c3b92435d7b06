//! Shared pieces of the kernel tests: a deterministic generator, misaligned copies, the float
//! bound, and the list of instruction sets to test.
#![allow(dead_code)]

use smelt_kernels::Isa;

/// xorshift64*: deterministic inputs without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn u8(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
}

/// `v` copied into a buffer at element offset `off`, so the kernels see a slice whose start
/// is misaligned by `off` elements relative to the allocation.
pub fn at_offset<T: Copy + Default>(v: &[T], off: usize) -> Vec<T> {
    let mut buf = vec![T::default(); v.len() + off];
    buf[off..].copy_from_slice(v);
    buf
}

/// The SIMD instruction sets this CPU has; prints the ones it lacks (skipped) once per test.
pub fn simd_tiers(test: &str) -> Vec<Isa> {
    let (have, skip): (Vec<Isa>, Vec<Isa>) =
        Isa::ALL.iter().copied().filter(|&i| i != Isa::Scalar).partition(|i| i.is_available());
    let names = |v: &[Isa]| v.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ");
    eprintln!("{test}: testing scalar + [{}]; skipped (not on this CPU): [{}]", names(&have), names(&skip));
    have
}

/// Checks `got` against the scalar reference `want` within `2·(k+2)·ε·Σ|a||w|` per element,
/// where `mags[i]` is `Σ|a||w|` for element `i`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], mags: &[f32], k: usize) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let eps = f32::EPSILON / 2.0;
    for (i, ((&g, &w), &mag)) in got.iter().zip(want).zip(mags).enumerate() {
        let bound = 2.0 * (k as f32 + 2.0) * eps * mag + 1e-30;
        assert!(
            (g - w).abs() <= bound,
            "{what}: element {i}: got {g}, reference {w}, |diff| {} > bound {bound}",
            (g - w).abs()
        );
    }
}

/// `Σ_k |a[i,k]|·|w[j,k]|` for `A` m×k and `W` n×k.
pub fn magnitudes(m: usize, n: usize, k: usize, a: &[f32], w: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|kk| (a[i * k + kk] * w[j * k + kk]).abs()).sum();
        }
    }
    out
}
