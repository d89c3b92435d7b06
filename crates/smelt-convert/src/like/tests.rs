//! The `--like` rule on every scheme, against OLDs made by quantizing a first version of the
//! weights: an unchanged tensor comes out identical to OLD with every block reused; changed
//! weights change only their own blocks; every weight stays within the bound; the bytes do
//! not depend on the thread count.

use bytes::Bytes;
use smelt_formats::{Location, Tensor};
use smelt_quant::ggml::block_codes::legacy_codes;
use smelt_quant::nf4::{Nf4Absmax, NF4_CODE};
use smelt_tensor::DType;

use super::old::OldTensor;
use super::{reuse, Counts};
use crate::encode::{decode, encode_values, Encoded, EncodedTensor};
use crate::scheme::{Scheme, TernaryPacking};

const ROWS: usize = 300;
const COLS: usize = 1024; // 307,200 weights: two chunks of CHUNK_ELEMS, the second short

fn weights(seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    (0..ROWS * COLS)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
            if i % 997 == 0 {
                v * 30.0
            } else {
                v
            }
        })
        .collect()
}

fn tensor(values: &[f32]) -> Tensor {
    Tensor {
        name: "w".into(),
        dtype: DType::F32,
        shape: vec![ROWS as u64, COLS as u64],
        data: Bytes::from(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()),
        location: Location { file: 0, offset: 0 },
    }
}

fn schemes() -> Vec<Scheme> {
    let mut s: Vec<Scheme> =
        [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::TQ1_0, DType::TQ2_0]
            .into_iter()
            .map(Scheme::Ggml)
            .collect();
    s.extend([
        Scheme::Int8 { per_channel: true, symmetric: true },
        Scheme::Int8 { per_channel: true, symmetric: false },
        Scheme::Int8 { per_channel: false, symmetric: true },
        Scheme::Int8 { per_channel: false, symmetric: false },
        Scheme::Int4 { group: 32, symmetric: true },
        Scheme::Int4 { group: 128, symmetric: false },
        Scheme::Nf4 { double_quant: false },
        Scheme::Ternary { packing: TernaryPacking::TwoBit },
        Scheme::Ternary { packing: TernaryPacking::Base3 },
    ]);
    s
}

fn fresh(values: &[f32], scheme: Scheme) -> EncodedTensor {
    encode_values("w", values, &[ROWS, COLS], scheme).unwrap()
}

/// OLD's side as a blob or GGUF would hand it out.
fn old_of(e: &Encoded) -> OldTensor {
    match e {
        Encoded::Plain { data, .. } => OldTensor::Ggml { data: data.clone() },
        Encoded::Int8(t) => OldTensor::Int8 {
            codes: Bytes::from(t.codes.clone()),
            scales: t.scales.clone(),
            zeros: t.zero_points.clone(),
        },
        Encoded::Int4(t) => {
            let row_bytes = t.cols.div_ceil(2);
            let mut packed = vec![0u8; t.rows * row_bytes];
            for (codes, out) in t.codes.chunks(t.cols).zip(packed.chunks_mut(row_bytes)) {
                for (pair, o) in codes.chunks(2).zip(out) {
                    *o = (pair[0] & 0x0f) | (pair.get(1).map_or(0, |q| q & 0x0f) << 4);
                }
            }
            OldTensor::Int4 { packed: Bytes::from(packed), scales: t.scales.clone(), zeros: t.zeros.clone() }
        }
        Encoded::Nf4(t) => match &t.absmax {
            Nf4Absmax::Plain(a) => {
                OldTensor::Nf4 { packed: Bytes::from(t.packed.clone()), absmax: a.clone() }
            }
            Nf4Absmax::Double(_) => unreachable!(),
        },
        Encoded::Ternary(t, _) => OldTensor::Ternary { codes: t.codes.clone(), multiplier: 1.0 / t.scale },
    }
}

fn like(new: &[f32], old: &OldTensor, scheme: Scheme, tolerance: f32) -> (EncodedTensor, Counts) {
    let t = tensor(new);
    let mut enc = fresh(new, scheme);
    let counts = reuse(&t, old, tolerance, &mut enc, |why| panic!("{why}")).unwrap().expect("reusable");
    (enc, counts)
}

