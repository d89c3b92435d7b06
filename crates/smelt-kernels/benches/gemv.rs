//! GEMV throughput of every kernel, in GB/s of weight bytes, beside the memory bandwidth
//! measured in the same run; plus f32 GEMM GFLOP/s. Not a test: run by `tools/bench-runner`
//! (or `cargo bench -p smelt-kernels --bench gemv -- [--threads N] [--quick] [--in-cache] [--gemm-only] [--shape NxK]`).
//!
//! Bandwidth: a 2-thread streaming read (u64 sums) of a 1 GiB buffer, far larger than the
//! last-level cache. GEMV: batch 1, weights rotated through copies totalling ~768 MiB so every
//! call streams its weights from memory as a model's layers would, not from cache.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use smelt_kernels::*;

struct Args {
    threads: usize,
    quick: bool,
    /// One copy of each weight (cache-resident at small shapes): the kernels' compute rate.
    in_cache: bool,
    /// Only the f32 GEMM table.
    gemm_only: bool,
    shapes: Vec<(usize, usize)>,
}

fn args() -> Args {
    let mut a = Args {
        threads: 2,
        quick: false,
        in_cache: false,
        gemm_only: false,
        shapes: vec![(4096, 4096), (11008, 4096), (4096, 11008)],
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--threads" => a.threads = it.next().and_then(|v| v.parse().ok()).expect("--threads N"),
            "--quick" => a.quick = true,
            "--in-cache" => a.in_cache = true,
            "--gemm-only" => a.gemm_only = true,
            "--shape" => {
                let v = it.next().expect("--shape NxK");
                let (n, k) = v.split_once('x').expect("--shape NxK");
                a.shapes = vec![(n.parse().expect("N"), k.parse().expect("K"))];
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// Deterministic filler (xorshift) for large buffers.
fn fill_bytes(buf: &mut [u8], seed: u64) {
    buf.par_chunks_mut(1 << 20).enumerate().for_each(|(i, chunk)| {
        let mut s = seed ^ ((i as u64 + 1) * 0x9E37_79B9_7F4A_7C15);
        for b in chunk.chunks_mut(8) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = s.to_le_bytes();
            b.copy_from_slice(&v[..b.len()]);
        }
    });
}

/// CPU time used by this process so far (user + system, from /proc/self/stat; Linux only,
/// 10 ms resolution). Other processes on a shared machine take CPU time from a benchmark;
/// dividing work by the CPU time this process got (spread over its threads) estimates what
/// the run would give on an idle machine.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return f64::NAN };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0
}

/// A measured rate: per wall second, and per CPU second of this process / threads.
#[derive(Clone, Copy)]
struct Rate {
    wall: f64,
    cpu: f64,
}

/// Best of several passes of a parallel streaming read, in GB/s.
fn memory_bandwidth(bytes: usize, passes: usize, threads: usize) -> Rate {
    let mut buf = vec![0u64; bytes / 8];
    buf.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(i, c)| c.iter_mut().enumerate().for_each(|(j, v)| *v = (i ^ j) as u64));
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..passes {
        let (t, c) = (Instant::now(), cpu_seconds());
        let s: u64 = buf
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &b| a.wrapping_add(b)))
            .reduce(|| 0, u64::wrapping_add);
        black_box(s);
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min((cpu_seconds() - c) / threads as f64);
    }
    Rate { wall: bytes as f64 / best / 1e9, cpu: bytes as f64 / best_cpu / 1e9 }
}

/// Calls `f(copy)` over `copies` rotating copies for at least `min_time`; returns calls per
/// wall second and per CPU second of this process divided by `threads`.
fn rate(copies: usize, min_time: Duration, threads: usize, mut f: impl FnMut(usize)) -> Rate {
    for c in 0..copies {
        f(c); // warm-up pass (page faults, rayon start)
    }
    let (t, c0) = (Instant::now(), cpu_seconds());
    let mut calls = 0usize;
    while t.elapsed() < min_time || calls < copies {
        f(calls % copies);
        calls += 1;
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - c0) / threads as f64;
    Rate { wall: calls as f64 / wall, cpu: calls as f64 / cpu }
}

struct Row {
    kernel: String,
    shape: String,
    weight_bytes: usize,
    calls_per_s: Rate,
}

