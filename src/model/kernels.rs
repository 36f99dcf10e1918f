//! The dense backend's arithmetic: one tile of rows through one 16-column panel of a layer,
//! `out[r][j] = act(b[j] + sum_k x[r][k] * w[k][j])`, and the element-wise activations.
//!
//! Three builds of the same tile: AVX-512 (16 lanes, 8 rows a tile), AVX2 + FMA (two 8-lane
//! halves, 6 rows a tile) and portable Rust (what the compiler makes of it for the baseline
//! target). The instruction set is detected at run time (`is_x86_feature_detected!`); the
//! `KAFKAML_DENSE_ISA` environment variable (`avx512`, `avx2`, `portable`) can lower it, which
//! the tests use to check every build against TensorFlow on one machine.
//!
//! Weights are packed per panel: `w[k * PANEL + j]` for the panel's 16 output columns
//! (`w[k * 8 + j]` in a narrow panel of 8), zero beyond the layer's width; the input of a tile
//! is read straight from row-major rows.
//!
//! Every tile, whatever its row count, sums a column in one order (the bias, then `k = 0, 1,
//! ...` in one accumulator), so a row's result does not depend on the batch it came in: the
//! KSQL UDF scoring four records at once gets, bit for bit, what `predict` gives on one.

/// Output columns per panel (one AVX-512 register, two AVX2 registers).
pub const PANEL: usize = 16;
/// Columns of a narrow panel (one AVX2 register): a layer whose width leaves 1 to 8 columns
/// past its last full panel ends with one, so narrow layers (7, 8, 20 wide) waste less.
pub const HALF: usize = 8;

