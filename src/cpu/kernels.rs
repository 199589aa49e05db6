//! The fused LoRA linear on the CPU. One micro-kernel (`tile`: up to 4 input rows against
//! 1, 2 or 4 weight rows, 4 lanes at a time) serves the base matmul for decode and prefill
//! and the LoRA expand (the shrink is `shrink.rs`): element formats widen weights to f32 in
//! registers against f32 rows; block formats dot their int16 codes with exact integer
//! activation rows (`Quant`) in decode, and are decoded to f32 panels from 4 rows on. What
//! happens to each finished tile is a `TileSink`: the base matmul adds the adapters' `T·Bᵀ`
//! in-tile and writes y once.

use super::arena::{CpuArena, Kind};
use super::decode::{self, Decode, F32, I16};
use super::pool;
use super::simd::{F32x4, I16x32};
use crate::backend::routing::{RouteEntry, Routes};

/// Open accumulators of an `R x C` tile: 4-lane partial sums plus scalar tails. More dot
/// product terms can be added (the LoRA expand does) before `finish` reduces them.
pub(crate) struct Acc<const R: usize, const C: usize> {
    v: [[F32x4; C]; R],
    s: [[f32; C]; R],
    /// Block formats' m·Σx terms, column c in lane c.
    m: [F32x4; R],
}

impl<const R: usize, const C: usize> Acc<R, C> {
    #[inline(always)]
    fn new() -> Self {
        Acc { v: [[F32x4::zero(); C]; R], s: [[0.0; C]; R], m: [F32x4::zero(); R] }
    }

    /// Adds `Σ_k xs[r][k] · ws[c][k]` over `len` weights to every (r, c), weights in
    /// element format `F` (f32, f16, bf16, i16), widened in registers.
    ///
    /// # Safety
    /// Every x pointer must address `len` floats and every w pointer a row of `len` weights.
    #[inline(always)]
    unsafe fn add<F: Decode>(&mut self, xs: &[*const f32; R], ws: &[*const F::Unit; C], len: usize) {
        debug_assert!(!F::AFFINE, "block formats take integer rows (add_int)");
        let blocks = len / F::BLOCK;
        for b in 0..blocks {
            let blk: [*const F::Unit; C] = core::array::from_fn(|c| ws[c].add(b * F::UNITS));
            let ctx: [F::Ctx; C] = core::array::from_fn(|c| F::ctx(blk[c], 0));
            for sub in 0..F::BLOCK / 4 {
                let wv: [F32x4; C] = core::array::from_fn(|c| F::load4(&ctx[c], blk[c], sub));
                let k = b * F::BLOCK + 4 * sub;
                for r in 0..R {
                    let xv = F32x4::load(xs[r].add(k));
                    for c in 0..C {
                        self.v[r][c] = xv.mul_add(wv[c], self.v[r][c]);
                    }
                }
            }
        }
        if F::TAIL {
            for k in blocks * F::BLOCK..len {
                for r in 0..R {
                    for c in 0..C {
                        self.s[r][c] += *xs[r].add(k) * F::at(ws[c], k);
                    }
                }
            }
        }
    }

    /// Integer activations (`QRow`): per group, `Σ (d·q + m)·x = d·dx·Σ q·(hi + lo·2⁻¹⁵)
    /// + m·Σx`, the integer sums eight multiply-adds per instruction and exact (their f32
    /// conversion rounds past 2^24, as f32 sums would); rows without
    /// low halves are the opt-in int8 mode (a run-time test: one more copy of the loops per
    /// format and tile costs ~80 KB of wasm, the test nothing measurable).
    ///
    /// # Safety
    /// As `add`, with rows of whole blocks and `xs` covering them.
    #[inline(always)]
    unsafe fn add_int<F: Decode>(&mut self, xs: &[QRow; R], ws: &[*const F::Unit; C], blocks: usize) {
        let lanes_all = F::INT_GROUP == 32;
        let exact = !xs[0].lo.is_null();
        for b in 0..blocks {
            let blk: [*const F::Unit; C] = core::array::from_fn(|c| ws[c].add(b * F::UNITS));
            for g in 0..F::BLOCK / F::INT_GROUP {
                let ctx: [F::Ctx; C] = core::array::from_fn(|c| F::int_ctx(blk[c], g));
                let q: [I16x32; C] = core::array::from_fn(|c| F::codes(&ctx[c], blk[c]));
                let (d, m) = F::scales(&ctx, &blk);
                let k = b * F::BLOCK + g * F::INT_GROUP;
                for (r, x) in xs.iter().enumerate() {
                    let dx = *x.scale.add(k / 32);
                    // `lo` is null in int8 mode: offset only where it is read.
                    let hi = x.hi.add(k);
                    if F::HAS_MIN {
                        // m·Σx for all C columns in one accumulator, off the dot products' chains.
                        self.m[r] = m.mul_add(F32x4::splat(x.sum(k, F::INT_GROUP)), self.m[r]);
                    }
                    let ddx = d.mul(F32x4::splat(dx));
                    for c in 0..C {
                        let mut v = q[c].dot_at(hi, lanes_all).to_f32();
                        if exact {
                            v = q[c].dot_at(x.lo.add(k), lanes_all).to_f32().mul_add(F32x4::splat(LO_UNIT), v);
                        }
                        self.v[r][c] = v.mul_add(ddx.splat_lane(c), self.v[r][c]);
                    }
                }
            }
        }
    }

