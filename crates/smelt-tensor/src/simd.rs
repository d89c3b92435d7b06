//! Run-time choice of instruction set for the loops of conversion and quantization.
//!
//! These loops are written once, in portable Rust that the compiler vectorizes, and compiled
//! several times: for the baseline target (the scalar reference, and the only version on CPUs
//! without AVX2 and on other architectures), for AVX2 + FMA, and for AVX-512. [`tiered!`]
//! writes the copies and the dispatch. The CPU is probed once per process; setting
//! `SMELT_FORCE_SCALAR=1` pins every loop to the baseline copy (as it pins smelt-kernels).
//!
//! **Every copy gives the same bits.** Rust never contracts `a * b + c` into a fused
//! multiply-add and never reassociates float operations, so enabling wider registers changes
//! how many elements an instruction handles, never the operations each element goes through
//! or their order. A loop that wants a different order on a wider machine must not use this
//! module. Differential tests run every copy the CPU has on the same inputs and compare bits.

use std::sync::OnceLock;

/// An instruction-set level a [`tiered!`] loop is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// The baseline target: the reference.
    Scalar,
    /// x86-64 AVX2 + FMA + BMI2 (256-bit).
    Avx2,
    /// x86-64 AVX-512 F, BW, VL, DQ on top of AVX2 (512-bit).
    Avx512,
}

impl Tier {
    /// Every level, from the most portable.
    pub const ALL: [Tier; 3] = [Tier::Scalar, Tier::Avx2, Tier::Avx512];

    /// Whether this CPU can run code compiled for this level.
    pub fn is_available(self) -> bool {
        match self {
            Tier::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => {
                std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("bmi2")
            }
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => {
                Tier::Avx2.is_available()
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512dq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
        }
    }
}

/// The level this process runs [`tiered!`] loops at: the widest the CPU has, or
/// [`Tier::Scalar`] under `SMELT_FORCE_SCALAR=1` (or the level [`with_tier`] set on this
/// thread).
pub fn tier() -> Tier {
    if let Some(t) = OVERRIDE.with(|o| o.get()) {
        return t;
    }
    static TIER: OnceLock<Tier> = OnceLock::new();
    *TIER.get_or_init(|| {
        if std::env::var_os("SMELT_FORCE_SCALAR").is_some_and(|v| v == "1") {
            return Tier::Scalar;
        }
        [Tier::Avx512, Tier::Avx2].into_iter().find(|t| t.is_available()).unwrap_or(Tier::Scalar)
    })
}

thread_local! {
    static OVERRIDE: std::cell::Cell<Option<Tier>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with [`tier`] returning `t` on the calling thread (other threads, rayon's workers
/// among them, keep the process's level): for differential tests of functions that dispatch
/// inside. A level the CPU lacks runs the baseline copy, as [`tiered!`] always does.
pub fn with_tier<R>(t: Tier, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Tier>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(t))));
    f()
}

/// Defines `fn NAME(tier: Tier, args...) -> R` that runs `BODY(args...)` compiled for `tier`
/// (or for the baseline when the CPU lacks it), from a function `BODY` that should be
/// `#[inline(always)]` so each copy inlines it whole:
///
/// ```
/// #[inline(always)]
/// fn sum_body(v: &[f32]) -> f32 {
///     v.iter().fold(0.0, |a, b| a + b)
/// }
/// smelt_tensor::tiered!(pub fn sum_with(v: &[f32]) -> f32 = sum_body);
/// assert_eq!(sum_with(smelt_tensor::simd::tier(), &[1.0, 2.0]), 3.0);
/// ```
#[macro_export]
macro_rules! tiered {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:path) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name(tier: $crate::simd::Tier, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                match tier {
                    // SAFETY: the CPU has the features the copy was compiled for.
                    $crate::simd::Tier::Avx512 if $crate::simd::Tier::Avx512.is_available() => {
                        return unsafe { avx512($($arg),*) }
                    }
                    $crate::simd::Tier::Avx2 | $crate::simd::Tier::Avx512 if $crate::simd::Tier::Avx2.is_available() => {
                        return unsafe { avx2($($arg),*) }
                    }
                    _ => {}
                }
            }
            let _ = tier;
            $body($($arg),*)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(always)]
    fn dot_body(a: &[f32], b: &[f32]) -> f32 {
        // Eight lanes in a fixed order: the same bits at every level.
        let mut acc = [0f32; 8];
        for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
            for j in 0..8 {
                acc[j] += x[j] * y[j];
            }
        }
        acc.iter().fold(0.0, |s, v| s + v)
    }
    crate::tiered!(fn dot(a: &[f32], b: &[f32]) -> f32 = dot_body);

    #[test]
    fn every_level_gives_the_same_bits() {
        let a: Vec<f32> = (0..4096).map(|i| ((i * 7919 % 1013) as f32 - 500.0) * 1.37e-3).collect();
        let b: Vec<f32> = (0..4096).map(|i| ((i * 104_729 % 997) as f32 - 498.0) * 2.1e-2).collect();
        let want = dot(Tier::Scalar, &a, &b);
        for t in Tier::ALL {
            assert_eq!(dot(t, &a, &b).to_bits(), want.to_bits(), "{}", t.name());
        }
        assert!(tier() == Tier::Scalar || tier().is_available());
    }
}