/// The instruction set the tiles run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    /// The best this CPU offers, lowered by `KAFKAML_DENSE_ISA` when set.
    pub fn detect() -> Isa {
        let cap = match std::env::var("KAFKAML_DENSE_ISA").as_deref() {
            Ok("portable") => Isa::Portable,
            Ok("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        };
        let best = Isa::best();
        if cap.rank() < best.rank() {
            cap
        } else {
            best
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn best() -> Isa {
        if is_x86_feature_detected!("avx512f") {
            Isa::Avx512
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            Isa::Avx2
        } else {
            Isa::Portable
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn best() -> Isa {
        Isa::Portable
    }

    fn rank(self) -> u8 {
        match self {
            Isa::Portable => 0,
            Isa::Avx2 => 1,
            Isa::Avx512 => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// Panels a tile can cover at once.
    pub fn max_panels(self) -> usize {
        match self {
            Isa::Avx512 => 2,
            _ => 1,
        }
    }

    /// Rows of the full-size tile (what fills the registers without spilling).
    pub fn tile_rows(self) -> usize {
        match self {
            Isa::Avx512 => 8,
            Isa::Avx2 => 6,
            Isa::Portable => 4,
        }
    }
}

/// What follows a layer's matrix product and bias, element by element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Identity,
    /// `min(max(x, lo), hi)`: ReLU is `Clip { lo: 0, hi: inf }`, ReLU6 `Clip { lo: 0, hi: 6 }`.
    Clip {
        lo: f32,
        hi: f32,
    },
    Tanh,
    Sigmoid,
}

/// One tile: `rows` rows (1 ..= `isa.tile_rows()`) of `x` (row stride `xs`, `k` values read
/// per row) through `cols` output columns: 8 (a narrow panel, `k * 8` weights), 16 (one
/// panel) or 32 (two panels, the second `ws` values after the first; AVX-512 only). `bias`
/// has `cols` values; `out` gets `cols` values per row (row stride `os`), after `act`.
#[allow(clippy::too_many_arguments)]
pub fn tile(
    isa: Isa,
    rows: usize,
    cols: usize,
    x: &[f32],
    xs: usize,
    k: usize,
    w: &[f32],
    ws: usize,
    bias: &[f32],
    out: &mut [f32],
    os: usize,
    act: Activation,
) {
    assert!(rows >= 1 && rows <= isa.tile_rows() && k >= 1);
    assert!(cols == HALF || cols == PANEL || (cols == 2 * PANEL && isa.max_panels() == 2));
    let w_len = if cols == 2 * PANEL {
        assert!(ws >= k * PANEL);
        ws + k * PANEL
    } else {
        k * cols
    };
    assert!(x.len() >= (rows - 1) * xs + k && xs >= k);
    assert!(w.len() >= w_len && bias.len() >= cols);
    assert!(out.len() >= (rows - 1) * os + cols && os >= cols);
    let (x, w, b, o) = (x.as_ptr(), w.as_ptr(), bias.as_ptr(), out.as_mut_ptr());
    // SAFETY: the asserts above bound every read and write the tiles make; the SIMD builds
    // run only when `Isa::detect` found their features on this CPU.
    unsafe {
        match (isa, cols) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 32) => match rows {
                8 => x86::tile_avx512::<8, 2>(x, xs, k, w, ws, b, o, os, act),
                7 => x86::tile_avx512::<7, 2>(x, xs, k, w, ws, b, o, os, act),
                6 => x86::tile_avx512::<6, 2>(x, xs, k, w, ws, b, o, os, act),
                5 => x86::tile_avx512::<5, 2>(x, xs, k, w, ws, b, o, os, act),
                4 => x86::tile_avx512::<4, 2>(x, xs, k, w, ws, b, o, os, act),
                3 => x86::tile_avx512::<3, 2>(x, xs, k, w, ws, b, o, os, act),
                2 => x86::tile_avx512::<2, 2>(x, xs, k, w, ws, b, o, os, act),
                _ => x86::tile_avx512::<1, 2>(x, xs, k, w, ws, b, o, os, act),
            },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 16) => match rows {
                8 => x86::tile_avx512::<8, 1>(x, xs, k, w, ws, b, o, os, act),
                7 => x86::tile_avx512::<7, 1>(x, xs, k, w, ws, b, o, os, act),
                6 => x86::tile_avx512::<6, 1>(x, xs, k, w, ws, b, o, os, act),
                5 => x86::tile_avx512::<5, 1>(x, xs, k, w, ws, b, o, os, act),
                4 => x86::tile_avx512::<4, 1>(x, xs, k, w, ws, b, o, os, act),
                3 => x86::tile_avx512::<3, 1>(x, xs, k, w, ws, b, o, os, act),
                2 => x86::tile_avx512::<2, 1>(x, xs, k, w, ws, b, o, os, act),
                _ => x86::tile_avx512::<1, 1>(x, xs, k, w, ws, b, o, os, act),
            },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _) => match rows {
                8 => x86::tile_ymm::<8, 1>(x, xs, k, w, b, o, os, act),
                7 => x86::tile_ymm::<7, 1>(x, xs, k, w, b, o, os, act),
                6 => x86::tile_ymm::<6, 1>(x, xs, k, w, b, o, os, act),
                5 => x86::tile_ymm::<5, 1>(x, xs, k, w, b, o, os, act),
                4 => x86::tile_ymm::<4, 1>(x, xs, k, w, b, o, os, act),
                3 => x86::tile_ymm::<3, 1>(x, xs, k, w, b, o, os, act),
                2 => x86::tile_ymm::<2, 1>(x, xs, k, w, b, o, os, act),
                _ => x86::tile_ymm::<1, 1>(x, xs, k, w, b, o, os, act),
            },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 16) => match rows {
                6 => x86::tile_ymm::<6, 2>(x, xs, k, w, b, o, os, act),
                5 => x86::tile_ymm::<5, 2>(x, xs, k, w, b, o, os, act),
                4 => x86::tile_ymm::<4, 2>(x, xs, k, w, b, o, os, act),
                3 => x86::tile_ymm::<3, 2>(x, xs, k, w, b, o, os, act),
                2 => x86::tile_ymm::<2, 2>(x, xs, k, w, b, o, os, act),
                _ => x86::tile_ymm::<1, 2>(x, xs, k, w, b, o, os, act),
            },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, _) => match rows {
                6 => x86::tile_ymm::<6, 1>(x, xs, k, w, b, o, os, act),
                5 => x86::tile_ymm::<5, 1>(x, xs, k, w, b, o, os, act),
                4 => x86::tile_ymm::<4, 1>(x, xs, k, w, b, o, os, act),
                3 => x86::tile_ymm::<3, 1>(x, xs, k, w, b, o, os, act),
                2 => x86::tile_ymm::<2, 1>(x, xs, k, w, b, o, os, act),
                _ => x86::tile_ymm::<1, 1>(x, xs, k, w, b, o, os, act),
            },
            (_, 16) => match rows {
                4 => tile_portable::<4, 16>(x, xs, k, w, b, o, os, act),
                3 => tile_portable::<3, 16>(x, xs, k, w, b, o, os, act),
                2 => tile_portable::<2, 16>(x, xs, k, w, b, o, os, act),
                _ => tile_portable::<1, 16>(x, xs, k, w, b, o, os, act),
            },
            _ => match rows {
                4 => tile_portable::<4, 8>(x, xs, k, w, b, o, os, act),
                3 => tile_portable::<3, 8>(x, xs, k, w, b, o, os, act),
                2 => tile_portable::<2, 8>(x, xs, k, w, b, o, os, act),
                _ => tile_portable::<1, 8>(x, xs, k, w, b, o, os, act),
            },
        }
    }
}

