//! Throughput of smelt's ggml quantizers, for the record (no assertions).
//!
//! `cargo run --release -p smelt-quant --example quant_speed [MiB]`
//!
//! Quantizes 64 MiB of f32 weights (random normal, per-block scales varying like real
//! layers) to every type [`smelt_quant::ggml::quantize`] supports and prints MB/s of f32
//! input, next to a baseline measured in the same process: a plain copy of the same bytes,
//! which bounds what any single pass over the data can reach on this machine. Then Q8_0 from
//! BF16 input, the convert benchmark's case: widen a chunk of bf16 to f32 and quantize it, on
//! one thread and on two (MB/s of bf16 input).

use std::time::Instant;

use smelt_quant::ggml;
use smelt_tensor::DType;

/// Values per chunk when widening bf16: small enough to stay in L1/L2.
const CHUNK: usize = 8192;

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let n = mib * 1024 * 1024 / 4 / 256 * 256;
    let x = weights(n);
    let input_mb = (n * 4) as f64 / 1e6;
    println!("{mib} MiB of f32 input ({n} values), best of 3 runs");

    let mut copy = vec![0f32; n];
    let copy_s = best_of(3, || copy.copy_from_slice(&x));
    std::hint::black_box(&copy);
    println!("{:<28} {:>8.0} MB/s  (baseline)", "memcpy", input_mb / copy_s);

    for &dtype in ggml::QUANTIZABLE {
        let mut out = vec![0u8; ggml::quantized_len(dtype, n).expect("whole blocks")];
        let s = best_of(3, || ggml::quantize(dtype, &x, &mut out).expect("quantize"));
        std::hint::black_box(&out);
        let mbs = input_mb / s;
        println!("{:<28} {:>8.0} MB/s  ({:.2} of memcpy)", dtype.name(), mbs, mbs / (input_mb / copy_s));
    }

    let bf16: Vec<u16> = x.iter().map(|&v| ggml::float::f32_to_bf16_bits(v)).collect();
    let bf16_mb = (n * 2) as f64 / 1e6;
    let mut out = vec![0u8; ggml::quantized_len(DType::Q8_0, n).expect("whole blocks")];
    let one = best_of(3, || bf16_to_q8_0(&bf16, &mut out));
    println!("{:<28} {:>8.0} MB/s of bf16", "BF16 -> Q8_0, 1 thread", bf16_mb / one);
    let two = best_of(3, || {
        let half_values = n / 2 / 32 * 32;
        let (src0, src1) = bf16.split_at(half_values);
        let (dst0, dst1) = out.split_at_mut(half_values / 32 * 34);
        std::thread::scope(|s| {
            s.spawn(|| bf16_to_q8_0(src0, dst0));
            bf16_to_q8_0(src1, dst1);
        });
    });
    println!("{:<28} {:>8.0} MB/s of bf16", "BF16 -> Q8_0, 2 threads", bf16_mb / two);
}

/// Widens bf16 to f32 a chunk at a time and quantizes each chunk to Q8_0.
fn bf16_to_q8_0(src: &[u16], dst: &mut [u8]) {
    let mut buf = [0f32; CHUNK];
    for (chunk, out) in src.chunks(CHUNK).zip(dst.chunks_mut(CHUNK / 32 * 34)) {
        let values = &mut buf[..chunk.len()];
        for (v, &b) in values.iter_mut().zip(chunk) {
            *v = f32::from_bits((b as u32) << 16);
        }
        ggml::quantize(DType::Q8_0, values, out).expect("quantize");
    }
}

/// The fastest of `runs` timings of `f`, in seconds.
fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Deterministic pseudo-normal weights with a scale that changes every 256 values.
fn weights(n: usize) -> Vec<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut out = Vec::with_capacity(n);
    let mut scale = 0.02f32;
    for i in 0..n {
        if i % 256 == 0 {
            scale = 0.005 + 0.05 * next();
        }
        // Sum of four uniforms: roughly normal, cheap, deterministic.
        let v = (next() + next() + next() + next() - 2.0) * scale;
        out.push(v);
    }
    out
}
