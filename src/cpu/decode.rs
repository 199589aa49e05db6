//! How the CPU kernels read each weight format: a row is a run of blocks. Element formats
//! are read four weights at a time, widened to f32 in registers (`load4`); block formats give
//! a group's codes as int16 for the integer dot products of decode (`codes`) and decode rows
//! to f32 for prefill's panels (`decode_row`). Per-group constants (scales) are decoded once
//! per group (`Decode::ctx`), not per four weights.

use super::simd::{Bytes16, F32x4, I16x32};
use crate::formats::dtype::{self, WeightFormat};

/// A weight format as the CPU kernels see it.
pub trait Decode {
    /// What the row storage is made of (f32, u16 bit patterns, or bytes).
    type Unit: Copy + Sync;
    /// Per-group constants (a block's, or a K-quant group's: its scale and decoded codes).
    type Ctx: Copy;
    /// Weights per block (a multiple of 4).
    const BLOCK: usize;
    /// Units per block.
    const UNITS: usize;
    /// Rows may end in a partial block (element formats only).
    const TAIL: bool;
    /// Block formats: `load4` gives raw codes q and the weight is `d·q + m` per group of
    /// `GROUP` weights, so the kernel applies d and m once per group instead of per weight.
    const AFFINE: bool = false;
    /// Weights per (d, m) group: the block, or a K-quant's sub-block.
    const GROUP: usize = Self::BLOCK;
    /// ... and m is not always zero.
    const HAS_MIN: bool = false;

    /// Group `g`'s constants (`g < BLOCK / GROUP`).
    /// # Safety
    /// `block` must address a whole block.
    unsafe fn ctx(block: *const Self::Unit, g: usize) -> Self::Ctx;
    /// Weights `4·sub .. 4·sub + 4` of the block.
    /// # Safety
    /// `block` must address a whole block; `sub < BLOCK / 4`.
    unsafe fn load4(ctx: &Self::Ctx, block: *const Self::Unit, sub: usize) -> F32x4;
    /// (d, m) of the group `ctx` is for (affine formats).
    fn scale(_ctx: &Self::Ctx) -> (f32, f32) {
        (1.0, 0.0)
    }
    /// Where the block keeps its f16 scale(s) (`scales` gathers them).
    const HEAD: Head = Head::No;
    /// `scale` of one integer group in each of C blocks (`ctx` their `int_ctx`) as lanes, lanes
    /// from C on repeating the last: (d, m). Decode's per-group scale work for a whole tile
    /// at once: widening eight f16 one by one was a quarter of a Q4_1 matvec's time in wasm.
    /// # Safety
    /// `blocks` must address whole blocks.
    #[inline(always)]
    unsafe fn scales<const C: usize>(ctx: &[Self::Ctx; C], blocks: &[*const Self::Unit; C]) -> (F32x4, F32x4) {
        let at = |off: usize| core::array::from_fn(|c| (blocks[c.min(C - 1)] as *const u8).add(off));
        match Self::HEAD {
            Head::No => {
                let s: [(f32, f32); 4] = core::array::from_fn(|c| Self::scale(&ctx[c.min(C - 1)]));
                (F32x4::from_array(s.map(|s| s.0)), F32x4::from_array(s.map(|s| s.1)))
            }
            Head::D => (F32x4::load_half_pairs(at(0)).0, F32x4::zero()),
            Head::DMin => F32x4::load_half_pairs(at(0)),
            Head::DMinus8 => {
                let d = F32x4::load_half_pairs(at(0)).0;
                (d, d.mul(F32x4::splat(-8.0)))
            }
            // The 4 bytes read end with d, the block's last two bytes (units are bytes here).
            Head::DLast => (F32x4::load_half_pairs(at(Self::UNITS - 4)).1, F32x4::zero()),
        }
    }
    /// Block formats: the group's codes as integers for the integer dot products (`codes`).
    const INT: bool = false;
    /// The integer group's `INT_GROUP` codes q (weight `d·q + m`), widened to 16 bits; a
    /// group of 16 fills the first 16 lanes.
    /// # Safety
    /// `block` must address a whole block.
    unsafe fn codes(_ctx: &Self::Ctx, _block: *const Self::Unit) -> I16x32 {
        unreachable!("format without integer codes")
    }
    /// Weights per group of decode's integer dot products: `GROUP`, or 32 where two groups
    /// of 16 are taken together with their integer scales folded into the codes.
    const INT_GROUP: usize = Self::GROUP;
    /// Integer group `g`'s constants, for `codes` and `scale`.
    /// # Safety
    /// `block` must address a whole block.
    #[inline(always)]
    unsafe fn int_ctx(block: *const Self::Unit, g: usize) -> Self::Ctx {
        Self::ctx(block, g)
    }
    /// Weight `k` of a row (only used for tails, so only for element formats).
    /// # Safety
    /// `row` must address at least `k + 1` units.
    unsafe fn at(row: *const Self::Unit, k: usize) -> f32;