    /// Adds an adapter's expand `Σ_j ts[r][j] · B[o + c][j]`, B `[out, rank]` stored in
    /// either of the arena's formats (`Factors`; an I16 B's scales are in T already).
    ///
    /// # Safety
    /// Each `ts` pointer must address `rank` floats and B must hold rows `o .. o + C`.
    #[inline(always)]
    unsafe fn add_expand(&mut self, ts: &[*const f32; R], b: Factors, o: usize, rank: usize) {
        #[inline(always)]
        unsafe fn rows<U, const C: usize>(p: *const u8, o: usize, rank: usize) -> [*const U; C] {
            core::array::from_fn(|c| (p as *const U).add((o + c) * rank))
        }
        let (p, kind) = b;
        match kind {
            Kind::F32 => self.add::<F32>(ts, &rows(p, o, rank), rank),
            Kind::I16 => self.add::<I16>(ts, &rows(p, o, rank), rank),
        }
    }

    #[inline(always)]
    fn finish(&self) -> [[f32; C]; R] {
        core::array::from_fn(|r| core::array::from_fn(|c| self.v[r][c].sum() + self.s[r][c] + self.m[r].to_array()[c]))
    }
}

/// The low halves' unit, in units of the high halves' (`Quant`).
const LO_UNIT: f32 = 1.0 / 32768.0;

/// Activation rows as integers per 32-block, for the integer dot products:
/// - exact (the default): `x = dx·(hi + lo·2⁻¹⁵)` with dx a power of two, so `x − dx·hi`
///   is exact and the remainder costs at most `dx·2⁻¹⁶` (about 1e-9 of the block's largest
///   value) per element: the dot products are as close as f32's;
/// - int8 (opt-in): `x ≈ dx·hi` with hi in ±127, no `lo`.
///
/// Each row's `hi` and `lo` are followed by 16 zeros (a last group of 16 reads 32 lanes);
/// `sums` are f32 sums per 16 elements (the min terms).
pub(crate) struct Quant {
    hi: Vec<i16>,
    lo: Vec<i16>,
    scale: Vec<f32>,
    sums: Vec<f32>,
    inp: usize,
}