/// The bytes a blob or GGUF stores for an encoding (blob section order), to compare files.
fn bytes_of(e: &Encoded) -> Vec<u8> {
    match old_of(e) {
        OldTensor::Ggml { data } => data.to_vec(),
        OldTensor::Int8 { codes, scales, zeros } | OldTensor::Int4 { packed: codes, scales, zeros } => {
            let mut v = codes.to_vec();
            v.extend(scales.iter().flat_map(|s| s.to_le_bytes()));
            v.extend(zeros);
            v
        }
        OldTensor::Nf4 { packed, absmax } => {
            let mut v = packed.to_vec();
            v.extend(absmax.iter().flat_map(|s| s.to_le_bytes()));
            v
        }
        OldTensor::Ternary { codes, multiplier } => {
            let mut v: Vec<u8> = codes.iter().map(|&q| q as u8).collect();
            v.extend(multiplier.to_le_bytes());
            v
        }
    }
}

/// Elements per block and the rounding guarantee `g_i` of the fresh encoding, as the module
/// documentation defines them, computed here from the encoding's own fields.
fn guarantee(e: &Encoded, n: usize) -> (usize, Vec<f32>) {
    match e {
        Encoded::Plain { dtype, data } => {
            let (be, bb) = (dtype.block_elems() as usize, dtype.block_bytes() as usize);
            let g = data
                .chunks(bb)
                .flat_map(|b| {
                    let d = match legacy_codes(*dtype, b, &mut [0; 32]) {
                        Some(grid) => grid.d,
                        None => smelt_quant::ggml::float::f16_le_to_f32([b[bb - 2], b[bb - 1]]),
                    };
                    std::iter::repeat_n(d.abs() / 2.0, be)
                })
                .collect();
            (be, g)
        }
        Encoded::Int8(t) => {
            let run = n / t.scales.len();
            (run, t.scales.iter().flat_map(|s| std::iter::repeat_n(s / 2.0, run)).collect())
        }
        Encoded::Int4(t) => {
            let g = (0..n)
                .map(|i| t.scales[(i / t.cols) * t.groups() + (i % t.cols) / t.group_size] / 2.0)
                .collect();
            (t.group_size, g)
        }
        Encoded::Nf4(t) => {
            let Nf4Absmax::Plain(a) = &t.absmax else { unreachable!() };
            let g = (0..n)
                .map(|i| {
                    let q = t.code(i).unwrap() as usize;
                    let below = if q > 0 { NF4_CODE[q] - NF4_CODE[q - 1] } else { 0.0 };
                    let above = if q < 15 { NF4_CODE[q + 1] - NF4_CODE[q] } else { 0.0 };
                    a[i / t.block_size].abs() * below.max(above) / 2.0
                })
                .collect();
            (t.block_size, g)
        }
        Encoded::Ternary(t, _) => (n, vec![(1.0 / t.scale) / 2.0; n]),
    }
}

/// Every weight of the result is within `tolerance × max(g_i, |w_i − fresh_i|)`.
fn assert_bound(scheme: Scheme, new: &[f32], got: &Encoded, fresh_enc: &Encoded, tolerance: f32) {
    let (out, fr) = (decode("w", got).unwrap(), decode("w", fresh_enc).unwrap());
    let (_, g) = guarantee(fresh_enc, new.len());
    for i in 0..new.len() {
        let bound = tolerance * g[i].max((new[i] - fr[i]).abs());
        assert!(
            (new[i] - out[i]).abs() <= bound,
            "{scheme}: weight {i}: {} vs {} (bound {bound})",
            new[i],
            out[i]
        );
    }
}

/// The weights moved in the "few" edit: by a tenth of a grid step for most, far for one.
fn few_edit(v: &[f32], g: &[f32]) -> (Vec<f32>, Vec<usize>) {
    let mut new = v.to_vec();
    let moved = vec![5usize, 40_000, 40_001, 123_457, 300_000];
    for (k, &i) in moved.iter().enumerate() {
        new[i] += if k == 2 { 0.3 } else { 0.2 * g[i].max(1e-4) };
    }
    (new, moved)
}

