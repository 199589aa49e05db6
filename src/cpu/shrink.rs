//! The LoRA shrink on the CPU: `T[t_off + j] = coef · x_row·A[j]` for every route entry.
//!
//! The CPU keeps each A transposed, `Aᵀ [in, rank]` (`CpuBackend::arena_write_a`), so the
//! shrink reads it front to back as one stream, broadcasting one x value per k against 4..16
//! ranks at a time. An adapter's A is read from memory every decode step (the base's weights evict
//! it) and is small: PEFT's `[rank, in]` read as `rank` short row streams side by side kept the
//! prefetchers cold, and the shrink ran at a third of the f32 matvec's in-cache rate.

use super::arena::{CpuArena, Values};
use super::pool;
use super::decode::{Decode, F32, I16};
use super::simd::F32x4;
use crate::backend::routing::{RouteEntry, Routes};

/// `A [rank, in]` → `Aᵀ [in, rank]`.
pub fn transpose_a(a: &[f32], rank: usize) -> Vec<f32> {
    let inp = a.len() / rank;
    let mut at = vec![0.0; a.len()];
    for (j, row) in a.chunks_exact(inp).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            at[k * rank + j] = v;
        }
    }
    at
}

/// Fills T for every route entry. Entries of the same adapter go four rows at a time, so each
/// Aᵀ is read once per block of rows; the blocks are the pool's parts (each writes only its
/// entries' T, computed the same way on any thread) where there is work enough (prefill).
pub fn lora_shrink(x: &[f32], inp: usize, arena: &CpuArena, routes: &Routes, t: &mut [f32]) {
    let mut by_adapter: Vec<(u32, Vec<&RouteEntry>)> = Vec::new();
    for e in &routes.entries {
        match by_adapter.iter_mut().find(|(a, _)| *a == e.a_off) {
            Some((_, v)) => v.push(e),
            None => by_adapter.push((e.a_off, vec![e])),
        }
    }
    let blocks: Vec<&[&RouteEntry]> = by_adapter.iter().flat_map(|(_, v)| v.chunks(4)).collect();
    let work: usize = routes.entries.iter().map(|e| e.rank as usize * inp).sum();
    let t = pool::Disjoint::new(t);
    let run = |block: &[&RouteEntry]| {
        let rank = block[0].rank as usize;
        match arena.at(block[0].a_off as usize) {
            Values::F32(at) => adapter::<F32>(x, inp, &at[..rank * inp], rank, block, None, &t),
            Values::I16(at, a_scale) => {
                // Aᵀ's and B's per-rank scales both fold into T.
                let b_scale = arena.at(block[0].b_off as usize).scales().expect("A and B share a precision");
                adapter::<I16>(x, inp, &at[..rank * inp], rank, block, Some((a_scale, b_scale)), &t)
            }
        }
    };
    pool::for_ranges(blocks.len(), work, 1, &|r| blocks[r].iter().for_each(|b| run(b)));
}

/// One block of up to 4 entries of one adapter against its Aᵀ, stored in format `F`, T's
/// values multiplied by A's and B's `scales[j]` too where given.
fn adapter<F: Decode<Ctx = ()>>(x: &[f32], inp: usize, at: &[F::Unit], rank: usize, block: &[&RouteEntry], scales: Option<(&[f32], &[f32])>, t: &pool::Disjoint<f32>) {
    let xs: Vec<&[f32]> = block.iter().map(|e| &x[e.row as usize * inp..][..inp]).collect();
    match block.len() {
        1 => ranked::<F, 1>(xs.try_into().unwrap(), at, rank, block, t),
        2 => ranked::<F, 2>(xs.try_into().unwrap(), at, rank, block, t),
        3 => ranked::<F, 3>(xs.try_into().unwrap(), at, rank, block, t),
        _ => ranked::<F, 4>(xs.try_into().unwrap(), at, rank, block, t),
    }
    if let Some((sa, sb)) = scales {
        for e in block {
            // SAFETY: the entry's T range is its own (routes give each entry its own offset).
            let te = unsafe { t.part(e.t_off as usize, rank) };
            for ((v, a), b) in te.iter_mut().zip(sa).zip(sb) {
                *v *= a * b;
            }
        }
    }
}