impl Quant {
    pub fn new(x: &[f32], n: usize, inp: usize, exact: bool) -> Quant {
        let x = &x[..n * inp];
        let w = inp + 16;
        let mut q = Quant {
            hi: vec![0; n * w],
            lo: vec![0; if exact { n * w } else { 0 }],
            scale: Vec::with_capacity(n * inp / 32),
            sums: x.chunks_exact(16).map(|s| s.iter().sum()).collect(),
            inp,
        };
        for (r, (row, sums)) in x.chunks_exact(inp).zip(q.sums.chunks_exact(inp / 16)).enumerate() {
            for (i, (b, sums)) in row.chunks_exact(32).zip(sums.chunks_exact(2)).enumerate() {
                // SAFETY: `b` holds 32 floats; hi and lo hold `w` values per row.
                let v: [F32x4; 8] = core::array::from_fn(|k| unsafe { F32x4::load(b[4 * k..].as_ptr()) });
                let amax = v.iter().fold(F32x4::zero(), |m, v| v.abs_max(m)).max_lane();
                let dx = if exact {
                    // The power of two at or above amax / 32000 (headroom: hi stays in i16).
                    f32::from_bits(((amax / 32000.0).to_bits() + 0x007f_ffff) & 0xff80_0000)
                } else {
                    // Not subnormal: 1/dx must stay finite for tiny blocks.
                    (amax / 127.0).max(f32::MIN_POSITIVE)
                };
                let id = if dx > 0.0 { 1.0 / dx } else { 0.0 };
                // `x − h·dx` is exact (dx a power of two, |x − h·dx| ≤ dx/2), and so are the
                // scalings by id and 2¹⁵ (two steps: id·2¹⁵ overflows for tiny blocks).
                let (idv, dxv, lov) = (F32x4::splat(id), F32x4::splat(dx), F32x4::splat(32768.0));
                let at = r * w + 32 * i;
                for k in (0..8).step_by(2) {
                    let h = [v[k].mul(idv).round(), v[k + 1].mul(idv).round()];
                    unsafe { F32x4::store_i16(h[0], h[1], q.hi[at + 4 * k..].as_mut_ptr()) };
                    if exact {
                        let l = [0, 1].map(|j| v[k + j].sub(h[j].mul(dxv)).mul(idv).mul(lov).round());
                        unsafe { F32x4::store_i16(l[0], l[1], q.lo[at + 4 * k..].as_mut_ptr()) };
                    }
                }
                // NaN or infinity in the block: NaN out, as f32 math gives (the integer casts
                // above would hide it).
                q.scale.push(if (sums[0] + sums[1]).is_finite() { dx } else { f32::NAN });
            }
        }
        q
    }

    /// Row `r`.
    fn row(&self, r: usize) -> QRow<'_> {
        let (w, blocks) = (self.inp + 16, self.inp / 32);
        QRow {
            hi: self.hi[r * w..].as_ptr(),
            lo: if self.lo.is_empty() { core::ptr::null() } else { self.lo[r * w..].as_ptr() },
            scale: self.scale[r * blocks..].as_ptr(),
            sums: self.sums[r * self.inp / 16..].as_ptr(),
            _quant: core::marker::PhantomData,
        }
    }
}

/// One row of a `Quant`.
#[derive(Clone, Copy)]
pub(crate) struct QRow<'a> {
    hi: *const i16,
    /// Null in int8 mode.
    lo: *const i16,
    scale: *const f32,
    sums: *const f32,
    _quant: core::marker::PhantomData<&'a Quant>,
}

impl QRow<'_> {
    /// Σx over the `len` (16 or 32) elements from `k` (a multiple of 16).
    #[inline(always)]
    unsafe fn sum(&self, k: usize, len: usize) -> f32 {
        let s = self.sums.add(k / 16);
        if len == 16 {
            *s
        } else {
            *s + *s.add(1)
        }
    }
}

/// How activation rows reach the tiles: f32 pointers (element formats), or integer rows
/// (block formats).
pub(crate) trait XRow: Copy {
    /// Adds the base matmul's dot products for these rows to `acc`.
    ///
    /// # Safety
    /// Rows and weight rows must hold `len` elements.
    unsafe fn base<F: Decode, const R: usize, const C: usize>(rows: &[Self; R], acc: &mut Acc<R, C>, ws: &[*const F::Unit; C], len: usize);
}

impl XRow for *const f32 {
    #[inline(always)]
    unsafe fn base<F: Decode, const R: usize, const C: usize>(rows: &[Self; R], acc: &mut Acc<R, C>, ws: &[*const F::Unit; C], len: usize) {
        acc.add::<F>(rows, ws, len)
    }
}

impl XRow for QRow<'_> {
    #[inline(always)]
    unsafe fn base<F: Decode, const R: usize, const C: usize>(rows: &[Self; R], acc: &mut Acc<R, C>, ws: &[*const F::Unit; C], len: usize) {
        acc.add_int::<F>(rows, ws, len / F::BLOCK)
    }
}

/// Receives each `R x C` tile (weight rows `o..o+C`) with its base dot products accumulated.
pub(crate) trait TileSink<const R: usize> {
    fn tile<const C: usize>(&mut self, o: usize, acc: Acc<R, C>);
}

