//! A four-lane f32 vector: wasm SIMD128 under wasm32 (+simd128), plain arrays elsewhere
//! (LLVM vectorises those on native). The CPU kernels are written once against this type.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub struct F32x4(v128);

    /// Sixteen bytes in one register (a block's quants).
    #[derive(Clone, Copy)]
    pub struct Bytes16(v128);

    /// Four i32 lanes (integer dot products).
    #[derive(Clone, Copy)]
    pub struct I32x4(v128);

    impl I32x4 {
        #[inline(always)]
        pub fn to_f32(self) -> F32x4 {
            F32x4(f32x4_convert_i32x4(self.0))
        }
    }

    /// 32 sixteen-bit integers: quantized activations, or a block's weight codes widened
    /// once and dotted with each activation row.
    #[derive(Clone, Copy)]
    pub struct I16x32([v128; 4]);

    impl I16x32 {
        /// # Safety
        /// `p..p+32` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const i16) -> Self {
            I16x32(core::array::from_fn(|i| v128_load(p.add(8 * i) as *const v128)))
        }
        /// 32 unsigned byte codes (weights 0..16 in `a`, 16..32 in `b`), zero-extended.
        #[inline(always)]
        pub fn from_u8(a: Bytes16, b: Bytes16) -> Self {
            I16x32([u16x8_extend_low_u8x16(a.0), u16x8_extend_high_u8x16(a.0), u16x8_extend_low_u8x16(b.0), u16x8_extend_high_u8x16(b.0)])
        }
        /// The same for signed byte codes, sign-extended.
        #[inline(always)]
        pub fn from_i8(a: Bytes16, b: Bytes16) -> Self {
            I16x32([i16x8_extend_low_i8x16(a.0), i16x8_extend_high_i8x16(a.0), i16x8_extend_low_i8x16(b.0), i16x8_extend_high_i8x16(b.0)])
        }
        /// Signed byte codes times a scale per 16 (`sa` for `a`'s, `sb` for `b`'s); the
        /// products must fit 16 bits (K-quant codes at most 2^5 times scales at most 2^7).
        #[inline(always)]
        pub fn from_i8_scaled(a: Bytes16, sa: i16, b: Bytes16, sb: i16) -> Self {
            let (sa, sb) = (i16x8_splat(sa), i16x8_splat(sb));
            let w = Self::from_i8(a, b).0;
            I16x32([i16x8_mul(w[0], sa), i16x8_mul(w[1], sa), i16x8_mul(w[2], sb), i16x8_mul(w[3], sb)])
        }
        /// A Q4 block's 32 codes: low nibbles are weights 0..16, high nibbles 16..32.
        #[inline(always)]
        pub fn nibbles(q: Bytes16) -> Self {
            Self::from_u8(Bytes16(v128_and(q.0, u8x16_splat(0xf))), Bytes16(v128_and(u16x8_shr(q.0, 4), u8x16_splat(0xf))))
        }
        /// 32 signed bytes, sign-extended.
        /// # Safety
        /// `p..p+32` must be readable.
        #[inline(always)]
        pub unsafe fn load_i8(p: *const u8) -> Self {
            let (a, b) = (v128_load(p as *const v128), v128_load(p.add(16) as *const v128));
            I16x32([i16x8_extend_low_i8x16(a), i16x8_extend_high_i8x16(a), i16x8_extend_low_i8x16(b), i16x8_extend_high_i8x16(b)])
        }
        /// `Σ self[i]·x[i]` over all 32 lanes (`all`) or the first 16, in four i32 partial
        /// sums, 8 products each (exact while they fit: the callers' codes are at most 2^12
        /// in magnitude, x at most 2^15; a lane's sum becomes f32 later, rounded past 2^24).
        #[inline(always)]
        pub fn dot(&self, x: &I16x32, all: bool) -> I32x4 {
            let d = |i: usize| i32x4_dot_i16x8(self.0[i], x.0[i]);
            let half = i32x4_add(d(0), d(1));
            I32x4(if all { i32x4_add(half, i32x4_add(d(2), d(3))) } else { half })
        }
        /// `dot` with x read from memory at `p` (each vector loaded next to its use, so
        /// that the activations need no registers of their own).
        /// # Safety
        /// `p..p+32` must be readable.
        #[inline(always)]
        pub unsafe fn dot_at(&self, p: *const i16, all: bool) -> I32x4 {
            let d = |i: usize| i32x4_dot_i16x8(self.0[i], v128_load(p.add(8 * i) as *const v128));
            let half = i32x4_add(d(0), d(1));
            I32x4(if all { i32x4_add(half, i32x4_add(d(2), d(3))) } else { half })
        }
    }

    impl Bytes16 {
        pub const fn from_i8(t: [i8; 16]) -> Self {
            Bytes16(i8x16(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]))
        }
        /// Sixteen 5-bit codes: the low (`high = false`) or high nibbles of `qs`, each with
        /// bit 4 from the matching bit of `bits` (the 16 fifth bits of those weights); as
        /// unsigned codes 0..32, or (`signed`) minus 16 (Q5_0's offset): a clear fifth bit
        /// sets the top four bits instead, `n | 0xF0 = n − 16` as a signed byte.
        #[inline(always)]
        pub fn codes5(qs: Bytes16, bits: u32, high: bool, signed: bool) -> Self {
            let n = v128_and(if high { u16x8_shr(qs.0, 4) } else { qs.0 }, u8x16_splat(0xf));
            // Byte i of the result tests bit i % 8 of byte i / 8 of `bits`.
            let spread = i8x16_swizzle(u32x4_splat(bits), u8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
            let mask = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
            // eq, not ne: x86 has no byte not-equal (V8 adds an xor).
            let t = v128_and(spread, mask);
            let high_bits = if signed { v128_and(i8x16_eq(t, u8x16_splat(0)), u8x16_splat(0xf0)) } else { v128_and(i8x16_eq(t, mask), u8x16_splat(16)) };
            Bytes16(v128_or(n, high_bits))
        }
        /// `table[q & 15]` for each byte of `q` (its low or high nibbles).
        #[inline(always)]
        pub fn lookup(self, qs: Bytes16, high: bool) -> Self {
            let n = v128_and(if high { u16x8_shr(qs.0, 4) } else { qs.0 }, u8x16_splat(0xf));
            Bytes16(i8x16_swizzle(self.0, n))
        }
        /// Bits `shift .. shift + k` of each byte (`mask` = 2^k − 1, within the byte: `mask <<
        /// shift` under 256). Shifted as 16-bit lanes, which x86 has (V8 emulates byte shifts,
        /// at length when the count is not a constant); the mask drops what crosses bytes.
        #[inline(always)]
        pub fn bits(self, shift: u32, mask: u8) -> Self {
            Bytes16(v128_and(u16x8_shr(self.0, shift), u8x16_splat(mask)))
        }
        /// Each byte shifted left; the bits shifted out of a byte must be zero (16-bit lane
        /// shifts, as `bits`).
        #[inline(always)]
        pub fn shl(self, n: u32) -> Self {
            Bytes16(i16x8_shl(self.0, n))
        }
        #[inline(always)]
        pub fn or(self, b: Self) -> Self {
            Bytes16(v128_or(self.0, b.0))
        }
        /// Each byte minus `v` (wrapping: unsigned codes to signed ones).
        #[inline(always)]
        pub fn sub(self, v: u8) -> Self {
            Bytes16(i8x16_sub(self.0, u8x16_splat(v)))
        }
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u8) -> Self {
            Bytes16(v128_load(p as *const v128))
        }
    }

    impl F32x4 {
        #[inline(always)]
        pub fn zero() -> Self {
            F32x4(f32x4_splat(0.0))
        }
        #[inline(always)]
        pub fn splat(v: f32) -> Self {
            F32x4(f32x4_splat(v))
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const f32) -> Self {
            F32x4(v128_load(p as *const v128))
        }
        /// # Safety
        /// `p..p+4` must be writable.
        #[inline(always)]
        pub unsafe fn store(self, p: *mut f32) {
            v128_store(p as *mut v128, self.0)
        }
        /// Four finite IEEE half floats (bit patterns) widened to f32, exactly. Inf and NaN
        /// are not handled: weights holding them are rejected at load (`HostWeight::new`).
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16(p: *const u16) -> Self {
            Self::widen_halves(u32x4_load_extend_u16x4(p))
        }
        /// The finite halves in the low 16 bits of each lane (the high bits are ignored).
        #[inline(always)]
        fn widen_halves(h: v128) -> Self {
            let sign = u32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
            let shifted = u32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
            // Rebias the exponent by multiplying with 2^112: also exact for subnormals and zero.
            F32x4(v128_or(f32x4_mul(shifted, f32x4_splat(f32::from_bits(0x7780_0000))), sign))
        }
        /// Two finite halves at each of four addresses (the first at the lower address),
        /// widened exactly: (the first halves, the second). Blocks' (d, m) four at a time.
        /// # Safety
        /// Each `ps[i]..ps[i] + 4` must be readable.
        #[inline(always)]
        pub unsafe fn load_half_pairs(ps: [*const u8; 4]) -> (Self, Self) {
            let mut w = v128_load32_zero(ps[0] as *const u32);
            w = v128_load32_lane::<1>(w, ps[1] as *const u32);
            w = v128_load32_lane::<2>(w, ps[2] as *const u32);
            w = v128_load32_lane::<3>(w, ps[3] as *const u32);
            (Self::widen_halves(w), Self::widen_halves(u32x4_shr(w, 16)))
        }
        /// Lane `i` in all four lanes (`i` a constant after unrolling: one shuffle).
        #[inline(always)]
        pub fn splat_lane(self, i: usize) -> Self {
            let v = self.0;
            F32x4(match i {
                0 => i32x4_shuffle::<0, 0, 0, 0>(v, v),
                1 => i32x4_shuffle::<1, 1, 1, 1>(v, v),
                2 => i32x4_shuffle::<2, 2, 2, 2>(v, v),
                _ => i32x4_shuffle::<3, 3, 3, 3>(v, v),
            })
        }
        #[inline(always)]
        pub fn from_array(a: [f32; 4]) -> Self {
            F32x4(f32x4(a[0], a[1], a[2], a[3]))
        }
        #[inline(always)]
        pub fn mul_add(self, b: Self, acc: Self) -> Self {
            F32x4(f32x4_add(acc.0, f32x4_mul(self.0, b.0)))
        }
        #[inline(always)]
        pub fn add(self, b: Self) -> Self {
            F32x4(f32x4_add(self.0, b.0))
        }
        #[inline(always)]
        pub fn mul(self, b: Self) -> Self {
            F32x4(f32x4_mul(self.0, b.0))
        }
        /// Four bfloat16 bit patterns widened to f32 (exact: they are f32's top halves).
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_bf16(p: *const u16) -> Self {
            F32x4(u32x4_shl(u32x4_load_extend_u16x4(p), 16))
        }
        /// Four signed 16-bit integers as floats (exact).
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_i16(p: *const i16) -> Self {
            F32x4(f32x4_convert_i32x4(i32x4_load_extend_i16x4(p)))
        }
        /// Four signed bytes as floats.
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_i8(p: *const u8) -> Self {
            let v = v128_load32_zero(p as *const u32);
            F32x4(f32x4_convert_i32x4(i32x4_extend_low_i16x8(i16x8_extend_low_i8x16(v))))
        }
        /// Bytes `4j .. 4j + 4` of `q`, unsigned, as floats (zero-extended: V8 widens these
        /// at Q4's speed; sign-extended bytes took ~1.5x as long).
        #[inline(always)]
        pub fn bytes_u8(q: Bytes16, j: usize) -> Self {
            let j = (4 * j) as u8;
            let mask = u8x16(j, 16, 16, 16, j + 1, 16, 16, 16, j + 2, 16, 16, 16, j + 3, 16, 16, 16);
            F32x4(f32x4_convert_i32x4(i8x16_swizzle(q.0, mask)))
        }
        /// Bytes `4j .. 4j + 4` of `q`, signed, as floats (each byte swizzled to the top of
        /// its lane, then an arithmetic shift).
        #[inline(always)]
        pub fn bytes_i8(q: Bytes16, j: usize) -> Self {
            let j = (4 * j) as u8;
            let mask = u8x16(16, 16, 16, j, 16, 16, 16, j + 1, 16, 16, 16, j + 2, 16, 16, 16, j + 3);
            F32x4(f32x4_convert_i32x4(i32x4_shr(i8x16_swizzle(q.0, mask), 24)))
        }
        /// Bytes `4·(sub % 4) ..+4` of `q` as floats: their low nibbles for `sub < 4`, their
        /// high nibbles otherwise (GGUF's Q4 layout: byte j holds weights j and j + 16).
        #[inline(always)]
        pub fn nibbles(q: Bytes16, sub: usize) -> Self {
            let j = (4 * (sub % 4)) as u8;
            // Swizzle spreads four bytes into four u32 lanes (indices >= 16 give 0).
            let mask = u8x16(j, 16, 16, 16, j + 1, 16, 16, 16, j + 2, 16, 16, 16, j + 3, 16, 16, 16);
            let v = i8x16_swizzle(q.0, mask);
            let v = if sub < 4 { v128_and(v, u32x4_splat(0xf)) } else { u32x4_shr(v, 4) };
            F32x4(f32x4_convert_i32x4(v))
        }
        /// The low (`HIGH = false`) or high nibbles of four bytes, as floats 0..=15.
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_nibbles<const HIGH: bool>(p: *const u8) -> Self {
            let v = u32x4_extend_low_u16x8(u16x8_extend_low_u8x16(v128_load32_zero(p as *const u32)));
            let q = if HIGH { u32x4_shr(v, 4) } else { v128_and(v, u32x4_splat(0xf)) };
            F32x4(f32x4_convert_i32x4(q))
        }
        pub fn to_array(self) -> [f32; 4] {
            let v = self.0;
            [f32x4_extract_lane::<0>(v), f32x4_extract_lane::<1>(v), f32x4_extract_lane::<2>(v), f32x4_extract_lane::<3>(v)]
        }
        #[inline(always)]
        pub fn sum(self) -> f32 {
            let v = self.0;
            (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
                + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
        }
        #[inline(always)]
        pub fn sub(self, b: Self) -> Self {
            F32x4(f32x4_sub(self.0, b.0))
        }
        /// Lane-wise max of `m` and |self| (NaN lanes: either; `Quant` checks sums instead).
        #[inline(always)]
        pub fn abs_max(self, m: Self) -> Self {
            F32x4(f32x4_pmax(m.0, f32x4_abs(self.0)))
        }
        #[inline(always)]
        pub fn max_lane(self) -> f32 {
            let v = self.0;
            f32x4_extract_lane::<0>(v).max(f32x4_extract_lane::<1>(v)).max(f32x4_extract_lane::<2>(v).max(f32x4_extract_lane::<3>(v)))
        }
        /// Rounded to the nearest integer, ties away from zero (as `f32::round`, which is a
        /// libm call in wasm): on magnitudes, the truncation plus 1 where the dropped part is
        /// ≥ ½ (exact), then the sign put back (so −0.4 gives −0, as there).
        #[inline(always)]
        pub fn round(self) -> Self {
            let a = f32x4_abs(self.0);
            let t = f32x4_trunc(a);
            let up = f32x4_ge(f32x4_sub(a, t), f32x4_splat(0.5));
            let r = f32x4_add(t, v128_and(up, f32x4_splat(1.0)));
            F32x4(v128_or(r, v128_and(self.0, u32x4_splat(0x8000_0000))))
        }
        #[inline(always)]
        pub fn div(self, b: Self) -> Self {
            F32x4(f32x4_div(self.0, b.0))
        }
        #[inline(always)]
        pub fn clamp(self, lo: f32, hi: f32) -> Self {
            F32x4(f32x4_pmin(f32x4_splat(hi), f32x4_pmax(f32x4_splat(lo), self.0)))
        }
        /// 2ⁿ for integer-valued lanes n in -126..=127.
        #[inline(always)]
        pub fn pow2(self) -> Self {
            F32x4(i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(self.0), i32x4_splat(127)), 23))
        }
        /// Stores `a` and `b` (integers in i16's range) as eight i16 at `p`.
        /// # Safety
        /// `p..p+8` must be writable.
        #[inline(always)]
        pub unsafe fn store_i16(a: Self, b: Self, p: *mut i16) {
            v128_store(p as *mut v128, i16x8_narrow_i32x4(i32x4_trunc_sat_f32x4(a.0), i32x4_trunc_sat_f32x4(b.0)))
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    #[derive(Clone, Copy)]
    pub struct F32x4([f32; 4]);

    #[derive(Clone, Copy)]
    pub struct Bytes16([u8; 16]);

    #[derive(Clone, Copy)]
    pub struct I32x4([i32; 4]);

    impl I32x4 {
        #[inline(always)]
        pub fn to_f32(self) -> F32x4 {
            F32x4(self.0.map(|v| v as f32))
        }
    }

    #[derive(Clone, Copy)]
    pub struct I16x32([i16; 32]);

    impl I16x32 {
        /// # Safety
        /// `p..p+32` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const i16) -> Self {
            I16x32(core::ptr::read_unaligned(p as *const [i16; 32]))
        }
        #[inline(always)]
        pub fn from_u8(a: Bytes16, b: Bytes16) -> Self {
            I16x32(core::array::from_fn(|i| if i < 16 { a.0[i] } else { b.0[i - 16] } as i16))
        }
        #[inline(always)]
        pub fn from_i8(a: Bytes16, b: Bytes16) -> Self {
            I16x32(core::array::from_fn(|i| if i < 16 { a.0[i] } else { b.0[i - 16] } as i8 as i16))
        }
        #[inline(always)]
        pub fn from_i8_scaled(a: Bytes16, sa: i16, b: Bytes16, sb: i16) -> Self {
            let w = Self::from_i8(a, b).0;
            I16x32(core::array::from_fn(|i| w[i] * if i < 16 { sa } else { sb }))
        }
        #[inline(always)]
        pub fn nibbles(q: Bytes16) -> Self {
            I16x32(core::array::from_fn(|i| if i < 16 { q.0[i] & 0xf } else { q.0[i - 16] >> 4 } as i16))
        }
        /// # Safety
        /// `p..p+32` must be readable.
        #[inline(always)]
        pub unsafe fn load_i8(p: *const u8) -> Self {
            I16x32(core::ptr::read_unaligned(p as *const [i8; 32]).map(|v| v as i16))
        }
        #[inline(always)]
        pub fn dot(&self, x: &I16x32, all: bool) -> I32x4 {
            let mut acc = [0i32; 4];
            for j in 0..if all { 32 } else { 16 } {
                // Lane (j % 8) / 2, as i32x4.dot_i16x8 pairs them (the f32 sums per lane
                // then round the same way).
                acc[(j % 8) / 2] += self.0[j] as i32 * x.0[j] as i32;
            }
            I32x4(acc)
        }
        /// # Safety
        /// `p..p+32` must be readable.
        #[inline(always)]
        pub unsafe fn dot_at(&self, p: *const i16, all: bool) -> I32x4 {
            self.dot(&I16x32::load(p), all)
        }
    }

    impl Bytes16 {
        pub const fn from_i8(t: [i8; 16]) -> Self {
            let mut b = [0u8; 16];
            let mut i = 0;
            while i < 16 {
                b[i] = t[i] as u8;
                i += 1;
            }
            Bytes16(b)
        }
        #[inline(always)]
        pub fn codes5(qs: Bytes16, bits: u32, high: bool, signed: bool) -> Self {
            Bytes16(core::array::from_fn(|i| {
                let n = if high { qs.0[i] >> 4 } else { qs.0[i] & 0xf };
                (n | ((((bits >> i) & 1) as u8) << 4)).wrapping_sub(if signed { 16 } else { 0 })
            }))
        }
        #[inline(always)]
        pub fn lookup(self, qs: Bytes16, high: bool) -> Self {
            Bytes16(core::array::from_fn(|i| self.0[(if high { qs.0[i] >> 4 } else { qs.0[i] & 0xf }) as usize]))
        }
        #[inline(always)]
        pub fn bits(self, shift: u32, mask: u8) -> Self {
            Bytes16(self.0.map(|v| (v >> shift) & mask))
        }
        #[inline(always)]
        pub fn shl(self, n: u32) -> Self {
            Bytes16(self.0.map(|v| v << n))
        }
        #[inline(always)]
        pub fn or(self, b: Self) -> Self {
            Bytes16(core::array::from_fn(|i| self.0[i] | b.0[i]))
        }
        #[inline(always)]
        pub fn sub(self, v: u8) -> Self {
            Bytes16(self.0.map(|b| b.wrapping_sub(v)))
        }
        /// # Safety
        /// `p..p+16` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u8) -> Self {
            Bytes16(core::ptr::read_unaligned(p as *const [u8; 16]))
        }
    }

    impl F32x4 {
        #[inline(always)]
        pub fn zero() -> Self {
            F32x4([0.0; 4])
        }
        #[inline(always)]
        pub fn splat(v: f32) -> Self {
            F32x4([v; 4])
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const f32) -> Self {
            F32x4(core::ptr::read_unaligned(p as *const [f32; 4]))
        }
        /// # Safety
        /// `p..p+4` must be writable.
        #[inline(always)]
        pub unsafe fn store(self, p: *mut f32) {
            core::ptr::write_unaligned(p as *mut [f32; 4], self.0)
        }
        /// Four finite IEEE half floats (bit patterns) widened to f32, exactly
        /// (`dtype::finite_half`: the SIMD128 path's rebias by multiplication).
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_f16(p: *const u16) -> Self {
            F32x4(core::ptr::read_unaligned(p as *const [u16; 4]).map(crate::formats::dtype::finite_half))
        }
        /// # Safety
        /// Each `ps[i]..ps[i] + 4` must be readable.
        #[inline(always)]
        pub unsafe fn load_half_pairs(ps: [*const u8; 4]) -> (Self, Self) {
            let h = ps.map(|p| core::ptr::read_unaligned(p as *const [u8; 4]));
            let half = |i: usize| F32x4(h.map(|b| crate::formats::dtype::finite_half(u16::from_le_bytes([b[i], b[i + 1]]))));
            (half(0), half(2))
        }
        #[inline(always)]
        pub fn splat_lane(self, i: usize) -> Self {
            F32x4([self.0[i]; 4])
        }
        #[inline(always)]
        pub fn from_array(a: [f32; 4]) -> Self {
            F32x4(a)
        }
        #[inline(always)]
        pub fn add(self, b: Self) -> Self {
            F32x4(core::array::from_fn(|i| self.0[i] + b.0[i]))
        }
        #[inline(always)]
        pub fn mul(self, b: Self) -> Self {
            F32x4(core::array::from_fn(|i| self.0[i] * b.0[i]))
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_bf16(p: *const u16) -> Self {
            let h = core::ptr::read_unaligned(p as *const [u16; 4]);
            F32x4(h.map(|b| f32::from_bits((b as u32) << 16)))
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_i16(p: *const i16) -> Self {
            F32x4(core::ptr::read_unaligned(p as *const [i16; 4]).map(|v| v as f32))
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_i8(p: *const u8) -> Self {
            let b = core::ptr::read_unaligned(p as *const [i8; 4]);
            F32x4(b.map(|v| v as f32))
        }
        #[inline(always)]
        pub fn bytes_u8(q: Bytes16, j: usize) -> Self {
            F32x4(core::array::from_fn(|i| q.0[4 * j + i] as f32))
        }
        #[inline(always)]
        pub fn bytes_i8(q: Bytes16, j: usize) -> Self {
            F32x4(core::array::from_fn(|i| q.0[4 * j + i] as i8 as f32))
        }
        #[inline(always)]
        pub fn nibbles(q: Bytes16, sub: usize) -> Self {
            let j = 4 * (sub % 4);
            F32x4(core::array::from_fn(|i| {
                let b = q.0[j + i];
                (if sub < 4 { b & 0xf } else { b >> 4 }) as f32
            }))
        }
        /// # Safety
        /// `p..p+4` must be readable.
        #[inline(always)]
        pub unsafe fn load_nibbles<const HIGH: bool>(p: *const u8) -> Self {
            let b = core::ptr::read_unaligned(p as *const [u8; 4]);
            F32x4(b.map(|v| if HIGH { (v >> 4) as f32 } else { (v & 0xf) as f32 }))
        }
        #[inline(always)]
        pub fn mul_add(self, b: Self, acc: Self) -> Self {
            let (a, b, c) = (self.0, b.0, acc.0);
            F32x4([c[0] + a[0] * b[0], c[1] + a[1] * b[1], c[2] + a[2] * b[2], c[3] + a[3] * b[3]])
        }
        pub fn to_array(self) -> [f32; 4] {
            self.0
        }
        #[inline(always)]
        pub fn sum(self) -> f32 {
            let v = self.0;
            (v[0] + v[1]) + (v[2] + v[3])
        }
        #[inline(always)]
        pub fn sub(self, b: Self) -> Self {
            F32x4(core::array::from_fn(|i| self.0[i] - b.0[i]))
        }
        #[inline(always)]
        pub fn abs_max(self, m: Self) -> Self {
            F32x4(core::array::from_fn(|i| m.0[i].max(self.0[i].abs())))
        }
        #[inline(always)]
        pub fn max_lane(self) -> f32 {
            let v = self.0;
            v[0].max(v[1]).max(v[2].max(v[3]))
        }
        #[inline(always)]
        pub fn round(self) -> Self {
            F32x4(self.0.map(f32::round))
        }
        #[inline(always)]
        pub fn div(self, b: Self) -> Self {
            F32x4(core::array::from_fn(|i| self.0[i] / b.0[i]))
        }
        #[inline(always)]
        pub fn clamp(self, lo: f32, hi: f32) -> Self {
            F32x4(self.0.map(|v| v.max(lo).min(hi)))
        }
        #[inline(always)]
        pub fn pow2(self) -> Self {
            F32x4(self.0.map(|n| f32::from_bits(((n as i32 + 127) as u32) << 23)))
        }
        /// # Safety
        /// `p..p+8` must be writable.
        #[inline(always)]
        pub unsafe fn store_i16(a: Self, b: Self, p: *mut i16) {
            // Saturating, as trunc_sat then narrow in wasm.
            let v: [i16; 8] = core::array::from_fn(|i| if i < 4 { a.0[i] } else { b.0[i - 4] } as i16);
            core::ptr::write_unaligned(p as *mut [i16; 8], v)
        }
    }
}

pub use imp::{Bytes16, F32x4, I16x32, I32x4};

impl F32x4 {
    /// eˣ per lane, Cephes' expf (range reduction by ln 2 in two parts, degree-6 polynomial):
    /// within 2e-7 relative of the exact value for x in [-87, 88] (`tests/common`'s
    /// `check_round_and_exp`, natively and on wasm32);
    /// lanes are clamped there (e⁻⁸⁷ ≈ 1.6e-38 stands for anything smaller, e⁸⁸ for larger),
    /// and NaN or ±∞ give NaN: an overflow upstream stays visible. wasm's `f32::exp` is a
    /// libm call per value.
    #[inline(always)]
    pub fn exp(self) -> Self {
        let x = self.clamp(-87.0, 88.0);
        let n = x.mul(F32x4::splat(core::f32::consts::LOG2_E)).round();
        let r = x.sub(n.mul(F32x4::splat(0.693_359_4))).sub(n.mul(F32x4::splat(-2.121_944_4e-4)));
        let mut p = F32x4::splat(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1] {
            p = p.mul_add(r, F32x4::splat(c));
        }
        let e = p.mul_add(r.mul(r), r.add(F32x4::splat(1.0)));
        // x − x: 0, or NaN where x is NaN or infinite.
        e.mul(n.pow2()).add(self.sub(self))
    }
}