/// The tile in plain Rust, `C` columns (no fused multiply-add: the baseline target may lack
/// it).
#[allow(clippy::too_many_arguments)]
unsafe fn tile_portable<const R: usize, const C: usize>(
    x: *const f32,
    xs: usize,
    k: usize,
    w: *const f32,
    b: *const f32,
    out: *mut f32,
    os: usize,
    act: Activation,
) {
    let mut acc = [[0f32; C]; R];
    for row in acc.iter_mut() {
        row.copy_from_slice(std::slice::from_raw_parts(b, C));
    }
    for kk in 0..k {
        let wk = std::slice::from_raw_parts(w.add(kk * C), C);
        for (r, row) in acc.iter_mut().enumerate() {
            let xv = *x.add(r * xs + kk);
            for (a, wv) in row.iter_mut().zip(wk) {
                *a += xv * wv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        let dst = std::slice::from_raw_parts_mut(out.add(r * os), C);
        dst.copy_from_slice(row);
        activate::<false>(act, dst);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Activation, HALF, LN2_HEAD, LN2_TAIL, PANEL, ROUND, TAYLOR};
    use std::arch::x86_64::*;

    // The activations on whole registers: the same arithmetic as the scalar `tanh_with`,
    // `sigmoid_with` and `exp_with` below, lane by lane.

    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub unsafe fn act512(act: Activation, v: __m512) -> __m512 {
        match act {
            Activation::Identity => v,
            Activation::Clip { lo, hi } => {
                _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi))
            }
            Activation::Tanh => {
                let bits = _mm512_castps_si512(v);
                let sign = _mm512_and_si512(bits, _mm512_set1_epi32(i32::MIN));
                let abs = _mm512_castsi512_ps(_mm512_andnot_si512(sign, bits));
                let a = _mm512_min_ps(abs, _mm512_set1_ps(9.0));
                let y = _mm512_add_ps(a, a);
                let (q, scale) = expm1_parts512(y);
                let one = _mm512_set1_ps(1.0);
                let em1 = _mm512_fmadd_ps(q, scale, _mm512_sub_ps(scale, one));
                let t = _mm512_div_ps(em1, _mm512_add_ps(em1, _mm512_set1_ps(2.0)));
                _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign))
            }
            Activation::Sigmoid => {
                let m = _mm512_sub_ps(_mm512_setzero_ps(), v);
                let m = _mm512_min_ps(
                    _mm512_max_ps(m, _mm512_set1_ps(-87.0)),
                    _mm512_set1_ps(88.0),
                );
                let (q, scale) = expm1_parts512(m);
                let e = _mm512_fmadd_ps(q, scale, scale);
                let one = _mm512_set1_ps(1.0);
                _mm512_div_ps(one, _mm512_add_ps(one, e))
            }
        }
    }

    /// `(e^r - 1, 2^n)` for `y = n ln 2 + r`, `y` in [-87, 88].
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn expm1_parts512(y: __m512) -> (__m512, __m512) {
        let round = _mm512_set1_ps(ROUND);
        let shifted = _mm512_fmadd_ps(y, _mm512_set1_ps(std::f32::consts::LOG2_E), round);
        let n = _mm512_sub_ps(shifted, round);
        let n_int = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_castps_si512(round));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HEAD), y);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_TAIL), r);
        let mut p = _mm512_set1_ps(TAYLOR[0]);
        for c in &TAYLOR[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
        }
        let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(n_int, _mm512_set1_epi32(127)));
        (_mm512_mul_ps(p, r), _mm512_castsi512_ps(scale))
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub unsafe fn act256(act: Activation, v: __m256) -> __m256 {
        match act {
            Activation::Identity => v,
            Activation::Clip { lo, hi } => {
                _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi))
            }
            Activation::Tanh => {
                let sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0));
                let abs = _mm256_andnot_ps(sign, v);
                let a = _mm256_min_ps(abs, _mm256_set1_ps(9.0));
                let y = _mm256_add_ps(a, a);
                let (q, scale) = expm1_parts256(y);
                let one = _mm256_set1_ps(1.0);
                let em1 = _mm256_fmadd_ps(q, scale, _mm256_sub_ps(scale, one));
                let t = _mm256_div_ps(em1, _mm256_add_ps(em1, _mm256_set1_ps(2.0)));
                _mm256_or_ps(t, sign)
            }
            Activation::Sigmoid => {
                let m = _mm256_sub_ps(_mm256_setzero_ps(), v);
                let m = _mm256_min_ps(
                    _mm256_max_ps(m, _mm256_set1_ps(-87.0)),
                    _mm256_set1_ps(88.0),
                );
                let (q, scale) = expm1_parts256(m);
                let e = _mm256_fmadd_ps(q, scale, scale);
                let one = _mm256_set1_ps(1.0);
                _mm256_div_ps(one, _mm256_add_ps(one, e))
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn expm1_parts256(y: __m256) -> (__m256, __m256) {
        let round = _mm256_set1_ps(ROUND);
        let shifted = _mm256_fmadd_ps(y, _mm256_set1_ps(std::f32::consts::LOG2_E), round);
        let n = _mm256_sub_ps(shifted, round);
        let n_int = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_castps_si256(round));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HEAD), y);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_TAIL), r);
        let mut p = _mm256_set1_ps(TAYLOR[0]);
        for c in &TAYLOR[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
        }
        let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(n_int, _mm256_set1_epi32(127)));
        (_mm256_mul_ps(p, r), _mm256_castsi256_ps(scale))
    }

    /// `act` on `values` with whole registers (the tests' way to reach these functions).
    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn apply512(act: Activation, values: &mut [f32]) {
        for chunk in values.chunks_exact_mut(PANEL) {
            let v = act512(act, _mm512_loadu_ps(chunk.as_ptr()));
            _mm512_storeu_ps(chunk.as_mut_ptr(), v);
        }
    }

    #[cfg(test)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn apply256(act: Activation, values: &mut [f32]) {
        for chunk in values.chunks_exact_mut(HALF) {
            let v = act256(act, _mm256_loadu_ps(chunk.as_ptr()));
            _mm256_storeu_ps(chunk.as_mut_ptr(), v);
        }
    }

    /// `R` rows by `P` panels at once: `P` weight loads and `R` broadcasts feed `R * P`
    /// multiply-adds per input value.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn tile_avx512<const R: usize, const P: usize>(
        x: *const f32,
        xs: usize,
        k: usize,
        w: *const f32,
        ws: usize,
        b: *const f32,
        out: *mut f32,
        os: usize,
        act: Activation,
    ) {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        for row in acc.iter_mut() {
            for (p, a) in row.iter_mut().enumerate() {
                *a = _mm512_loadu_ps(b.add(p * PANEL));
            }
        }
        for kk in 0..k {
            let mut wv = [_mm512_setzero_ps(); P];
            for (p, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(w.add(p * ws + kk * PANEL));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*x.add(r * xs + kk));
                for (a, v) in row.iter_mut().zip(&wv) {
                    *a = _mm512_fmadd_ps(xv, *v, *a);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (p, a) in row.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * os + p * PANEL), act512(act, *a));
            }
        }
    }

    /// `R` rows of `H` 8-lane halves (`H * 8` columns, weights `k * H * 8`).
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn tile_ymm<const R: usize, const H: usize>(
        x: *const f32,
        xs: usize,
        k: usize,
        w: *const f32,
        b: *const f32,
        out: *mut f32,
        os: usize,
        act: Activation,
    ) {
        let mut acc = [[_mm256_setzero_ps(); H]; R];
        for row in acc.iter_mut() {
            for (h, a) in row.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(b.add(h * HALF));
            }
        }
        for kk in 0..k {
            let mut wv = [_mm256_setzero_ps(); H];
            for (h, v) in wv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(w.add((kk * H + h) * HALF));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let xv = _mm256_broadcast_ss(&*x.add(r * xs + kk));
                for (a, v) in row.iter_mut().zip(&wv) {
                    *a = _mm256_fmadd_ps(xv, *v, *a);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (h, a) in row.iter().enumerate() {
                _mm256_storeu_ps(out.add(r * os + h * HALF), act256(act, *a));
            }
        }
    }
}

