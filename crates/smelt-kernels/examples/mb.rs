use smelt_kernels::*;
use std::time::Instant;
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (m, n, k, threads) = (args[0], args[1], args[2], args[3]);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
    let p = PackedF32::new(k, n, &b);
    let mut c = vec![0f32; m * n];
    let flops = 2.0 * (m * n * k) as f64;
    {
        let a8: Vec<u8> = (0..m * k).map(|i| (i * 31 % 251) as u8).collect();
        let b8: Vec<i8> = (0..k * n).map(|i| (i * 17 % 251) as i8).collect();
        let p8 = PackedInt8::new(k, n, Int8Matrix::I8(&b8));
        let mut c8 = vec![0i32; m * n];
        let mut best = f64::MAX;
        let c0 = cpu();
        for _ in 0..10 {
            let t = Instant::now();
            matmul_integer_packed(
                m,
                Int8Matrix::U8(&a8),
                ZeroPoints::PerTensor(3),
                &p8,
                ZeroPoints::PerTensor(0),
                &mut c8,
            );
            best = best.min(t.elapsed().as_secs_f64());
        }
        let cpu_ms = (cpu() - c0) * 100.0;
        println!(
            "int8 m={m} n={n} k={k} t={threads}: {:.2} ms, {:.1} GOP/s, cpu {cpu_ms:.2} ms/call",
            best * 1e3,
            flops / best / 1e9
        );
    }
    for name in ["packed", "q4"] {
        let q4 = if name == "q4" {
            let bs = 32;
            let bytes: Vec<u8> = (0..n * k / 2).map(|i| (i * 31 % 251) as u8).collect();
            let scales: Vec<f32> = (0..n * k / bs).map(|i| 0.01 + (i % 7) as f32 * 0.001).collect();
            let w = NBitsQ4 { n, k, block_size: bs, b: &bytes, scales: &scales, zero_points: None };
            Some(Packed4Bit::from_nbits(&w))
        } else {
            None
        };
        let mut best = f64::MAX;
        let c0 = cpu();
        for _ in 0..10 {
            let t = Instant::now();
            match &q4 {
                Some(w) => w.matmul(m, &a, &mut c),
                None => gemm_f32_packed(m, &a, &p, &mut c),
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name} m={m} n={n} k={k} t={threads}: {:.2} ms, {:.1} GFLOP/s",
            best * 1e3,
            flops / best / 1e9
        );
    }
}
