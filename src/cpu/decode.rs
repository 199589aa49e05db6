//! How the CPU kernels read each weight format: a row is a run of blocks, and a block is read
//! four weights at a time, widened to f32 in registers. Per-block constants (scales) are
//! decoded once per block (`Decode::ctx`), not per four weights.

use super::simd::{dot_q4, dot_q8, Bytes16, F32x4, I16x32, I32x4, U32x4};
use crate::formats::dtype::{self, WeightFormat};

/// A weight format as the CPU kernels see it.
pub trait Decode {
    /// What the row storage is made of (f32, u16 bit patterns, or bytes).
    type Unit: Copy;
    /// Per-block constants.
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

    /// # Safety
    /// `block` must address a whole block.
    unsafe fn ctx(block: *const Self::Unit) -> Self::Ctx;
    /// Weights `4·sub .. 4·sub + 4` of the block.
    /// # Safety
    /// `block` must address a whole block; `sub < BLOCK / 4`.
    unsafe fn load4(ctx: &Self::Ctx, block: *const Self::Unit, sub: usize) -> F32x4;
    /// (d, m) of group `g` of a block (affine formats).
    fn scale(_ctx: &Self::Ctx, _g: usize) -> (f32, f32) {
        (1.0, 0.0)
    }
    /// The block's codes dotted with 32 quantized activations (formats with `INT8`).
    const INT8: bool = false;
    /// The int8 dot leaves `m·Σx` to add.
    const INT8_MIN: bool = false;
    /// # Safety
    /// `block` must address a whole block.
    unsafe fn dot_int8(_ctx: &Self::Ctx, _block: *const Self::Unit, _x: &I16x32) -> I32x4 {
        unreachable!("format without an int8 path")
    }
    /// Weight `k` of a row (only used for tails, so only for element formats).
    /// # Safety
    /// `row` must address at least `k + 1` units.
    unsafe fn at(row: *const Self::Unit, k: usize) -> f32;

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
            unsafe fn ctx(_: *const $unit) {}
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

/// A block scale (finite f16, checked at load) as f32: the SIMD path's bit trick in scalar
/// form, a few instructions instead of a software conversion.
#[inline(always)]
unsafe fn half_at(p: *const u8) -> f32 {
    let h = u16::from_le_bytes([*p, *p.add(1)]) as u32;
    let mag = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits(0x7780_0000);
    f32::from_bits(mag.to_bits() | ((h & 0x8000) << 16))
}

/// A Q4 block: d, m and its 16 quant bytes; a weight is `d·q + m`.
#[derive(Clone, Copy)]
pub struct Q4Block(f32, f32, Bytes16);

/// Q4_0 and Q4_1: byte j of the 16 quant bytes holds weight j (low nibble) and j + 16 (high).
macro_rules! nibble_format {
    ($name:ident, $bytes:expr, $qs:expr, $dm:expr, $offset:expr, $int8_min:expr) => {
        pub struct $name;
        impl Decode for $name {
            type Unit = u8;
            type Ctx = Q4Block;
            const BLOCK: usize = 32;
            const UNITS: usize = $bytes;
            const TAIL: bool = false;
            const AFFINE: bool = true;
            const HAS_MIN: bool = true;
            #[inline(always)]
            unsafe fn ctx(b: *const u8) -> Q4Block {
                let (d, m): (f32, f32) = $dm(b);
                Q4Block(d, m, Bytes16::load(b.add($qs)))
            }
            #[inline(always)]
            unsafe fn load4(c: &Q4Block, _: *const u8, sub: usize) -> F32x4 {
                F32x4::nibbles(c.2, sub)
            }
            #[inline(always)]
            fn scale(c: &Q4Block, _: usize) -> (f32, f32) {
                (c.0, c.1)
            }
            const INT8: bool = true;
            const INT8_MIN: bool = $int8_min;
            #[inline(always)]
            unsafe fn dot_int8(c: &Q4Block, _: *const u8, x: &I16x32) -> I32x4 {
                dot_q4::<$offset>(c.2, x)
            }
            unsafe fn at(_: *const u8, _: usize) -> f32 {
                unreachable!("block formats have no tails")
            }
        }
    };
}

// Q4_0's int8 dot subtracts the 8 from the codes (no cancellation against a min term).
nibble_format!(Q4_0, 18, 2, |b: *const u8| {
    let d = half_at(b);
    (d, -8.0 * d)
}, 8, false);
nibble_format!(Q4_1, 20, 4, |b: *const u8| (half_at(b), half_at(b.add(2))), 0, true);

pub struct Q8_0;
impl Decode for Q8_0 {
    type Unit = u8;
    type Ctx = f32;
    const BLOCK: usize = 32;
    const UNITS: usize = 34;
    const TAIL: bool = false;
    const AFFINE: bool = true;
    #[inline(always)]
    unsafe fn ctx(b: *const u8) -> f32 {
        half_at(b)
    }
    #[inline(always)]
    unsafe fn load4(_: &f32, b: *const u8, sub: usize) -> F32x4 {
        F32x4::load_i8(b.add(2 + 4 * sub))
    }
    #[inline(always)]
    fn scale(d: &f32, _: usize) -> (f32, f32) {
        (*d, 0.0)
    }
    const INT8: bool = true;
    #[inline(always)]
    unsafe fn dot_int8(_: &f32, b: *const u8, x: &I16x32) -> I32x4 {
        dot_q8(b.add(2), x)
    }
    unsafe fn at(_: *const u8, _: usize) -> f32 {
        unreachable!("block formats have no tails")
    }
}

/// The (d, m) of each of a block's `N` groups, decoded once per block (`dtype::group_scale`).
#[derive(Clone, Copy)]
pub struct Groups<const N: usize>([(f32, f32); N]);

/// The other block formats (Q5_0, Q5_1, IQ4_NL and the K-quants): codes assembled from their
/// bit fields four at a time, scaled per group. `$codes(block, k)` gives weights k..k+4's
/// codes (k % 4 == 0), as `dtype::code` defines them.
macro_rules! grouped_format {
    ($name:ident, $fmt:expr, $groups:expr, $has_min:expr, $codes:expr) => {
        #[allow(non_camel_case_types)]
        pub struct $name;
        impl Decode for $name {
            type Unit = u8;
            type Ctx = Groups<$groups>;
            const BLOCK: usize = $fmt.block().0;
            const UNITS: usize = $fmt.block().1;
            const TAIL: bool = false;
            const AFFINE: bool = true;
            const HAS_MIN: bool = $has_min;
            const GROUP: usize = $fmt.group();
            #[inline(always)]
            unsafe fn ctx(b: *const u8) -> Groups<$groups> {
                let block = core::slice::from_raw_parts(b, Self::UNITS);
                Groups(core::array::from_fn(|g| dtype::group_scale($fmt, block, g)))
            }
            #[inline(always)]
            unsafe fn load4(_: &Groups<$groups>, b: *const u8, sub: usize) -> F32x4 {
                $codes(b, 4 * sub)
            }
            #[inline(always)]
            fn scale(c: &Groups<$groups>, g: usize) -> (f32, f32) {
                c.0[g]
            }
            unsafe fn at(_: *const u8, _: usize) -> f32 {
                unreachable!("block formats have no tails")
            }
        }
    };
}

/// Four nibbles: the low or high halves of the 4 bytes at `p`.
#[inline(always)]
unsafe fn nibbles(p: *const u8, high: bool) -> U32x4 {
    let v = U32x4::load_u8x4(p);
    if high {
        v.shr(4)
    } else {
        v.and(0xf)
    }
}

/// Q2_K/Q3_K: the 2-bit codes at `qs` (byte 32h + i, bits 2s: weight 128h + 32s + i).
#[inline(always)]
unsafe fn two_bits(b: *const u8, k: usize, qs: usize) -> U32x4 {
    let r = k % 128;
    U32x4::load_u8x4(b.add(qs + 32 * (k / 128) + r % 32)).shr(2 * (r / 32) as u32).and(3)
}

/// Q4_K/Q5_K: group g = k / 32's nibbles (pairs of groups share 32 bytes).
#[inline(always)]
unsafe fn k4_nibbles(b: *const u8, k: usize, qs: usize) -> U32x4 {
    let g = k / 32;
    nibbles(b.add(qs + 32 * (g / 2) + k % 32), g % 2 == 1)
}

/// A 32-weight block decoded to 32 byte codes at once (two registers), so that each four
/// weights are one widening, as Q4's: Q5_0, Q5_1 (nibbles plus fifth bits) and IQ4_NL (its
/// table looked up). A weight is `d·code + m`.
#[derive(Clone, Copy)]
pub struct Codes32(f32, f32, Bytes16, Bytes16);

macro_rules! codes32_format {
    ($name:ident, $bytes:expr, $has_min:expr, $ctx:expr) => {
        #[allow(non_camel_case_types)]
        pub struct $name;
        impl Decode for $name {
            type Unit = u8;
            type Ctx = Codes32;
            const BLOCK: usize = 32;
            const UNITS: usize = $bytes;
            const TAIL: bool = false;
            const AFFINE: bool = true;
            const HAS_MIN: bool = $has_min;
            #[inline(always)]
            unsafe fn ctx(b: *const u8) -> Codes32 {
                $ctx(b)
            }
            #[inline(always)]
            unsafe fn load4(c: &Codes32, _: *const u8, sub: usize) -> F32x4 {
                F32x4::bytes_i8(if sub < 4 { c.2 } else { c.3 }, sub % 4)
            }
            #[inline(always)]
            fn scale(c: &Codes32, _: usize) -> (f32, f32) {
                (c.0, c.1)
            }
            unsafe fn at(_: *const u8, _: usize) -> f32 {
                unreachable!("block formats have no tails")
            }
        }
    };
}

/// Q5_0/Q5_1's codes: nibbles at `qs`, fifth bits in the u32 at `qh`.
#[inline(always)]
unsafe fn codes5(b: *const u8, qh: usize, qs: usize) -> (Bytes16, Bytes16) {
    let bits = u32::from_le_bytes(core::ptr::read_unaligned(b.add(qh) as *const [u8; 4]));
    let q = Bytes16::load(b.add(qs));
    (Bytes16::codes5(q, bits, false), Bytes16::codes5(q, bits >> 16, true))
}

// Q5_0: w = d·(q − 16), as d·q − 16d.
codes32_format!(Q5_0, 22, true, |b: *const u8| {
    let (lo, hi) = codes5(b, 2, 6);
    let d = half_at(b);
    Codes32(d, -16.0 * d, lo, hi)
});
codes32_format!(Q5_1, 24, true, |b: *const u8| {
    let (lo, hi) = codes5(b, 4, 8);
    Codes32(half_at(b), half_at(b.add(2)), lo, hi)
});
codes32_format!(IQ4_NL, 18, false, |b: *const u8| {
    let q = Bytes16::load(b.add(2));
    Codes32(half_at(b), 0.0, IQ4_NL_TABLE.lookup(q, false), IQ4_NL_TABLE.lookup(q, true))
});
grouped_format!(Q2_K, WeightFormat::Q2_K, 16, true, |b, k| two_bits(b, k, 16).minus_to_f32(0));
grouped_format!(Q3_K, WeightFormat::Q3_K, 16, false, |b: *const u8, k: usize| {
    let high = U32x4::load_u8x4(b.add(k % 32)).shr((k / 32) as u32).and(1);
    two_bits(b, k, 32).or(high.shl(2)).minus_to_f32(4)
});
grouped_format!(Q4_K, WeightFormat::Q4_K, 8, true, |b, k| k4_nibbles(b, k, 16).minus_to_f32(0));
grouped_format!(Q5_K, WeightFormat::Q5_K, 8, true, |b: *const u8, k: usize| {
    let high = U32x4::load_u8x4(b.add(16 + k % 32)).shr((k / 32) as u32).and(1);
    k4_nibbles(b, k, 48).or(high.shl(4)).minus_to_f32(0)
});
grouped_format!(Q6_K, WeightFormat::Q6_K, 16, false, |b: *const u8, k: usize| {
    let (h, r) = (k / 128, k % 128);
    let high = U32x4::load_u8x4(b.add(128 + 32 * h + r % 32)).shr(2 * (r / 32) as u32).and(3);
    nibbles(b.add(64 * h + r % 64), r >= 64).or(high.shl(4)).minus_to_f32(32)
});

/// IQ4_NL's table as one register.
const IQ4_NL_TABLE: Bytes16 = Bytes16::from_i8(dtype::IQ4_NL_VALUES);