/// `a * b + c`, fused where the caller's instruction set has FMA (`F`), else in two steps
/// (`mul_add` without hardware FMA would be a slow library call).
#[inline(always)]
fn madd<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Applies `act` in place. Branch-free per element, so the loops vectorise with the caller's
/// instruction set (this is inlined into each tile); `F`: the caller has FMA.
#[inline(always)]
pub fn activate<const F: bool>(act: Activation, values: &mut [f32]) {
    match act {
        Activation::Identity => {}
        Activation::Clip { lo, hi } => {
            for v in values.iter_mut() {
                *v = v.max(lo).min(hi);
            }
        }
        Activation::Tanh => {
            for v in values.iter_mut() {
                *v = tanh_with::<F>(*v);
            }
        }
        Activation::Sigmoid => {
            for v in values.iter_mut() {
                *v = sigmoid_with::<F>(*v);
            }
        }
    }
}

/// Adding 1.5 * 2^23 rounds a float to an integer held in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// ln 2 split in two: a short head (exact products with small integers) and the rest.
const LN2_HEAD: f32 = 0.693_359_4;
const LN2_TAIL: f32 = -2.121_944_4e-4;

/// `y = n ln 2 + r` with `|r| <= ln 2 / 2`: returns `(r, 2^n)`, for `y` in [-87, 88].
#[inline(always)]
fn reduce<const F: bool>(y: f32) -> (f32, f32) {
    let shifted = madd::<F>(y, std::f32::consts::LOG2_E, ROUND);
    let n = shifted - ROUND;
    let n_int = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = madd::<F>(-n, LN2_TAIL, madd::<F>(-n, LN2_HEAD, y));
    (r, f32::from_bits(((n_int + 127) as u32) << 23))
}