    /// Decodes a row of `cols` weights to f32 (`out.len() == cols`), a group at a time.
    ///
    /// # Safety
    /// `row` must address a whole row of `cols` weights.
    #[inline(always)]
    unsafe fn decode_row(row: *const Self::Unit, out: &mut [f32]) {
        let cols = out.len();
        let o = out.as_mut_ptr();
        for b in 0..cols / Self::BLOCK {
            let blk = row.add(b * Self::UNITS);
            for g in 0..Self::BLOCK / Self::GROUP {
                let ctx = Self::ctx(blk, g);
                let (d, m) = Self::scale(&ctx);
                let (d, m) = (F32x4::splat(d), F32x4::splat(m));
                for sub in g * Self::GROUP / 4..(g + 1) * Self::GROUP / 4 {
                    let v = Self::load4(&ctx, blk, sub);
                    let v = if Self::AFFINE { v.mul_add(d, m) } else { v };
                    v.store(o.add(b * Self::BLOCK + 4 * sub));
                }
            }
        }
        if Self::TAIL {
            for (k, v) in out.iter_mut().enumerate().skip(cols / Self::BLOCK * Self::BLOCK) {
                *v = Self::at(row, k);
            }
        }
    }

    /// Units a row of `cols` weights takes.
    fn row_units(cols: usize) -> usize {
        if Self::TAIL {
            cols
        } else {
            cols / Self::BLOCK * Self::UNITS
        }
    }
}

/// Element formats: a "block" is four weights.
macro_rules! element_format {
    ($name:ident, $unit:ty, $load:expr, $at:expr) => {
        pub struct $name;
        impl Decode for $name {
            type Unit = $unit;
            type Ctx = ();
            const BLOCK: usize = 4;
            const UNITS: usize = 4;
            const TAIL: bool = true;
            #[inline(always)]
            unsafe fn ctx(_: *const $unit, _: usize) {}
            #[inline(always)]
            unsafe fn load4(_: &(), block: *const $unit, sub: usize) -> F32x4 {
                $load(block.add(4 * sub))
            }
            #[inline(always)]
            unsafe fn at(row: *const $unit, k: usize) -> f32 {
                $at(*row.add(k))
            }
        }
    };
}

element_format!(F32, f32, |p| F32x4::load(p), |v: f32| v);
element_format!(F16, u16, |p| F32x4::load_f16(p), |v: u16| half::f16::from_bits(v).to_f32());
element_format!(BF16, u16, |p| F32x4::load_bf16(p), |v: u16| f32::from_bits((v as u32) << 16));
// Adapter factors stored as 16-bit integers (their scales are applied outside the dot product).
element_format!(I16, i16, |p| F32x4::load_i16(p), |v: i16| v as f32);

/// A block scale (finite f16, checked at load) as f32 (`dtype::finite_half`).
#[inline(always)]
unsafe fn half_at(p: *const u8) -> f32 {
    dtype::finite_half(u16::from_le_bytes([*p, *p.add(1)]))
}

/// Where a block keeps its f16 scales (`Decode::scales`): nowhere (element formats), f16 d
/// at 0, f16 d then m, d with m = −8·d (Q4_0), or one f16 d in the block's last two bytes
/// (Q3_K, Q6_K: their integer group scales are folded into the codes). Q4_K's
/// 6-bit scales gathered per group measured 28% slower than per column: `No`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Head {
    No,
    D,
    DMin,
    DMinus8,
    DLast,
}

/// A Q4 block: d, m and its 16 quant bytes; a weight is `d·q + m`.
#[derive(Clone, Copy)]
pub struct Q4Block(f32, f32, Bytes16);

