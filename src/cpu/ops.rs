//! The non-matmul ops of a transformer forward pass on the CPU (f32 activations).

use super::pool;
use super::simd::F32x4;
use crate::backend::linear::Act;
use crate::backend::ops::Heads;

/// Dot product, 8 lanes of independent accumulation.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let n8 = n / 8 * 8;
    let (mut s0, mut s1) = (F32x4::zero(), F32x4::zero());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut k = 0;
    // SAFETY: k + 8 <= n8 <= both lengths.
    unsafe {
        while k < n8 {
            s0 = F32x4::load(pa.add(k)).mul_add(F32x4::load(pb.add(k)), s0);
            s1 = F32x4::load(pa.add(k + 4)).mul_add(F32x4::load(pb.add(k + 4)), s1);
            k += 8;
        }
    }
    let mut s = s0.sum() + s1.sum();
    for i in n8..n {
        s += a[i] * b[i];
    }
    s
}

/// `y += a · x`.
#[inline]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// RMSNorm of each row of `x` (width `w.len()`), as Hugging Face computes it:
/// `w · (x / sqrt(mean(x²) + eps))`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let inv = inv_rms(xr, eps);
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
            *o = g * (v * inv);
        }
    }
}

/// RMSNorm of each `w.len()`-wide chunk of `x` in place (Qwen3's per-head q/k norm).
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    for xr in x.chunks_exact_mut(w.len()) {
        let inv = inv_rms(xr, eps);
        for (v, &g) in xr.iter_mut().zip(w) {
            *v = g * (*v * inv);
        }
    }
}

/// `x += rms_norm(y)` row by row, without a normed copy of `y`.
pub fn add_rms_normed(x: &mut [f32], y: &[f32], w: &[f32], eps: f32) {
    let d = w.len();
    for (xr, yr) in x.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
        let inv = inv_rms(yr, eps);
        for ((o, &v), &g) in xr.iter_mut().zip(yr).zip(w) {
            *o += g * (v * inv);
        }
    }
}

/// Soft-capping, `c·tanh(x/c)` (Gemma 2's scores and logits).
pub fn softcap(x: f32, c: f32) -> f32 {
    c * (x / c).tanh()
}

fn inv_rms(x: &[f32], eps: f32) -> f32 {
    1.0 / (dot(x, x) / x.len() as f32 + eps).sqrt()
}

/// Rotates each head of one row in place, rotate-half (NeoX / Hugging Face) pairing:
/// (x[i], x[i + hd/2]) by the angle whose (cos, sin) is `cs[i]` (`Attend::rope_table`).
pub fn rope(row: &mut [f32], head_dim: usize, cs: &[[f32; 2]]) {
    for head in row.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(head_dim / 2);
        for ((a, b), &[cos, sin]) in lo.iter_mut().zip(hi.iter_mut()).zip(cs) {
            let (x0, x1) = (*a, *b);
            *a = x0 * cos - x1 * sin;
            *b = x1 * cos + x0 * sin;
        }
    }
}

/// √(2/π), as PyTorch computes it (in f64, then rounded).
const GELU_BETA: f32 = (std::f64::consts::SQRT_2 * std::f64::consts::FRAC_2_SQRT_PI * 0.5) as f32;

/// `gate ← act(gate) · up`.
pub fn glu(gate: &mut [f32], up: &[f32], act: Act) {
    if act == Act::Silu {
        // Four lanes at a time (`F32x4::exp`); a short tail through a padded copy.
        let one = F32x4::splat(1.0);
        map4(gate, |x, k| x.div(one.add(x.mul(F32x4::splat(-1.0)).exp())).mul(load_padded(up, k)));
        return;
    }
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        // PyTorch's formula and constants, in f32 as there.
        *g = 0.5 * x * (1.0 + (GELU_BETA * (x + 0.044715 * (x * x * x))).tanh()) * u;
    }
}

/// `v[k..k + 4] ← f(v[k..k + 4], k)` for every k in steps of 4, the last step on a zero-padded
/// copy.
#[inline(always)]
fn map4(v: &mut [f32], f: impl Fn(F32x4, usize) -> F32x4) {
    for k in (0..v.len()).step_by(4) {
        let x = load_padded(v, k);
        let y = f(x, k).to_array();
        let n = (v.len() - k).min(4);
        v[k..k + n].copy_from_slice(&y[..n]);
    }
}

/// `v[k..k + 4]`, zeros past the end.
#[inline(always)]
fn load_padded(v: &[f32], k: usize) -> F32x4 {
    if k + 4 <= v.len() {
        // SAFETY: four floats from k lie in `v`.
        unsafe { F32x4::load(v[k..].as_ptr()) }
    } else {
        let mut t = [0.0; 4];
        t[..v.len() - k].copy_from_slice(&v[k..]);
        // SAFETY: four floats.
        unsafe { F32x4::load(t.as_ptr()) }
    }
}

/// Causal attention for `n` new query rows at positions `pos0..pos0+n` (row i of the
/// queries at `q[i·q_stride..]`), against a cache holding keys/values for positions
/// `0..pos0+n` (`[pos, kv_heads·hd]` row-major), scores as `Heads` says. With a window,
/// position i sees positions `i+1-window ..= i` only.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    q_stride: usize,
    k_cache: &[f32],
    v_cache: &[f32],
    n: usize,
    pos0: usize,
    hs: &Heads,
    out: &mut [f32],
) {
    let (heads, hd, window, scale) = (hs.heads, hs.head_dim, hs.window, hs.scale);
    let (qw, kvw) = (hs.q_width(), hs.kv_width());
    let group = heads / hs.kv_heads;
    // Threads take ranges of (row, head) pairs; each writes only its pairs' outputs.
    let work = heads * hd * (n * pos0 + n * (n + 1) / 2);
    let out = pool::Disjoint::new(&mut out[..n * qw]);
    pool::for_ranges(n * heads, work, 1, &|pairs| {
        let mut scores = vec![0f32; pos0 + n];
        for p in pairs {
            let (i, h) = (p / heads, p % heads);
            let end = pos0 + i + 1;
            let start = window.map_or(0, |w| end.saturating_sub(w));
            let sc = &mut scores[..end - start];
            let g = h / group;
            let qh = &q[i * q_stride + h * hd..][..hd];
            let mut max = f32::NEG_INFINITY;
            for (j, s) in sc.iter_mut().enumerate() {
                *s = dot(qh, &k_cache[(start + j) * kvw + g * hd..][..hd]) * scale;
                if let Some(c) = hs.softcap {
                    *s = softcap(*s, c);
                }
                max = max.max(*s);
            }
            let m = F32x4::splat(max);
            map4(sc, |s, _| s.sub(m).exp());
            let sum: f32 = sc.iter().sum();
            // SAFETY: pair (i, h) is this thread's; its head's outputs lie in `out`.
            let oh = unsafe { out.part(i * qw + h * hd, hd) };
            oh.fill(0.0);
            for (j, &s) in sc.iter().enumerate() {
                axpy(oh, s / sum, &v_cache[(start + j) * kvw + g * hd..][..hd]);
            }
        }
    });
}
