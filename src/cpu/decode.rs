//! How the CPU kernels read each weight format: a row is a run of blocks, and a block is read
//! four weights at a time, widened to f32 in registers. Per-block constants (scales) are
//! decoded once per block (`Decode::ctx`), not per four weights.

use super::simd::{dot_q4, dot_q8, Bytes16, F32x4, I16x32, I32x4};

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
    /// Block formats: `load4` gives raw codes q and the weight is `d·q + m` per block, so
    /// the kernel applies d and m once per block instead of per weight.
    const AFFINE: bool = false;
    /// ... and m is not always zero.
    const HAS_MIN: bool = false;

    /// # Safety
    /// `block` must address a whole block.
    unsafe fn ctx(block: *const Self::Unit) -> Self::Ctx;
    /// Weights `4·sub .. 4·sub + 4` of the block.
    /// # Safety
    /// `block` must address a whole block; `sub < BLOCK / 4`.
    unsafe fn load4(ctx: &Self::Ctx, block: *const Self::Unit, sub: usize) -> F32x4;
    /// (d, m) of a block (affine formats).
    fn scale(_ctx: &Self::Ctx) -> (f32, f32) {
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
            fn scale(c: &Q4Block) -> (f32, f32) {
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
    fn scale(d: &f32) -> (f32, f32) {
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