/// Q4_0 and Q4_1: byte j of the 16 quant bytes holds weight j (low nibble) and j + 16 (high).
macro_rules! nibble_format {
    ($name:ident, $bytes:expr, $qs:expr, $head:expr, $dm:expr) => {
        pub struct $name;
        impl Decode for $name {
            type Unit = u8;
            type Ctx = Q4Block;
            const HEAD: Head = $head;
            const BLOCK: usize = 32;
            const UNITS: usize = $bytes;
            const TAIL: bool = false;
            const AFFINE: bool = true;
            const HAS_MIN: bool = true;
            #[inline(always)]
            unsafe fn ctx(b: *const u8, _: usize) -> Q4Block {
                let (d, m): (f32, f32) = $dm(b);
                Q4Block(d, m, Bytes16::load(b.add($qs)))
            }
            #[inline(always)]
            unsafe fn load4(c: &Q4Block, _: *const u8, sub: usize) -> F32x4 {
                F32x4::nibbles(c.2, sub)
            }
            #[inline(always)]
            fn scale(c: &Q4Block) -> (f32, f32) {
                (c.0, c.1)
            }
            const INT: bool = true;
            #[inline(always)]
            unsafe fn codes(c: &Q4Block, _: *const u8) -> I16x32 {
                I16x32::nibbles(c.2)
            }
            unsafe fn at(_: *const u8, _: usize) -> f32 {
                unreachable!("block formats have no tails")
            }
        }
    };
}

nibble_format!(Q4_0, 18, 2, Head::DMinus8, |b: *const u8| {
    let d = half_at(b);
    (d, -8.0 * d)
});
nibble_format!(Q4_1, 20, 4, Head::DMin, |b: *const u8| (half_at(b), half_at(b.add(2))));

pub struct Q8_0;
impl Decode for Q8_0 {
    type Unit = u8;
    type Ctx = f32;
    // Head::D measured 5% slower on 576-wide rows (the tied lm_head's) in V8, 4% faster on
    // 1536-wide: left scalar.
    const BLOCK: usize = 32;
    const UNITS: usize = 34;
    const TAIL: bool = false;
    const AFFINE: bool = true;
    #[inline(always)]
    unsafe fn ctx(b: *const u8, _: usize) -> f32 {
        half_at(b)
    }
    #[inline(always)]
    unsafe fn load4(_: &f32, b: *const u8, sub: usize) -> F32x4 {
        F32x4::load_i8(b.add(2 + 4 * sub))
    }
    #[inline(always)]
    fn scale(d: &f32) -> (f32, f32) {
        (*d, 0.0)
    }
    const INT: bool = true;
    #[inline(always)]
    unsafe fn codes(_: &f32, b: *const u8) -> I16x32 {
        I16x32::load_i8(b.add(2))
    }
    unsafe fn at(_: *const u8, _: usize) -> f32 {
        unreachable!("block formats have no tails")
    }
}

/// A group of up to 32 weights decoded to byte codes in two registers (weights 0..16 and
/// 16..32 of the group), so that each four weights are one widening, as Q4's, and its (d, m):
/// a weight is `d·code + m`. The formats below decode a group at a time from their bit fields
/// (`dtype::code` is the scalar definition). Formats with a real minimum (Q5_1, Q4_K, ...)
/// keep unsigned codes and m; those whose offset is a constant (Q5_0's −16, Q6_K's −32, ...)
/// subtract it from the bytes (the macro's `signed: true`), so decode's integer dot products need no m·Σx term
/// per group. Prefill's f32 panels widen signed bytes at ~2/3 of unsigned ones' speed in V8,
/// but a panel is decoded once for many rows.
/// Formats with groups of 16 taken two at a time in decode (`fold`) add their integer
/// scales (of the groups in the two registers).
#[derive(Clone, Copy)]
pub struct Codes32(f32, f32, Bytes16, Bytes16, [i16; 2]);