/// Every tile width a row block can need.
pub(crate) trait Sinks: TileSink<1> + TileSink<2> + TileSink<3> + TileSink<4> {}
impl<S: TileSink<1> + TileSink<2> + TileSink<3> + TileSink<4>> Sinks for S {}

/// The tile shapes a format runs, instantiated per format (each shape is one more copy of
/// the inner loops in the wasm): element formats take up to 4 input rows at a time (C = 4
/// weight rows for 1-2 input rows, more independent accumulators; C = 2 for 3-4, register
/// budget), block formats up to 2 (they keep per-group partial sums too: 2 x 2), and only
/// formats with an int8 path instantiate it.
pub(crate) trait Sweep: Decode + Sized {
    /// Input rows per row block.
    const STEP: usize;
    /// Many input rows read this format's weights decoded to f32 panels (all but f32).
    const PANELS: bool = true;
    /// Each tile touches the next tile's weight rows first (`touch`): for formats whose
    /// decode leaves the hardware prefetcher behind on one stream, not for the
    /// compute-bound ones (it costs them 3-8%).
    const PREFETCH: bool = false;

    /// Runs the tiles over all `nw` weight rows for the row block `xs` (element formats).
    ///
    /// # Safety
    /// Each `xs` pointer and each of the `nw` rows of `w` must address `inp` readable elements.
    unsafe fn sweep<S: Sinks>(_xs: &[*const f32], _w: &[Self::Unit], _nw: usize, _inp: usize, _sink: &mut S) {
        unreachable!("block formats take integer rows")
    }

    /// `sweep` for block formats, over rows `r0 .. r0 + len` of `q`.
    ///
    /// # Safety
    /// Each of the `nw` rows of `w` must address `inp` (`q`'s row length) weights.
    unsafe fn sweep_int<S: Sinks>(_q: &Quant, _r0: usize, _len: usize, _w: &[Self::Unit], _nw: usize, _inp: usize, _sink: &mut S) {
        unreachable!("element formats take f32 rows")
    }
}

macro_rules! sweep_elements {
    ($($f:ident: $panels:literal, $prefetch:literal),*) => {$(
        impl Sweep for decode::$f {
            const STEP: usize = 4;
            const PANELS: bool = $panels;
            const PREFETCH: bool = $prefetch;
            unsafe fn sweep<S: Sinks>(xs: &[*const f32], w: &[Self::Unit], nw: usize, inp: usize, sink: &mut S) {
                match xs.len() {
                    4 => sweep_rc::<Self, S, _, 4, 2>(xs.try_into().unwrap(), w, nw, inp, sink),
                    3 => sweep_rc::<Self, S, _, 3, 2>(xs.try_into().unwrap(), w, nw, inp, sink),
                    2 => sweep_rc::<Self, S, _, 2, 4>(xs.try_into().unwrap(), w, nw, inp, sink),
                    _ => sweep_rc::<Self, S, _, 1, 4>(xs.try_into().unwrap(), w, nw, inp, sink),
                }
            }
        }
    )*};
}

/// Block formats (integer rows): `$c` says how many weight rows a one-row (decode) tile
/// takes. Measured in Node (V8 on x86-64, SmolLM2's shapes): two rows for most formats
/// (four spilled registers), one where a row's codes are the larger part (Q8_0, Q6_K).
macro_rules! sweep_blocks {
    ($($f:ident: $c:literal, $prefetch:literal);*) => {$(
        impl Sweep for decode::$f {
            const STEP: usize = 2;
            const PREFETCH: bool = $prefetch;
            unsafe fn sweep_int<S: Sinks>(q: &Quant, r0: usize, len: usize, w: &[Self::Unit], nw: usize, inp: usize, sink: &mut S) {
                match len {
                    2 => sweep_rc::<Self, S, _, 2, 2>(&[q.row(r0), q.row(r0 + 1)], w, nw, inp, sink),
                    _ => sweep_rc::<Self, S, _, 1, $c>(&[q.row(r0)], w, nw, inp, sink),
                }
            }
        }
    )*};
}

// Prefetch measured in Node, one thread, weights cold (576→576, per call): Q8_0 117 → 82 µs,
// f16 190 → 147, bf16 131 → 101; f32 (already at the read ceiling) and the 4-bit formats
// slower by 3-8%.
sweep_elements!(F32: false, false, F16: true, true, BF16: true, true);
sweep_blocks!(Q8_0: 1, true; Q4_0: 2, false; Q4_1: 2, false; Q5_0: 2, false; Q5_1: 2, false; IQ4_NL: 2, false; Q2_K: 2, false; Q3_K: 2, false; Q4_K: 2, false; Q5_K: 2, false; Q6_K: 1, false);

