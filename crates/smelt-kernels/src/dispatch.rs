//! Runtime choice of instruction set, made once per process.
//!
//! As in memchr and tract's linalg: a CPU probe at first use fills a small table saying, for
//! each kernel family, which implementation runs; `SMELT_FORCE_SCALAR=1` pins everything to
//! the scalar reference. [`selected`] returns that table for logging.

use std::fmt;
use std::sync::OnceLock;

/// An instruction-set level a kernel can be written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, the reference.
    Scalar,
    /// x86-64 AVX2 + FMA (256-bit).
    Avx2,
    /// AVX2 + FMA + AVX-VNNI (256-bit `vpdpbusd`).
    AvxVnni,
    /// AVX-512 F, BW, VL + FMA (512-bit).
    Avx512,
    /// AVX-512 as above + AVX512-VNNI (512-bit `vpdpbusd`).
    Avx512Vnni,
    /// aarch64 Advanced SIMD (128-bit: the f32 GEMMs, int8 `MatMulInteger`, the 4-bit and
    /// ternary GEMVs).
    Neon,
    /// NEON plus the dot-product extension (Armv8.2+ `sdot`: 16 byte products per
    /// instruction) for int8 `MatMulInteger`; every other kernel runs its NEON version.
    NeonDot,
}

impl Isa {
    /// Every level, from the most portable.
    pub const ALL: [Isa; 7] =
        [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512, Isa::Avx512Vnni, Isa::Neon, Isa::NeonDot];

    /// Whether this CPU can run code written for this level.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => Isa::Avx2.is_available() && std::is_x86_feature_detected!("avxvnni"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.is_available()
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => Isa::Avx512.is_available() && std::is_x86_feature_detected!("avx512vnni"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDot => Isa::Neon.is_available() && std::arch::is_aarch64_feature_detected!("dotprod"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// A short lower-case name (`scalar`, `avx2`, `avx-vnni`, `avx512`, `avx512-vnni`, `neon`,
    /// `neon-dot`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx-vnni",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::Neon => "neon",
            Isa::NeonDot => "neon-dot",
        }
    }

    /// `self` if the CPU has it, else scalar: what the `*_with` entry points run.
    pub(crate) fn or_scalar(self) -> Isa {
        if self.is_available() {
            self
        } else {
            Isa::Scalar
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which implementation each kernel family uses in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// f32 GEMM/GEMV and the dequantize-matmuls (int4, NF4, ternary), which are float FMA.
    pub float: Isa,
    /// int8 `MatMulInteger`.
    pub int8: Isa,
    /// Whether `SMELT_FORCE_SCALAR=1` forced the scalar path.
    pub forced_scalar: bool,
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "float kernels: {}, int8 kernels: {}", self.float, self.int8)?;
        if self.forced_scalar {
            f.write_str(" (SMELT_FORCE_SCALAR=1)")?;
        }
        Ok(())
    }
}

/// The kernels chosen for this process (probed once, at first call).
pub fn selected() -> Selection {
    static SELECTION: OnceLock<Selection> = OnceLock::new();
    *SELECTION.get_or_init(probe)
}

fn probe() -> Selection {
    let forced_scalar = std::env::var_os("SMELT_FORCE_SCALAR").is_some_and(|v| v == "1");
    if forced_scalar {
        return Selection { float: Isa::Scalar, int8: Isa::Scalar, forced_scalar };
    }
    let first = |order: &[Isa]| order.iter().copied().find(|i| i.is_available()).unwrap_or(Isa::Scalar);
    Selection {
        float: first(&[Isa::Avx512, Isa::Avx2, Isa::Neon]),
        // 256-bit vpdpbusd does 32 byte products per instruction, as many as the three-instruction
        // widening sequence of plain AVX-512, so AVX-VNNI ranks above it.
        int8: first(&[Isa::Avx512Vnni, Isa::AvxVnni, Isa::Avx512, Isa::Avx2, Isa::NeonDot, Isa::Neon]),
        forced_scalar,
    }
}
