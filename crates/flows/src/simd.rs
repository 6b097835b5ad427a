//! SIMD vectors of the lane path ([`crate::lanes`]): one value per lane of a
//! tile, with the handful of operations the kernels need.
//!
//! Three families: `Arr` (plain arrays, any machine, multiply and add
//! rounded separately), and on x86-64 AVX-512 (one 512-bit register) and
//! AVX2 (two 256-bit registers), both with fused multiply-add. The lane
//! count is the same for a precision whatever the family (f64: 8, f32: 16),
//! so every family computes the same per-lane operations in the same order;
//! horizontal sums run over the lanes in index order in f64.
//!
//! # Safety
//! The x86 types call `core::arch` intrinsics. Their methods are
//! `#[inline(always)]` and are only ever called from kernels compiled with
//! `#[target_feature]` for that family, after [`crate::lanes::Isa::best`]
//! found the features on the machine (the dispatch in `lanes`); they are
//! private to this crate.

use crate::lanes::Real;

/// A vector of `N` lanes of `T`.
pub(crate) trait Simd: Copy {
    /// Scalar type.
    type T: Real;
    /// Lanes.
    const N: usize;
    /// Whether the family has 32 vector registers per value (AVX-512: one
    /// zmm per value; AVX2 spends two of its 16 ymm, so 8 values fit).
    const MANY_REGS: bool = false;
    /// All lanes zero.
    fn zero() -> Self;
    /// All lanes `v`.
    fn splat(v: Self::T) -> Self;
    /// The first `N` entries of `s`.
    fn load(s: &[Self::T]) -> Self;
    /// Into the first `N` entries of `s`.
    fn store(self, s: &mut [Self::T]);
    /// self · b + c.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// self + b.
    fn add(self, b: Self) -> Self;
    /// Σ lanes in index order, in f64.
    fn sum(self) -> f64;
}

/// Plain arrays: the portable family (no FMA assumed).
#[derive(Clone, Copy)]
pub(crate) struct Arr<T, const N: usize>([T; N]);

impl<T: Real, const N: usize> Simd for Arr<T, N> {
    type T = T;
    const N: usize = N;
    #[inline(always)]
    fn zero() -> Self {
        Arr([T::default(); N])
    }
    #[inline(always)]
    fn splat(v: T) -> Self {
        Arr([v; N])
    }
    #[inline(always)]
    fn load(s: &[T]) -> Self {
        Arr(s[..N].try_into().unwrap())
    }
    #[inline(always)]
    fn store(self, s: &mut [T]) {
        s[..N].copy_from_slice(&self.0);
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Arr(std::array::from_fn(|l| self.0[l] * b.0[l] + c.0[l]))
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Arr(std::array::from_fn(|l| self.0[l] + b.0[l]))
    }
    #[inline(always)]
    fn sum(self) -> f64 {
        self.0.iter().fold(0.0, |a, &v| a + v.wide())
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2F32, Avx2F64, Avx512F32, Avx512F64};

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    fn sum_lanes<T: crate::lanes::Real>(a: &[T]) -> f64 {
        a.iter().fold(0.0, |s, &v| s + v.wide())
    }

    /// 16 f32 lanes in one AVX-512 register.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512F32(__m512);
    /// 8 f64 lanes in one AVX-512 register.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512F64(__m512d);
    /// 16 f32 lanes in two AVX2 registers.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2F32(__m256, __m256);
    /// 8 f64 lanes in two AVX2 registers.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2F64(__m256d, __m256d);