/// `rows` with the usual ranks as constants: Aᵀ's row stride folds into the addressing.
fn ranked<F: Decode<Ctx = ()>, const R: usize>(xs: [&[f32]; R], at: &[F::Unit], rank: usize, entries: &[&RouteEntry], t: &pool::Disjoint<f32>) {
    with_const_rank!(rank, |rank| rows::<F, R>(xs, at, rank, entries, t))
}

/// R rows against one Aᵀ: ranks in passes of 16 (one or two rows) or 8 (three or four: the
/// accumulators must stay in registers), then single vectors, then a scalar tail.
#[inline(always)]
fn rows<F: Decode<Ctx = ()>, const R: usize>(xs: [&[f32]; R], at: &[F::Unit], rank: usize, entries: &[&RouteEntry], t: &pool::Disjoint<f32>) {
    let store = |j0: usize, v: &[f32], r: usize| {
        let e = entries[r];
        // SAFETY: ranks j0 .. j0 + v.len() of this entry's own T range.
        let te = unsafe { t.part(e.t_off as usize + j0, v.len()) };
        for (t, &v) in te.iter_mut().zip(v) {
            *t = e.coef * v;
        }
    };
    let vecs = rank / 4;
    let wide = if R <= 2 { 4 } else { 2 };
    let mut v = 0;
    while v + wide <= vecs {
        // SAFETY: ranks 4v .. 4(v + wide) lie inside every row of Aᵀ.
        unsafe {
            if wide == 4 {
                for (r, a) in pass::<F, R, 4>(&xs, at, rank, 4 * v).iter().enumerate() {
                    store(4 * v, a.as_flattened(), r);
                }
            } else {
                for (r, a) in pass::<F, R, 2>(&xs, at, rank, 4 * v).iter().enumerate() {
                    store(4 * v, a.as_flattened(), r);
                }
            }
        }
        v += wide;
    }
    while v < vecs {
        // SAFETY: as above, one vector.
        let acc = unsafe { pass::<F, R, 1>(&xs, at, rank, 4 * v) };
        for (r, a) in acc.iter().enumerate() {
            store(4 * v, &a[0], r);
        }
        v += 1;
    }
    for j in 4 * vecs..rank {
        for (r, x) in xs.iter().enumerate() {
            // SAFETY: `at` holds `x.len()` rows of `rank`.
            let s: f32 = x.iter().enumerate().map(|(k, &xk)| xk * unsafe { F::at(at.as_ptr(), k * rank + j) }).sum();
            store(j, &[s], r);
        }
    }
}

/// `Σ_k x_r[k] · Aᵀ[k][j0 .. j0 + 4V]` for each of the R rows, as R × V four-lane sums. One
/// row alone alternates two accumulator sets between even and odd k, so the adds of
/// consecutive k do not wait on each other.
///
/// # Safety
/// `j0 + 4V <= rank` and `at` holds `x.len()` rows of `rank`.
#[inline(always)]
unsafe fn pass<F: Decode<Ctx = ()>, const R: usize, const V: usize>(xs: &[&[f32]; R], at: &[F::Unit], rank: usize, j0: usize) -> [[[f32; 4]; V]; R] {
    let inp = xs[0].len();
    let p = at.as_ptr().add(j0);
    let mut acc = [[[F32x4::zero(); V]; R]; 2];
    let step = |acc: &mut [[F32x4; V]; R], k: usize| {
        let w: [F32x4; V] = core::array::from_fn(|v| F::load4(&(), p.add(k * rank + 4 * v), 0));
        for r in 0..R {
            let xv = F32x4::splat(*xs[r].get_unchecked(k));
            for v in 0..V {
                acc[r][v] = xv.mul_add(w[v], acc[r][v]);
            }
        }
    };
    let mut k = 0;
    if R == 1 {
        let [even, odd] = &mut acc;
        while k + 2 <= inp {
            step(even, k);
            step(odd, k + 1);
            k += 2;
        }
    }
    while k < inp {
        step(&mut acc[0], k);
        k += 1;
    }
    core::array::from_fn(|r| core::array::from_fn(|v| acc[0][r][v].add(acc[1][r][v]).to_array()))
}
