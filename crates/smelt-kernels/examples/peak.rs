use std::arch::x86_64::*;
use std::time::Instant;
#[target_feature(enable = "avx512f,fma")]
unsafe fn run(iters: usize) -> f32 {
    let mut acc = [_mm512_set1_ps(0.0); 16];
    let b = _mm512_set1_ps(1.0000001);
    let c = _mm512_set1_ps(0.999999);
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, b, c);
        }
    }
    let mut s = 0.0;
    for a in acc {
        s += _mm512_reduce_add_ps(a);
    }
    s
}
#[target_feature(enable = "avx2,fma")]
unsafe fn run256(iters: usize) -> f32 {
    let mut acc = [_mm256_set1_ps(0.0); 12];
    let b = _mm256_set1_ps(1.0000001);
    let c = _mm256_set1_ps(0.999999);
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, b, c);
        }
    }
    let mut s = 0.0;
    for a in acc {
        let mut t = [0f32; 8];
        _mm256_storeu_ps(t.as_mut_ptr(), a);
        s += t.iter().sum::<f32>();
    }
    s
}
fn main() {
    let iters = 100_000_000;
    let t = Instant::now();
    let s = unsafe { run(iters) };
    let dt = t.elapsed().as_secs_f64();
    println!("avx512: {:.1} GFLOP/s ({s})", (iters * 16 * 32) as f64 / dt / 1e9);
    let t = Instant::now();
    let s = unsafe { run256(iters) };
    let dt = t.elapsed().as_secs_f64();
    println!("avx2: {:.1} GFLOP/s ({s})", (iters * 12 * 16) as f64 / dt / 1e9);
}