    // SAFETY (every block below): the module doc's contract — these run only
    // inside kernels compiled for, and dispatched to, machines with the
    // features; loads and stores are bounds-checked by the slice index first.
    impl Simd for Avx512F32 {
        type T = f32;
        const N: usize = 16;
        const MANY_REGS: bool = true;
        #[inline(always)]
        fn zero() -> Self {
            Avx512F32(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        fn splat(v: f32) -> Self {
            Avx512F32(unsafe { _mm512_set1_ps(v) })
        }
        #[inline(always)]
        fn load(s: &[f32]) -> Self {
            let s = &s[..16];
            Avx512F32(unsafe { _mm512_loadu_ps(s.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, s: &mut [f32]) {
            let s = &mut s[..16];
            unsafe { _mm512_storeu_ps(s.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            Avx512F32(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            Avx512F32(unsafe { _mm512_add_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn sum(self) -> f64 {
            let mut a = [0.0f32; 16];
            self.store(&mut a);
            sum_lanes(&a)
        }
    }

    impl Simd for Avx512F64 {
        type T = f64;
        const N: usize = 8;
        const MANY_REGS: bool = true;
        #[inline(always)]
        fn zero() -> Self {
            Avx512F64(unsafe { _mm512_setzero_pd() })
        }
        #[inline(always)]
        fn splat(v: f64) -> Self {
            Avx512F64(unsafe { _mm512_set1_pd(v) })
        }
        #[inline(always)]
        fn load(s: &[f64]) -> Self {
            let s = &s[..8];
            Avx512F64(unsafe { _mm512_loadu_pd(s.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, s: &mut [f64]) {
            let s = &mut s[..8];
            unsafe { _mm512_storeu_pd(s.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            Avx512F64(unsafe { _mm512_fmadd_pd(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            Avx512F64(unsafe { _mm512_add_pd(self.0, b.0) })
        }
        #[inline(always)]
        fn sum(self) -> f64 {
            let mut a = [0.0f64; 8];
            self.store(&mut a);
            sum_lanes(&a)
        }
    }

    impl Simd for Avx2F32 {
        type T = f32;
        const N: usize = 16;
        #[inline(always)]
        fn zero() -> Self {
            unsafe { Avx2F32(_mm256_setzero_ps(), _mm256_setzero_ps()) }
        }
        #[inline(always)]
        fn splat(v: f32) -> Self {
            unsafe { Avx2F32(_mm256_set1_ps(v), _mm256_set1_ps(v)) }
        }
        #[inline(always)]
        fn load(s: &[f32]) -> Self {
            let s = &s[..16];
            unsafe { Avx2F32(_mm256_loadu_ps(s.as_ptr()), _mm256_loadu_ps(s[8..].as_ptr())) }
        }
        #[inline(always)]
        fn store(self, s: &mut [f32]) {
            let s = &mut s[..16];
            unsafe {
                _mm256_storeu_ps(s.as_mut_ptr(), self.0);
                _mm256_storeu_ps(s[8..].as_mut_ptr(), self.1);
            }
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            unsafe { Avx2F32(_mm256_fmadd_ps(self.0, b.0, c.0), _mm256_fmadd_ps(self.1, b.1, c.1)) }
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            unsafe { Avx2F32(_mm256_add_ps(self.0, b.0), _mm256_add_ps(self.1, b.1)) }
        }
        #[inline(always)]
        fn sum(self) -> f64 {
            let mut a = [0.0f32; 16];
            self.store(&mut a);
            sum_lanes(&a)
        }
    }

    impl Simd for Avx2F64 {
        type T = f64;
        const N: usize = 8;
        #[inline(always)]
        fn zero() -> Self {
            unsafe { Avx2F64(_mm256_setzero_pd(), _mm256_setzero_pd()) }
        }
        #[inline(always)]
        fn splat(v: f64) -> Self {
            unsafe { Avx2F64(_mm256_set1_pd(v), _mm256_set1_pd(v)) }
        }
        #[inline(always)]
        fn load(s: &[f64]) -> Self {
            let s = &s[..8];
            unsafe { Avx2F64(_mm256_loadu_pd(s.as_ptr()), _mm256_loadu_pd(s[4..].as_ptr())) }
        }
        #[inline(always)]
        fn store(self, s: &mut [f64]) {
            let s = &mut s[..8];
            unsafe {
                _mm256_storeu_pd(s.as_mut_ptr(), self.0);
                _mm256_storeu_pd(s[4..].as_mut_ptr(), self.1);
            }
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            unsafe { Avx2F64(_mm256_fmadd_pd(self.0, b.0, c.0), _mm256_fmadd_pd(self.1, b.1, c.1)) }
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            unsafe { Avx2F64(_mm256_add_pd(self.0, b.0), _mm256_add_pd(self.1, b.1)) }
        }
        #[inline(always)]
        fn sum(self) -> f64 {
            let mut a = [0.0f64; 8];
            self.store(&mut a);
            sum_lanes(&a)
        }
    }
}
