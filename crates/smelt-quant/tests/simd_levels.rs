//! Every scheme's quantizer and decoder runs compiled for each SIMD level the CPU has
//! (`smelt_tensor::simd`), and every level must give the baseline copy's bytes and bits — on
//! ordinary weights and on the edge cases: rounding ties, all-zero groups, subnormals, huge
//! values, NaN and infinities, and lengths that leave partial blocks and groups.

use smelt_quant::int4::{quantize_int4_rtn, Int4Mode};
use smelt_quant::int8::{quantize_int8, Int8Granularity, Int8Mode};
use smelt_quant::nf4::{quantize_nf4, Nf4Options};
use smelt_quant::rounding::TorchReduction;
use smelt_quant::ternary::quantize_ternary;
use smelt_tensor::simd::{with_tier, Tier};

fn weights(rows: usize, cols: usize) -> Vec<f32> {
    let mut x = 0x853c_49e6_748f_ea9bu64;
    let mut v: Vec<f32> = (0..rows * cols)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect();
    // Row 1: exact halves (ties for every scale that is a power of two); row 2: zeros; row 3:
    // subnormals; row 4: huge values; row 5: a NaN and infinities among ordinary weights.
    for c in 0..cols {
        v[cols + c] = (c as f32 - 16.0) * 0.5;
        v[2 * cols + c] = 0.0;
        v[3 * cols + c] = f32::from_bits(1 + 3 * c as u32) * if c % 2 == 0 { 1.0 } else { -1.0 };
        v[4 * cols + c] = 3.0e38 * (c as f32 / cols as f32 - 0.5);
    }
    v[5 * cols + 3] = f32::NAN;
    v[5 * cols + 7] = f32::INFINITY;
    v[5 * cols + 9] = f32::NEG_INFINITY;
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Runs `f` at every level and checks each result equals the baseline's.
fn same_at_every_level<T: PartialEq + std::fmt::Debug>(what: &str, f: impl Fn() -> T) {
    let want = with_tier(Tier::Scalar, &f);
    for t in Tier::ALL {
        let got = with_tier(t, &f);
        assert!(got == want, "{what}: {} differs from the baseline copy", t.name());
    }
}

#[test]
fn every_scheme_gives_the_baseline_bytes_at_every_level() {
    // 8 x 200: partial int4 groups of 128 and 64, a partial NF4 block at the end.
    for (rows, cols) in [(8, 200), (6, 64), (7, 33)] {
        let v = weights(rows, cols);
        let n = v.len();
        for double_quant in [false, true] {
            let opts = Nf4Options { double_quant, ..Nf4Options::default() };
            same_at_every_level("nf4", || {
                let q = quantize_nf4(&v, &[n], opts).unwrap();
                // Debug prints every float exactly (shortest round-trip), NaN as NaN.
                (bits(&q.dequantize()), format!("{q:?}"))
            });
        }
        for group in [32, 64, 128] {
            for mode in [Int4Mode::Symmetric, Int4Mode::Asymmetric] {
                same_at_every_level("int4", || {
                    let q = quantize_int4_rtn(&v, rows, cols, group, mode).unwrap();
                    (bits(&q.dequantize()), bits(&q.scales), q.codes, q.zeros)
                });
            }
        }
        for mode in [Int8Mode::Symmetric, Int8Mode::Asymmetric] {
            for g in [
                Int8Granularity::PerTensor,
                Int8Granularity::PerChannel { axis: 0 },
                Int8Granularity::PerChannel { axis: 1 },
            ] {
                same_at_every_level("int8", || {
                    let q = quantize_int8(&v, &[rows, cols], mode, g).unwrap();
                    (bits(&q.dequantize()), bits(&q.scales), q.codes, q.zero_points)
                });
            }
        }
        // Ternary's scale comes from the whole tensor: without the NaN and infinities (which
        // would make every code 0) and without the huge row.
        let finite: Vec<f32> =
            v.iter().map(|x| if x.is_finite() && x.abs() < 1e30 { *x } else { 0.25 }).collect();
        same_at_every_level("ternary", || {
            let q = quantize_ternary(&finite, TorchReduction::default());
            (bits(&q.dequantize()), q.codes, q.scale.to_bits())
        });
    }
}