#[inline(always)]
unsafe fn sweep_rc<F: Sweep, S: TileSink<R>, X: XRow, const R: usize, const C: usize>(
    xs: &[X; R],
    w: &[F::Unit],
    nw: usize,
    inp: usize,
    sink: &mut S,
) {
    let stride = F::row_units(inp);
    let tile_bytes = C * stride * core::mem::size_of::<F::Unit>();
    let mut touched = 0;
    let mut o = 0;
    while o + C <= nw {
        if F::PREFETCH && o + 2 * C <= nw {
            touched ^= touch(w.as_ptr().add((o + C) * stride) as *const u8, tile_bytes);
        }
        let mut acc = Acc::<R, C>::new();
        X::base::<F, R, C>(xs, &mut acc, &core::array::from_fn(|c| w.as_ptr().add((o + c) * stride)), inp);
        sink.tile(o, acc);
        o += C;
    }
    while o < nw {
        let mut acc = Acc::<R, 1>::new();
        X::base::<F, R, 1>(xs, &mut acc, &[w.as_ptr().add(o * stride)], inp);
        sink.tile(o, acc);
        o += 1;
    }
    core::hint::black_box(touched);
}

/// Reads one byte of each 64-byte line of `len` bytes at `p`, so that they are on their way
/// into cache while the current tile computes (wasm has no prefetch instruction; volatile
/// loads are neither dropped by LLVM nor, since they may trap, by the engine).
///
/// # Safety
/// `p .. p + len` must be readable.
#[inline(always)]
unsafe fn touch(p: *const u8, len: usize) -> u8 {
    let mut x = 0;
    let mut k = 0;
    while k < len {
        x ^= core::ptr::read_volatile(p.add(k));
        k += 64;
    }
    x
}

/// Base-matmul tiles: the adapters' `T·Bᵀ` terms go into the same accumulators (B rows are
/// contiguous in PEFT's `[out, rank]` layout), then y is written once. One per row block and
/// range of weight rows (a thread's share).
struct Output<'a> {
    /// First weight row of this range: the sweep's row numbers are relative to it.
    o0: usize,
    block: &'a RowBlock<'a>,
    call: &'a Call<'a>,
}

/// A block of up to 4 input rows with its route entries, resolved once per call.
struct RowBlock<'a> {
    r0: usize,
    xs: Vec<*const f32>,
    /// Route entries of each row in the block.
    entries: [&'a [RouteEntry]; 4],
    /// All rows of this block use the same adapters: one pass covers the whole block.
    uniform: bool,
    /// Some entry of this block is DoRA: its gain scales the base term, so base and each
    /// adapter's term are finished separately.
    dora: bool,
}

/// What every tile of one call reads, and where it writes.
struct Call<'a> {
    out: usize,
    /// The routes' entries, and per entry its B rows and DoRA gains, resolved in the arena
    /// once per call (entries are found by their position in `entries`).
    entries: &'a [RouteEntry],
    b: Vec<Factors>,
    g: Vec<*const f32>,
    t: &'a [f32],
    /// y `[n, out]`: threads write disjoint column ranges of it.
    y: pool::Disjoint<f32>,
}

// SAFETY: the pointers address the caller's inputs, read only; the call outlives every
// thread's use of it.
unsafe impl Sync for Call<'_> {}
unsafe impl Sync for RowBlock<'_> {}

/// An adapter factor's first value and its storage format.
type Factors = (*const u8, Kind);

/// Position of `e` in `entries` (the block slices are sub-slices of it).
#[inline(always)]
fn index(entries: &[RouteEntry], e: &RouteEntry) -> usize {
    // SAFETY: `e` is an element of `entries`.
    unsafe { (e as *const RouteEntry).offset_from(entries.as_ptr()) as usize }
}