#[test]
fn unchanged_weights_reuse_every_block_and_give_old_bytes() {
    let v = weights(11);
    for scheme in schemes() {
        let old_enc = fresh(&v, scheme);
        let (got, counts) = like(&v, &old_of(&old_enc.encoded), scheme, 1.0);
        assert_eq!(bytes_of(&got.encoded), bytes_of(&old_enc.encoded), "{scheme}");
        assert!(counts.blocks > 0 && counts.reused == counts.blocks, "{scheme}: {counts:?}");
        assert_eq!(
            got.metrics.as_ref().unwrap().max_abs,
            old_enc.metrics.as_ref().unwrap().max_abs,
            "{scheme}"
        );
    }
}

#[test]
fn a_few_changed_weights_change_only_their_blocks_and_stay_within_the_bound() {
    let v = weights(12);
    for scheme in schemes() {
        let old_enc = fresh(&v, scheme);
        let (block, g) = guarantee(&old_enc.encoded, v.len());
        let (new, moved) = few_edit(&v, &g);
        let (got, counts) = like(&new, &old_of(&old_enc.encoded), scheme, 1.0);
        let fresh_new = fresh(&new, scheme);
        assert_bound(scheme, &new, &got.encoded, &fresh_new.encoded, 1.0);
        let per_tensor = matches!(scheme, Scheme::Ternary { .. } | Scheme::Int8 { per_channel: false, .. });
        if per_tensor {
            assert_eq!(counts.blocks, 1, "{scheme}");
            continue;
        }
        // Decoded weights differ from OLD's only in blocks holding a moved weight.
        let (a, b) = (decode("w", &old_enc.encoded).unwrap(), decode("w", &got.encoded).unwrap());
        let touched: std::collections::HashSet<usize> = moved.iter().map(|i| i / block).collect();
        for i in 0..v.len() {
            if a[i].to_bits() != b[i].to_bits() {
                assert!(
                    touched.contains(&(i / block)),
                    "{scheme}: weight {i} changed outside the edited blocks"
                );
            }
        }
        assert!(counts.reused >= counts.blocks - touched.len() as u64, "{scheme}: {counts:?}");
        assert!(counts.reused < counts.blocks, "{scheme}: the weight moved by 0.3 cannot keep its block");
    }
}

#[test]
fn noise_everywhere_stays_within_the_bound_and_requantizes_under_old_scales() {
    let v = weights(13);
    let noise = weights(99);
    for tolerance in [1.0f32, 1.5] {
        for scheme in schemes() {
            let old_enc = fresh(&v, scheme);
            let (_, g) = guarantee(&old_enc.encoded, v.len());
            // Up to a fifth of each weight's grid half-step, either way.
            let new: Vec<f32> = v
                .iter()
                .zip(&noise)
                .zip(&g)
                .map(|((w, n), g)| w + n.clamp(-0.05, 0.05) * 20.0 * g * 0.2)
                .collect();
            let (got, counts) = like(&new, &old_of(&old_enc.encoded), scheme, tolerance);
            let fresh_new = fresh(&new, scheme);
            assert_bound(scheme, &new, &got.encoded, &fresh_new.encoded, tolerance);
            assert_eq!(counts.blocks, counts.reused + counts.requantized + counts.fresh, "{scheme}");
            let legacy_or_grouped = !matches!(scheme, Scheme::Ggml(DType::TQ1_0 | DType::TQ2_0));
            if legacy_or_grouped && tolerance > 1.0 {
                assert!(counts.reused + counts.requantized > 0, "{scheme} at {tolerance}: {counts:?}");
            }
        }
    }
}

#[test]
fn the_result_is_the_same_whatever_the_thread_count() {
    let v = weights(14);
    let noise = weights(7);
    let new: Vec<f32> = v.iter().zip(&noise).map(|(w, n)| w + n * 0.002).collect();
    for scheme in schemes() {
        let old = old_of(&fresh(&v, scheme).encoded);
        let runs: Vec<(Vec<u8>, Counts, u64)> = [1, 2, 3]
            .into_iter()
            .map(|threads| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let (e, c) = like(&new, &old, scheme, 1.0);
                    (bytes_of(&e.encoded), c, e.metrics.unwrap().sqnr_db.to_bits())
                })
            })
            .collect();
        assert!(runs.windows(2).all(|w| w[0] == w[1]), "{scheme}: depends on the thread count");
    }
}