macro_rules! codes_format {
    ($name:ident, $fmt:expr, signed: $signed:literal, head: $head:expr, $ctx:expr $(, fold: $fold:expr)?) => {
        #[allow(non_camel_case_types)]
        pub struct $name;
        impl Decode for $name {
            type Unit = u8;
            type Ctx = Codes32;
            const HEAD: Head = $head;
            const BLOCK: usize = $fmt.block().0;
            const UNITS: usize = $fmt.block().1;
            const TAIL: bool = false;
            const AFFINE: bool = true;
            const HAS_MIN: bool = !$signed;
            const GROUP: usize = $fmt.group();
            #[inline(always)]
            unsafe fn ctx(b: *const u8, g: usize) -> Codes32 {
                $ctx(b, g)
            }
            #[inline(always)]
            unsafe fn load4(c: &Codes32, _: *const u8, sub: usize) -> F32x4 {
                let j = sub % (Self::GROUP / 4);
                let q = if j < 4 { c.2 } else { c.3 };
                if $signed {
                    F32x4::bytes_i8(q, j % 4)
                } else {
                    F32x4::bytes_u8(q, j % 4)
                }
            }
            #[inline(always)]
            fn scale(c: &Codes32) -> (f32, f32) {
                (c.0, c.1)
            }
            const INT: bool = true;
            #[inline(always)]
            unsafe fn codes(c: &Codes32, _: *const u8) -> I16x32 {
                if Self::INT_GROUP != Self::GROUP {
                    I16x32::from_i8_scaled(c.2, c.4[0], c.3, c.4[1])
                } else if $signed {
                    I16x32::from_i8(c.2, c.3)
                } else {
                    I16x32::from_u8(c.2, c.3)
                }
            }
            $(
                // Groups of 16 with (d·scale, 0): decode takes two at a time as one group of
                // 32, codes times their integer scales (`$fold`: group g's), so the per-group
                // work (conversion, scaling) is done once per 32.
                const INT_GROUP: usize = 32;
                #[inline(always)]
                unsafe fn int_ctx(b: *const u8, g: usize) -> Codes32 {
                    let fold: unsafe fn(*const u8, usize) -> i16 = $fold;
                    let (c0, c1) = (Self::ctx(b, 2 * g), Self::ctx(b, 2 * g + 1));
                    // d: the block's last two bytes, as `Head::DLast` reads it.
                    Codes32(half_at(b.add(Self::UNITS - 2)), 0.0, c0.2, c1.2, [fold(b, 2 * g), fold(b, 2 * g + 1)])
                }
            )?
            unsafe fn at(_: *const u8, _: usize) -> f32 {
                unreachable!("block formats have no tails")
            }
        }
    };
}

/// Q5_0/Q5_1's codes: nibbles at `qs`, fifth bits in the u32 at `qh` (`signed`: minus 16; each
/// format passes its own, `!HAS_MIN`, from the macro's `signed:`).
#[inline(always)]
unsafe fn codes5(b: *const u8, qh: usize, qs: usize, signed: bool) -> (Bytes16, Bytes16) {
    let bits = u32::from_le_bytes(core::ptr::read_unaligned(b.add(qh) as *const [u8; 4]));
    let q = Bytes16::load(b.add(qs));
    (Bytes16::codes5(q, bits, false, signed), Bytes16::codes5(q, bits >> 16, true, signed))
}

/// Group g's (d, m) (`dtype::group_scale`, inlined: the format is a constant here).
#[inline(always)]
unsafe fn dm(fmt: WeightFormat, b: *const u8, g: usize) -> (f32, f32) {
    dtype::group_scale(fmt, core::slice::from_raw_parts(b, fmt.block().1), g)
}

/// 16 codes `(byte >> shift) & mask` of the 16 bytes at `p`.
#[inline(always)]
unsafe fn field(p: *const u8, shift: u32, mask: u8) -> Bytes16 {
    Bytes16::load(p).bits(shift, mask)
}