/// `e^r - 1` for `|r| <= ln 2 / 2` by its Taylor series to degree 7 (relative truncation
/// error below 1e-8), accurate near 0 (no cancellation).
#[inline(always)]
fn expm1_reduced<const F: bool>(r: f32) -> f32 {
    let mut p = TAYLOR[0];
    for c in &TAYLOR[1..] {
        p = madd::<F>(p, r, *c);
    }
    p * r
}

/// `(e^r - 1) / r = 1 + r/2! + r^2/3! + ... + r^6/7!`, highest power first (Horner).
const TAYLOR: [f32; 7] = [
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
];

/// `e^x` for `x` in [-87, 88] (clamped).
#[inline(always)]
fn exp_with<const F: bool>(x: f32) -> f32 {
    let (r, scale) = reduce::<F>(x.clamp(-87.0, 88.0));
    madd::<F>(expm1_reduced::<F>(r), scale, scale)
}

/// `tanh(x) = (e^2|x| - 1) / (e^2|x| + 1)` with the sign of `x`, where `e^y - 1` is
/// `2^n (e^r - 1) + (2^n - 1)`: no cancellation near 0; |x| >= 9 gives +-1.
#[inline(always)]
fn tanh_with<const F: bool>(x: f32) -> f32 {
    let y = 2.0 * x.abs().min(9.0);
    let (r, scale) = reduce::<F>(y);
    let em1 = madd::<F>(expm1_reduced::<F>(r), scale, scale - 1.0);
    (em1 / (em1 + 2.0)).copysign(x)
}

/// The logistic function `1 / (1 + e^-x)`.
#[inline(always)]
fn sigmoid_with<const F: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp_with::<F>(-x))
}

/// `e^x` (clamped to [-87, 88]), as the kernels compute it.
#[cfg(test)]
pub fn exp(x: f32) -> f32 {
    exp_with::<false>(x)
}

/// `tanh(x)`, as the kernels compute it.
#[cfg(test)]
pub fn tanh(x: f32) -> f32 {
    tanh_with::<false>(x)
}

