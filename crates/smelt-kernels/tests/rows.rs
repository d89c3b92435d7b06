//! `row_sums_of_squares_f64` on every instruction set against its definition written out here
//! (each square rounded to f32, added in f64 from the first element on): the same bits, on
//! every row count around the eight-row blocks, lengths around the eight-column steps, and
//! values whose squares overflow, underflow or are not numbers.

mod common;

use common::{simd_tiers, Rng};
use smelt_kernels::explicit::row_sums_of_squares_f64_with;
use smelt_kernels::Isa;

fn definition(x: &[f32], len: usize) -> Vec<u64> {
    x.chunks(len.max(1))
        .map(|row| {
            let mut s = 0f64;
            for &v in row {
                s += (v * v) as f64;
            }
            s.to_bits()
        })
        .collect()
}

#[test]
fn row_sums_of_squares_match_the_definition_on_every_tier() {
    let mut isas = vec![Isa::Scalar];
    isas.extend(simd_tiers("row_sums_of_squares"));
    let mut rng = Rng::new(41);
    for rows in [0usize, 1, 7, 8, 9, 16, 17, 24] {
        for len in [1usize, 3, 7, 8, 9, 15, 16, 17, 64, 100, 1024] {
            let mut x: Vec<f32> = rng.f32s(rows * len).iter().map(|v| v * 3.0).collect();
            // Specials in some rows: a square that overflows, one that underflows to a
            // subnormal or zero, NaN, and large values whose f64 sum differs from f32's.
            let specials = [2e19f32, 1e-23, f32::NAN, -3e5, f32::INFINITY];
            for (i, &v) in specials.iter().enumerate() {
                if rows * len > 7 * i + 3 {
                    x[7 * i + 3] = v;
                }
            }
            let want = definition(&x, len);
            for &isa in &isas {
                let mut got = vec![f64::NAN; rows];
                row_sums_of_squares_f64_with(isa, &x, len, &mut got);
                let got: Vec<u64> = got.iter().map(|s| s.to_bits()).collect();
                if let Some(r) = (0..rows).find(|&r| got[r] != want[r]) {
                    panic!(
                        "{isa} rows {rows} len {len}: row {r} sum {} want {}",
                        f64::from_bits(got[r]),
                        f64::from_bits(want[r])
                    );
                }
            }
        }
    }
}