// Q5_0: w = d·(q − 16).
codes_format!(Q5_0, WeightFormat::Q5_0, signed: true, head: Head::D, |b: *const u8, _| {
    let (lo, hi) = codes5(b, 2, 6, !Self::HAS_MIN);
    Codes32(half_at(b), 0.0, lo, hi, [0; 2])
});
codes_format!(Q5_1, WeightFormat::Q5_1, signed: false, head: Head::DMin, |b: *const u8, _| {
    let (lo, hi) = codes5(b, 4, 8, !Self::HAS_MIN);
    Codes32(half_at(b), half_at(b.add(2)), lo, hi, [0; 2])
});
// IQ4_NL: w = d·table[q] (the table's values are signed bytes).
codes_format!(IQ4_NL, WeightFormat::IQ4_NL, signed: true, head: Head::D, |b: *const u8, _| {
    let (q, d) = (Bytes16::load(b.add(2)), half_at(b));
    Codes32(d, 0.0, IQ4_NL_TABLE.lookup(q, false), IQ4_NL_TABLE.lookup(q, true), [0; 2])
});
// Q4_K/Q5_K: groups of 32; group g's nibbles are the low (even g) or high halves of the 32
// bytes at qs + 32·(g / 2); Q5_K's fifth bits are bit g of the 32 bytes at 16.
codes_format!(Q4_K, WeightFormat::Q4_K, signed: false, head: Head::No, |b: *const u8, g: usize| {
    let (p, s) = (b.add(16 + 32 * (g / 2)), 4 * (g % 2) as u32);
    let (d, m) = dm(WeightFormat::Q4_K, b, g);
    Codes32(d, m, field(p, s, 0xf), field(p.add(16), s, 0xf), [0; 2])
});
codes_format!(Q5_K, WeightFormat::Q5_K, signed: false, head: Head::No, |b: *const u8, g: usize| {
    let (p, s) = (b.add(48 + 32 * (g / 2)), 4 * (g % 2) as u32);
    let high = |i: usize| field(b.add(16 + i), g as u32, 1).shl(4);
    let (d, m) = dm(WeightFormat::Q5_K, b, g);
    Codes32(d, m, field(p, s, 0xf).or(high(0)), field(p.add(16), s, 0xf).or(high(16)), [0; 2])
});
// Groups of 16 (weights 16g..16g+16 = 128h + 32s + i for i in one half of a 32-byte run):
// 2-bit codes at bits 2s of the bytes at qs + 32h + 16·(g % 2).
#[inline(always)]
unsafe fn two_bits16(b: *const u8, qs: usize, g: usize) -> Bytes16 {
    let (h, s) = (g / 8, (g / 2) % 4);
    field(b.add(qs + 32 * h + 16 * (g % 2)), 2 * s as u32, 3)
}
// Groups of 16 use the first register only (the second is a copy).
codes_format!(Q2_K, WeightFormat::Q2_K, signed: false, head: Head::No, |b: *const u8, g: usize| {
    let (d, m) = dm(WeightFormat::Q2_K, b, g);
    let q = two_bits16(b, 16, g);
    Codes32(d, m, q, q, [0; 2])
});
// Q3_K: code = low 2 bits | high bit << 2, minus 4; the high bit of weight k is bit
// k / 32 of hmask[k % 32].
codes_format!(Q3_K, WeightFormat::Q3_K, signed: true, head: Head::DLast, |b: *const u8, g: usize| {
    let high = field(b.add(16 * (g % 2)), (g / 2) as u32, 1).shl(2);
    let q = two_bits16(b, 32, g).or(high).sub(4);
    Codes32(dm(WeightFormat::Q3_K, b, g).0, 0.0, q, q, [0; 2])
}, fold: |b, g| dtype::scale_q3k(core::slice::from_raw_parts(b.add(96), 12), g) as i16);
// Q6_K: code = ql nibble | 2 bits of qh << 4, minus 32. Weight 128h + r: ql byte
// 64h + r % 64 (high nibble for r >= 64), qh byte 32h + r % 32 at bits 2·(r / 32).
codes_format!(Q6_K, WeightFormat::Q6_K, signed: true, head: Head::DLast, |b: *const u8, g: usize| {
    let (h, r) = (g / 8, 16 * (g % 8));
    let lo = field(b.add(64 * h + r % 64), 4 * (r >= 64) as u32, 0xf);
    let hi = field(b.add(128 + 32 * h + r % 32), 2 * (r / 32) as u32, 3).shl(4);
    let q = lo.or(hi).sub(32);
    Codes32(dm(WeightFormat::Q6_K, b, g).0, 0.0, q, q, [0; 2])
}, fold: |b, g| *b.add(192 + g) as i8 as i16);

/// IQ4_NL's table in one register.
const IQ4_NL_TABLE: Bytes16 = Bytes16::from_i8(dtype::IQ4_NL_VALUES);