fn main() {
    let args = args();
    rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global().expect("rayon pool");
    let rotation: usize = if args.in_cache {
        0
    } else if args.quick {
        96 << 20
    } else {
        768 << 20
    };
    let min_time = Duration::from_millis(if args.quick { 300 } else { 1500 });
    println!("kernels: {}", selected());
    println!("threads: {}", args.threads);
    let threads = args.threads;
    let bw = memory_bandwidth(if args.quick { 256 << 20 } else { 1 << 30 }, 5, threads);
    println!(
        "memory bandwidth (streaming read, {threads} threads): {:.1} GB/s wall, {:.1} GB/s per CPU-second/thread\n",
        bw.wall, bw.cpu
    );

    let mut rows = Vec::new();
    let shapes = if args.gemm_only { &[][..] } else { &args.shapes[..] };
    for &(n, k) in shapes {
        let shape = format!("{n}x{k}");
        let a: Vec<f32> = (0..k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let mut y = vec![0.0f32; n];

        // f32 (B as [out, in])
        {
            let per = n * k * 4;
            let copies = (rotation / per).max(1);
            let mut w = vec![0u8; copies * per];
            fill_bytes(&mut w, 1);
            let wf: Vec<f32> = w
                .chunks_exact(4)
                .map(|c| (u32::from_le_bytes(c.try_into().unwrap()) >> 9) as f32 * 1e-7)
                .collect();
            drop(w);
            let r = rate(copies, min_time, threads, |c| {
                gemm_f32_bt(1, n, k, &a, &wf[c * n * k..(c + 1) * n * k], &mut y)
            });
            rows.push(Row {
                kernel: "f32 gemm_f32_bt".into(),
                shape: shape.clone(),
                weight_bytes: per,
                calls_per_s: r,
            });
            // The same weights packed once, as `smelt run` packs a constant MatMul weight.
            let packed: Vec<PackedF32> =
                (0..copies).map(|c| PackedF32::from_bt(k, n, &wf[c * n * k..(c + 1) * n * k])).collect();
            drop(wf);
            let r = rate(copies, min_time, threads, |c| gemm_f32_packed(1, &a, &packed[c], &mut y));
            rows.push(Row {
                kernel: "f32 gemm_f32_packed, packed".into(),
                shape: shape.clone(),
                weight_bytes: per,
                calls_per_s: r,
            });
        }
        // int8 (MatMulInteger, B transposed [n, k], u8 activations with a zero point)
        {
            let per = n * k;
            let copies = (rotation / per).max(1);
            let mut w = vec![0u8; copies * per];
            fill_bytes(&mut w, 2);
            let au: Vec<u8> = (0..k).map(|i| (i * 31 % 251) as u8).collect();
            let mut yi = vec![0i32; n];
            // Packed once, as `smelt run` packs a constant MatMulInteger weight (`w` holds
            // `Bᵀ` copies: the packer takes `B`, k×n).
            let packed: Vec<PackedInt8> = (0..copies)
                .map(|c| {
                    let b = transpose_bytes(n, k, &w[c * per..(c + 1) * per]);
                    PackedInt8::new(k, n, Int8Matrix::I8(bytemuck::cast_slice(&b)))
                })
                .collect();
            drop(w);
            let r = rate(copies, min_time, threads, |c| {
                matmul_integer_packed(
                    1,
                    Int8Matrix::U8(&au),
                    ZeroPoints::PerTensor(128),
                    &packed[c],
                    ZeroPoints::PerTensor(0),
                    &mut yi,
                )
            });
            rows.push(Row {
                kernel: "int8 MatMulInteger (u8·i8), packed".into(),
                shape: shape.clone(),
                weight_bytes: per,
                calls_per_s: r,
            });
        }
        // int4 MatMulNBits, block 32, with zero points
        {
            let bs = 32;
            let (codes, nsc, nzp) = (n * k / 2, n * k / bs, n * (k / bs).div_ceil(2));
            let per = codes + nsc * 4 + nzp;
            let copies = (rotation / per).max(1);
            let mut w = vec![0u8; copies * codes];
            fill_bytes(&mut w, 3);
            let mut zp = vec![0u8; copies * nzp];
            fill_bytes(&mut zp, 4);
            let scales: Vec<f32> = (0..copies * nsc).map(|i| 0.001 + (i % 97) as f32 * 1e-5).collect();
            // Packed once per copy, as a runtime does when it loads the weight.
            let packed: Vec<Packed4Bit> = (0..copies)
                .map(|c| {
                    Packed4Bit::from_nbits(&NBitsQ4 {
                        n,
                        k,
                        block_size: bs,
                        b: &w[c * codes..(c + 1) * codes],
                        scales: &scales[c * nsc..(c + 1) * nsc],
                        zero_points: Some(&zp[c * nzp..(c + 1) * nzp]),
                    })
                })
                .collect();
            drop((w, zp, scales));
            let r = rate(copies, min_time, threads, |c| packed[c].matmul(1, &a, &mut y));
            rows.push(Row {
                kernel: "int4 MatMulNBits (bs 32, zp), packed".into(),
                shape: shape.clone(),
                weight_bytes: per,
                calls_per_s: r,
            });
        }
        // int8 MatMulNBits, block 32, with zero points (read in the ONNX layout; zero points
        // as f32, as `smelt run` keeps them)
        {
            let bs = 32;
            let (codes, nb) = (n * k, n * k / bs);
            let per = codes + nb * 8;
            let copies = (rotation / per).max(1);
            let mut w = vec![0u8; copies * codes];
            fill_bytes(&mut w, 7);
            let mut zb = vec![0u8; copies * nb];
            fill_bytes(&mut zb, 8);
            let zp: Vec<f32> = zb.iter().map(|&z| f32::from(z)).collect();
            drop(zb);
            let scales: Vec<f32> = (0..copies * nb).map(|i| 0.001 + (i % 97) as f32 * 1e-5).collect();
            let r = rate(copies, min_time, threads, |c| {
                let wq = NBitsQ8 {
                    n,
                    k,
                    block_size: bs,
                    b: &w[c * codes..(c + 1) * codes],
                    scales: &scales[c * nb..(c + 1) * nb],
                    zero_points: Some(&zp[c * nb..(c + 1) * nb]),
                };
                matmul_nbits_q8_f32(1, &a, &wq, &mut y)
            });
            rows.push(Row {
                kernel: "int8 MatMulNBits (bs 32, zp)".into(),
                shape: shape.clone(),
                weight_bytes: per,
                calls_per_s: r,
            });
        }
        // NF4 MatMulBnb4, block 64
        {
            let bs = 64;
            let (codes, nab) = (n * k / 2, n * k / bs);
            let per = codes + nab * 4;
            let copies = (rotation / per).max(1);
            let mut w = vec![0u8; copies * codes];
            fill_bytes(&mut w, 5);
            let absmax: Vec<f32> = (0..copies * nab).map(|i| 0.01 + (i % 89) as f32 * 1e-4).collect();
            let packed: Vec<Packed4Bit> = (0..copies)
                .map(|c| {
                    let wq = Bnb4Nf4 {
                        n,
                        k,
                        block_size: bs,
                        b: &w[c * codes..(c + 1) * codes],
                        absmax: &absmax[c * nab..(c + 1) * nab],
                    };
                    Packed4Bit::from_nf4(&wq).expect("block_size divides k")
                })
                .collect();
            drop((w, absmax));
            let r = rate(copies, min_time, threads, |c| packed[c].matmul(1, &a, &mut y));
            rows.push(Row {
                kernel: "NF4 MatMulBnb4 (bs 64), packed".into(),
                shape: shape.clone(),
                weight_bytes: per,
                calls_per_s: r,
            });
        }
        // ternary, 2-bit
        {
            let per = n * k / 4;
            let copies = (rotation / per).max(1);
            let mut w = vec![0u8; copies * per];
            fill_bytes(&mut w, 6);
            // Keep codes valid (0..=2): clear the high bit where both are set.
            w.par_iter_mut().for_each(|b| *b &= !((*b & 0x55) << 1 & (*b & 0xAA)));
            let packed: Vec<PackedTernary2> = (0..copies)
                .map(|c| {
                    PackedTernary2::new(&Ternary2 { n, k, packed: &w[c * per..(c + 1) * per], scale: 0.02 })
                })
                .collect();
            drop(w);
            let r = rate(copies, min_time, threads, |c| packed[c].matmul(1, &a, &mut y));
            rows.push(Row {
                kernel: "ternary 2-bit, packed".into(),
                shape: shape.clone(),
                weight_bytes: per,
                calls_per_s: r,
            });
        }
    }

    println!("| kernel (GEMV, batch 1) | shape n×k | weight MB | µs/call | GB/s | % of bandwidth | GB/s per CPU-s | % (CPU-normalized) |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let gbs = r.weight_bytes as f64 * r.calls_per_s.wall / 1e9;
        let gbs_cpu = r.weight_bytes as f64 * r.calls_per_s.cpu / 1e9;
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.1} | {:.0}% | {:.1} | {:.0}% |",
            r.kernel,
            r.shape,
            r.weight_bytes as f64 / 1e6,
            1e6 / r.calls_per_s.wall,
            gbs,
            100.0 * gbs / bw.wall,
            gbs_cpu,
            100.0 * gbs_cpu / bw.cpu
        );
    }

    // f32 GEMM, compute bound.
    println!("\n| f32 GEMM | m×n×k | ms/call | GFLOP/s | GFLOP/s per CPU-s |");
    println!("|---|---|---|---|---|");
    for (m, n, k) in [(128usize, 4096usize, 4096usize), (128, 2816, 1024), (512, 1024, 1024)] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 11) as f32 * 0.01).collect();
        let packed = smelt_kernels::PackedF32::new(k, n, &b);
        let mut c = vec![0.0f32; m * n];
        for (name, kind) in
            [("gemm_f32 (B k×n)", 0), ("gemm_f32_bt (B n×k)", 1), ("gemm_f32_packed (B packed at load)", 2)]
        {
            let r = rate(1, min_time, threads, |_| match kind {
                0 => gemm_f32(m, n, k, &a, &b, &mut c),
                1 => gemm_f32_bt(m, n, k, &a, &b, &mut c),
                _ => smelt_kernels::gemm_f32_packed(m, &a, &packed, &mut c),
            });
            let flops = 2.0 * (m * n * k) as f64;
            println!(
                "| {name} | {m}×{n}×{k} | {:.1} | {:.1} | {:.1} |",
                1e3 / r.wall,
                flops * r.wall / 1e9,
                flops * r.cpu / 1e9
            );
        }
    }
}