impl<const R: usize> TileSink<R> for Output<'_> {
    #[inline(always)]
    fn tile<const C: usize>(&mut self, o: usize, mut acc: Acc<R, C>) {
        // SAFETY (the unsafe blocks below): every route entry's T range and B rows lie
        // inside `t` and its B block (checked when the adapter was added and when the routes
        // were built); y holds `n · out` values and this tile's rows and columns are its own.
        let (call, block, o) = (self.call, self.block, self.o0 + o);
        let (t, entries, bs, gs) = (call.t.as_ptr(), call.entries, &call.b, &call.g);
        let b_of = |e: &RouteEntry| bs[index(entries, e)];
        let y_row = |r: usize| unsafe { call.y.part((block.r0 + r) * call.out + o, C) };
        if block.dora {
            let base = acc.finish();
            for (r, base_r) in base.iter().enumerate() {
                let mut out = *base_r;
                for e in block.entries[r] {
                    let mut one = Acc::<1, C>::new();
                    unsafe { one.add_expand(&[t.add(e.t_off as usize)], b_of(e), o, e.rank as usize) };
                    let [lora] = one.finish();
                    for c in 0..C {
                        out[c] += if e.dora() {
                            // SAFETY: a DoRA entry's gain block holds `out` values.
                            let g = unsafe { *gs[index(entries, e)].add(o + c) };
                            e.gw * (g - 1.0) * base_r[c] + g * lora[c]
                        } else {
                            lora[c]
                        };
                    }
                }
                y_row(r).copy_from_slice(&out);
            }
            return;
        }
        if block.uniform {
            for (j, e) in block.entries[0].iter().enumerate() {
                let ts = core::array::from_fn(|r| unsafe { t.add(block.entries[r][j].t_off as usize) });
                // Once per tile and adapter: the usual ranks as constants.
                let b = b_of(e);
                unsafe { with_const_rank!(e.rank as usize, |rank| acc.add_expand(&ts, b, o, rank)) };
            }
        } else {
            for r in 0..R {
                for e in block.entries[r] {
                    let mut one = Acc::<1, C>::new();
                    unsafe { one.add_expand(&[t.add(e.t_off as usize)], b_of(e), o, e.rank as usize) };
                    let [extra] = one.finish();
                    for c in 0..C {
                        acc.s[r][c] += extra[c];
                    }
                }
            }
        }
        for (r, v) in acc.finish().iter().enumerate() {
            y_row(r).copy_from_slice(v);
        }
    }
}

/// Input rows from which a non-f32 format's weights are decoded to f32 panels first (the
/// decode then costs little against the multiply-adds, and the f32 tiles take 4 rows at a
/// time): prefill and batches. Fewer rows read each weight in registers as it streams past.
const PANEL_MIN_ROWS: usize = 4;
/// f32 bytes of one decoded panel (a few weight rows): it stays in cache for every row block.
const PANEL_BYTES: usize = 64 << 10;