/// The logistic function, as the kernels compute it.
#[cfg(test)]
pub fn sigmoid(x: f32) -> f32 {
    sigmoid_with::<false>(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_tanh_and_sigmoid_are_accurate() {
        let mut worst = [0f64; 3];
        let mut x = -20.0f32;
        while x <= 20.0 {
            let xd = x as f64;
            if x.abs() < 80.0 {
                let rel = ((exp(x) as f64 - xd.exp()) / xd.exp()).abs();
                worst[0] = worst[0].max(rel);
            }
            worst[1] = worst[1].max((tanh(x) as f64 - xd.tanh()).abs());
            worst[2] = worst[2].max((sigmoid(x) as f64 - 1.0 / (1.0 + (-xd).exp())).abs());
            x += 0.000_37;
        }
        assert!(worst[0] < 5e-7, "exp relative error {}", worst[0]);
        assert!(worst[1] < 3e-7, "tanh absolute error {}", worst[1]);
        assert!(worst[2] < 2e-7, "sigmoid absolute error {}", worst[2]);
        assert_eq!(tanh(0.0), 0.0);
        assert!((tanh(1e-6) - 1e-6).abs() < 1e-12, "{}", tanh(1e-6));
        assert!(tanh(-1e-30) <= 0.0);
        assert_eq!(tanh(-100.0), -1.0);
        assert_eq!(sigmoid(-200.0).min(1e-30), sigmoid(-200.0));
        assert!(exp(-1000.0) > 0.0 && exp(1000.0).is_finite());
    }

    #[test]
    fn register_activations_match_the_scalar_ones() {
        let best = Isa::detect();
        let values: Vec<f32> = (0..16 * 4000)
            .map(|i| (i as f32 - 32000.0) * 0.0007)
            .collect();
        for act in [Activation::Tanh, Activation::Sigmoid] {
            let scalar: Vec<f32> = values
                .iter()
                .map(|&v| match act {
                    Activation::Tanh => tanh(v),
                    _ => sigmoid(v),
                })
                .collect();
            for isa in [Isa::Avx512, Isa::Avx2] {
                if isa.rank() > best.rank() {
                    continue;
                }
                let mut got = values.clone();
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Isa::detect` found the features.
                unsafe {
                    if isa == Isa::Avx512 {
                        x86::apply512(act, &mut got);
                    } else {
                        x86::apply256(act, &mut got);
                    }
                }
                for ((g, s), v) in got.iter().zip(&scalar).zip(&values) {
                    let exact = match act {
                        Activation::Tanh => (*v as f64).tanh(),
                        _ => 1.0 / (1.0 + (-*v as f64).exp()),
                    };
                    assert!(
                        (g - s).abs() < 2e-7,
                        "{isa:?} {act:?}({v}) = {g}, scalar {s}"
                    );
                    assert!(
                        (*g as f64 - exact).abs() < 3e-7,
                        "{isa:?} {act:?}({v}) = {g}"
                    );
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reference(
        rows: usize,
        cols: usize,
        x: &[f32],
        xs: usize,
        k: usize,
        w: &[f32],
        b: &[f32],
    ) -> Vec<f32> {
        let mut out = vec![0f32; rows * cols];
        for r in 0..rows {
            for j in 0..cols {
                let mut s = b[j] as f64;
                for kk in 0..k {
                    s += x[r * xs + kk] as f64 * w[kk * cols + j] as f64;
                }
                out[r * cols + j] = (s as f32).max(0.0);
            }
        }
        out
    }

    #[test]
    fn every_tile_size_of_every_isa_agrees_with_a_plain_sum() {
        let best = Isa::detect();
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|i| i.rank() <= best.rank())
            .collect();
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let relu = Activation::Clip {
            lo: 0.0,
            hi: f32::INFINITY,
        };
        for k in [1usize, 2, 3, 5, 30, 211] {
            let xs = k + 3;
            let x: Vec<f32> = (0..8 * xs).map(|_| next()).collect();
            for &isa in &isas {
                let widths: &[usize] = if isa.max_panels() == 2 {
                    &[HALF, PANEL, 2 * PANEL]
                } else {
                    &[HALF, PANEL]
                };
                for &cols in widths {
                    // Weights in the reference's layout (k x cols) and packed for the tile.
                    let wr: Vec<f32> = (0..k * cols).map(|_| next()).collect();
                    let b: Vec<f32> = (0..cols).map(|_| next()).collect();
                    let mut packed = vec![0f32; k * cols];
                    let panel = cols.min(PANEL);
                    for kk in 0..k {
                        for j in 0..cols {
                            let (p, c) = (j / panel, j % panel);
                            packed[p * k * panel + kk * panel + c] = wr[kk * cols + j];
                        }
                    }
                    let want = reference(isa.tile_rows(), cols, &x, xs, k, &wr, &b);
                    for rows in 1..=isa.tile_rows() {
                        let os = cols + 5;
                        let mut out = vec![f32::NAN; (rows - 1) * os + cols];
                        tile(
                            isa,
                            rows,
                            cols,
                            &x,
                            xs,
                            k,
                            &packed,
                            k * PANEL,
                            &b,
                            &mut out,
                            os,
                            relu,
                        );
                        for r in 0..rows {
                            for j in 0..cols {
                                let (got, want) = (out[r * os + j], want[r * cols + j]);
                                assert!(
                                    (got - want).abs() < 1e-5,
                                    "{isa:?} rows {rows} cols {cols} k {k} [{r}][{j}]: {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
