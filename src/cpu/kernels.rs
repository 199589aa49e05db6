//! The fused LoRA linear on the CPU. One code path for decode (n = 1) and prefill: rows go
//! in blocks of up to 4, outputs in blocks of 2 or 4, so each weight row is read once per
//! row block and decoded in-loop (f16 → f32 in registers) without a widened copy.

use super::simd::{dot, F32x4};
use crate::lora::Routes;

/// A weight element type the kernels can widen four at a time.
pub trait WeightElem: Copy {
    /// # Safety
    /// `p..p+4` must be readable.
    unsafe fn load4(p: *const Self) -> F32x4;
    fn to_f32(self) -> f32;
}

impl WeightElem for f32 {
    #[inline(always)]
    unsafe fn load4(p: *const f32) -> F32x4 {
        F32x4::load(p)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

/// IEEE binary16 bit patterns.
impl WeightElem for u16 {
    #[inline(always)]
    unsafe fn load4(p: *const u16) -> F32x4 {
        F32x4::load_f16(p)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        half::f16::from_bits(self).to_f32()
    }
}

/// `T[t_off + k] = coef * x_row · A[k]` for every route entry.
pub fn lora_shrink(x: &[f32], inp: usize, arena: &[f32], routes: &Routes, t: &mut [f32]) {
    for e in &routes.entries {
        let xr = &x[e.row as usize * inp..][..inp];
        for k in 0..e.rank as usize {
            let a = &arena[e.a_off as usize + k * inp..][..inp];
            t[e.t_off as usize + k] = e.coef * dot(xr, a);
        }
    }
}

/// `y[n, out] = x[n, inp]·wᵀ + T·Bᵀ` per row, where T comes from `lora_shrink`.
/// Slices must have exactly the sizes their shapes say (checked by the caller).
#[allow(clippy::too_many_arguments)]
pub fn lora_linear<E: WeightElem>(
    x: &[f32],
    n: usize,
    inp: usize,
    w: &[E],
    out: usize,
    arena: &[f32],
    routes: &Routes,
    t: &[f32],
    y: &mut [f32],
) {
    assert!(x.len() >= n * inp && w.len() >= out * inp && y.len() >= n * out);
    let ctx = Ctx { x, inp, w, out, arena, routes, t };
    let mut r0 = 0;
    while r0 < n {
        let rows = (n - r0).min(4);
        match rows {
            4 => ctx.row_block::<4, 2>(r0, y),
            3 => ctx.row_block::<3, 2>(r0, y),
            2 => ctx.row_block::<2, 4>(r0, y),
            _ => ctx.row_block::<1, 4>(r0, y),
        }
        r0 += rows;
    }
}

struct Ctx<'a, E> {
    x: &'a [f32],
    inp: usize,
    w: &'a [E],
    out: usize,
    arena: &'a [f32],
    routes: &'a Routes,
    t: &'a [f32],
}

impl<E: WeightElem> Ctx<'_, E> {
    /// Rows `r0..r0+R` against every output, C outputs at a time.
    #[inline(always)]
    fn row_block<const R: usize, const C: usize>(&self, r0: usize, y: &mut [f32]) {
        let xs: [*const f32; R] = core::array::from_fn(|r| self.x[(r0 + r) * self.inp..].as_ptr());
        let mut o = 0;
        while o < self.out {
            if self.out - o >= C {
                let ws = core::array::from_fn(|c| self.w[(o + c) * self.inp..].as_ptr());
                // SAFETY: each x row and w row holds `inp` elements (asserted above).
                let acc = unsafe { tile::<E, R, C>(&xs, &ws, self.inp) };
                self.store(r0, o, &acc, y);
                o += C;
            } else {
                let ws = [self.w[o * self.inp..].as_ptr()];
                // SAFETY: as above.
                let acc = unsafe { tile::<E, R, 1>(&xs, &ws, self.inp) };
                self.store(r0, o, &acc, y);
                o += 1;
            }
        }
    }

    /// Adds each row's adapters (`T·Bᵀ` for these outputs) and writes the tile to `y`.
    #[inline(always)]
    fn store<const R: usize, const C: usize>(&self, r0: usize, o: usize, acc: &[[f32; C]; R], y: &mut [f32]) {
        for (r, acc_r) in acc.iter().enumerate() {
            let row = r0 + r;
            for (c, &v) in acc_r.iter().enumerate() {
                let mut v = v;
                for e in self.routes.row_entries(row) {
                    let rank = e.rank as usize;
                    let b = &self.arena[e.b_off as usize + (o + c) * rank..][..rank];
                    v += dot(&self.t[e.t_off as usize..][..rank], b);
                }
                y[row * self.out + o + c] = v;
            }
        }
    }
}

/// R x C dot products of length `inp`, 4 lanes at a time.
///
/// # Safety
/// Every pointer must address `inp` readable elements.
#[inline(always)]
unsafe fn tile<E: WeightElem, const R: usize, const C: usize>(
    xs: &[*const f32; R],
    ws: &[*const E; C],
    inp: usize,
) -> [[f32; C]; R] {
    let mut acc = [[F32x4::zero(); C]; R];
    let k4 = inp / 4 * 4;
    let mut k = 0;
    while k < k4 {
        let wv: [F32x4; C] = core::array::from_fn(|c| E::load4(ws[c].add(k)));
        for r in 0..R {
            let xv = F32x4::load(xs[r].add(k));
            for c in 0..C {
                acc[r][c] = xv.mul_add(wv[c], acc[r][c]);
            }
        }
        k += 4;
    }
    let mut res = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            let mut s = acc[r][c].sum();
            for kk in k4..inp {
                s += *xs[r].add(kk) * (*ws[c].add(kk)).to_f32();
            }
            res[r][c] = s;
        }
    }
    res
}