/// `y[n, out] = x[n, inp]·wᵀ + Σ_entries T·Bᵀ` per row, with T from `lora_shrink`.
/// `int8`: quantize activations to 8 bits for the base matmul (block formats; opt-in; the
/// default integer rows are exact, `Quant`).
/// Slices must match their shapes.
///
/// The pool's threads take ranges of weight rows (a few per thread, so a slow thread's
/// share is picked up by the others); each range runs every row block, so in prefill a
/// range's weights stay in cache across the blocks. Every output value is computed the same
/// way whatever the split: results do not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lora_linear<F: Sweep>(
    x: &[f32],
    n: usize,
    inp: usize,
    w: &[F::Unit],
    out: usize,
    arena: &CpuArena,
    routes: &Routes,
    t: &[f32],
    y: &mut [f32],
    int8: bool,
) {
    assert!(x.len() >= n * inp && w.len() >= out * F::row_units(inp) && y.len() >= n * out && routes.n_rows() == n);
    let b = routes.entries.iter().map(|e| arena.at(e.b_off as usize).ptr(out * e.rank as usize)).collect();
    let g = routes.entries.iter().map(|e| if e.dora() { arena.at_f32(e.g_off as usize)[..out].as_ptr() } else { core::ptr::null() }).collect();
    let call = Call { out, entries: &routes.entries, b, g, t, y: pool::Disjoint::new(y) };
    let panels = F::PANELS && !int8 && n >= PANEL_MIN_ROWS;
    // Block formats read in registers take integer rows (exact unless int8 was asked for).
    let quant = (F::INT && !panels).then(|| Quant::new(x, n, inp, !int8));
    let step = if panels { F32::STEP } else { F::STEP };
    let blocks: Vec<RowBlock> = (0..n)
        .step_by(step)
        .map(|r0| {
            let rows = r0..n.min(r0 + step);
            let mut entries: [&[RouteEntry]; 4] = [&[]; 4];
            for r in rows.clone() {
                entries[r - r0] = routes.row_entries(r);
            }
            let first = entries[0];
            let uniform = entries[..rows.len()]
                .iter()
                .all(|b| b.len() == first.len() && b.iter().zip(first).all(|(p, q)| p.b_off == q.b_off && p.rank == q.rank));
            let dora = entries[..rows.len()].iter().any(|b| b.iter().any(RouteEntry::dora));
            let xs = rows.clone().map(|r| x[r * inp..].as_ptr()).collect();
            RowBlock { r0, xs, entries, uniform, dora }
        })
        .collect();
    let stride = F::row_units(inp);
    // Rows of one f32 panel (a multiple of 4, the tiles' widest).
    let panel_rows = (PANEL_BYTES / (4 * inp)).max(4) / 4 * 4;
    pool::for_ranges(out, n * out * inp, 4, &|rows| {
        if panels {
            PANEL.with_borrow_mut(|panel| {
                let need = panel_rows.min(rows.len()) * inp;
                if panel.len() < need {
                    panel.resize(need, 0.0);
                }
                run_panels::<F>(&call, &blocks, w, stride, inp, rows.clone(), panel_rows, panel)
            });
            return;
        }
        let w = &w[rows.start * stride..];
        for block in &blocks {
            let mut sink = Output { o0: rows.start, block, call: &call };
            // SAFETY: every x row and w row holds `inp` elements (asserted above).
            unsafe {
                let (r0, len) = (block.r0, block.xs.len());
                match &quant {
                    None => F::sweep(&block.xs, w, rows.len(), inp, &mut sink),
                    Some(q) => F::sweep_int(q, r0, len, w, rows.len(), inp, &mut sink),
                }
            };
        }
    });
}

thread_local! {
    /// Each thread's f32 panel, kept between calls (64 KiB at most).
    static PANEL: core::cell::RefCell<Vec<f32>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// One range of weight rows, a panel at a time: decoded to f32, then every row block's f32
/// tiles over it.
#[allow(clippy::too_many_arguments)]
fn run_panels<F: Sweep>(call: &Call, blocks: &[RowBlock], w: &[F::Unit], stride: usize, inp: usize, rows: core::ops::Range<usize>, panel_rows: usize, panel: &mut [f32]) {
    for start in rows.clone().step_by(panel_rows) {
        let len = panel_rows.min(rows.end - start);
        for (i, dst) in panel.chunks_exact_mut(inp).take(len).enumerate() {
            // SAFETY: row `start + i` < out lies in `w` (asserted by the caller).
            unsafe { F::decode_row(w.as_ptr().add((start + i) * stride), dst) };
        }
        for block in blocks {
            let mut sink = Output { o0: start, block, call };
            // SAFETY: the x rows hold `inp` floats, the panel `len` rows of `inp`.
            unsafe { F32::sweep(&block.xs, panel, len, inp, &mut sink) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Quant;

    /// Exact rows give x back to `dx·2⁻¹⁶` per element (outliers, zeros, tiny values), and a
    /// NaN or infinity makes its block's scale NaN (the model's activations are not checked
    /// as the API's inputs are: an overflow must stay visible).
    #[test]
    fn exact_rows_reconstruct_and_poison() {
        let mut x: Vec<f32> = (0..128).map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0).collect();
        x[5] = 1e3;
        x[32..64].fill(0.0);
        x[64..96].iter_mut().for_each(|v| *v *= 1e-30);
        let q = Quant::new(&x, 1, 128, true);
        for (k, &v) in x.iter().enumerate() {
            let dx = q.scale[k / 32];
            let got = dx * (q.hi[k] as f32 + q.lo[k] as f32 / 32768.0);
            assert!((got - v).abs() <= dx / 65536.0 * 1.0001, "{k}: {got} vs {v}");
        }
        x[100] = f32::NAN;
        x[40] = f32::INFINITY;
        let q = Quant::new(&x, 1, 128, true);
        assert!(q.scale[0].is_finite() && q.scale[1].is_nan() && q.scale[2].is_finite() && q.scale[3].is_nan());
    }
}
