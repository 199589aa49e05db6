//! The storage formats of base weights (f32, f16, bf16 and GGML's blocks) and their scalar
//! decoding: the reference the SIMD and WGSL kernels are tested against, and the path for
//! rare whole-row reads (embedding lookups, tests).

use crate::error::{Error, Result};

/// Storage format of a base weight. Block formats store `block().0` weights in
/// `block().1` bytes (GGUF's layouts); the kernels decode them in-loop. Every block format
/// is affine per group of `group()` weights: weight = d_g·code + m_g (`group_scale`, `code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum WeightFormat {
    F32,
    F16,
    BF16,
    /// 32 weights: f16 scale d, 32 × i8; w = d·q.
    Q8_0,
    /// 32 weights: f16 scale d, 16 bytes of nibbles; w = d·(q − 8).
    Q4_0,
    /// 32 weights: f16 scale d, f16 min m, 16 bytes of nibbles; w = d·q + m.
    Q4_1,
    /// 32 weights: f16 d, 32 fifth bits (u32), 16 bytes of nibbles; w = d·(q − 16).
    Q5_0,
    /// 32 weights: f16 d, f16 m, 32 fifth bits, 16 bytes of nibbles; w = d·q + m.
    Q5_1,
    /// 32 weights: f16 d, 16 bytes of nibbles indexing a fixed non-linear table.
    IQ4_NL,
    /// 256 weights in 16 groups of 16: 4-bit scale and min per group, 2-bit codes, f16 d and dmin.
    Q2_K,
    /// 256 weights in 16 groups of 16: a high-bit mask, 2-bit codes, 6-bit signed scales, f16 d.
    Q3_K,
    /// 256 weights in 8 groups of 32: f16 d and dmin, 6-bit scales and mins, 4-bit codes.
    Q4_K,
    /// As Q4_K with a fifth bit per weight.
    Q5_K,
    /// 256 weights in 16 groups of 16: 6-bit codes (4 + 2 bits), i8 scales, f16 d.
    Q6_K,
}

/// IQ4_NL's code table (llama.cpp's kvalues_iq4nl).
pub const IQ4_NL_VALUES: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

impl WeightFormat {
    pub const ALL: [WeightFormat; 14] = [
        WeightFormat::F32,
        WeightFormat::F16,
        WeightFormat::BF16,
        WeightFormat::Q8_0,
        WeightFormat::Q4_0,
        WeightFormat::Q4_1,
        WeightFormat::Q5_0,
        WeightFormat::Q5_1,
        WeightFormat::IQ4_NL,
        WeightFormat::Q2_K,
        WeightFormat::Q3_K,
        WeightFormat::Q4_K,
        WeightFormat::Q5_K,
        WeightFormat::Q6_K,
    ];

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s.to_ascii_lowercase()).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|f| f.name()).collect();
            Error::config(format!("unknown weight dtype {s:?} (expected one of {})", names.join(", ")))
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::F16 => "f16",
            WeightFormat::BF16 => "bf16",
            WeightFormat::Q8_0 => "q8_0",
            WeightFormat::Q4_0 => "q4_0",
            WeightFormat::Q4_1 => "q4_1",
            WeightFormat::Q5_0 => "q5_0",
            WeightFormat::Q5_1 => "q5_1",
            WeightFormat::IQ4_NL => "iq4_nl",
            WeightFormat::Q2_K => "q2_k",
            WeightFormat::Q3_K => "q3_k",
            WeightFormat::Q4_K => "q4_k",
            WeightFormat::Q5_K => "q5_k",
            WeightFormat::Q6_K => "q6_k",
        }
    }

    /// (weights per block, bytes per block).
    pub const fn block(self) -> (usize, usize) {
        match self {
            WeightFormat::F32 => (1, 4),
            WeightFormat::F16 | WeightFormat::BF16 => (1, 2),
            WeightFormat::Q8_0 => (32, 34),
            WeightFormat::Q4_0 | WeightFormat::IQ4_NL => (32, 18),
            WeightFormat::Q4_1 => (32, 20),
            WeightFormat::Q5_0 => (32, 22),
            WeightFormat::Q5_1 => (32, 24),
            WeightFormat::Q2_K => (256, 84),
            WeightFormat::Q3_K => (256, 110),
            WeightFormat::Q4_K => (256, 144),
            WeightFormat::Q5_K => (256, 176),
            WeightFormat::Q6_K => (256, 210),
        }
    }

    /// Weights sharing one (d, m) pair: the whole block, or a K-quant's sub-block.
    pub const fn group(self) -> usize {
        match self {
            WeightFormat::Q2_K | WeightFormat::Q3_K | WeightFormat::Q6_K => 16,
            WeightFormat::Q4_K | WeightFormat::Q5_K => 32,
            f => f.block().0,
        }
    }

    /// Byte offsets of a block's f16 fields (scales, mins), which must be finite.
    pub fn halves(self) -> &'static [usize] {
        match self {
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::BF16 => &[],
            WeightFormat::Q8_0 | WeightFormat::Q4_0 | WeightFormat::Q5_0 | WeightFormat::IQ4_NL => &[0],
            WeightFormat::Q4_1 | WeightFormat::Q5_1 | WeightFormat::Q4_K | WeightFormat::Q5_K => &[0, 2],
            WeightFormat::Q2_K => &[80, 82],
            WeightFormat::Q3_K => &[108],
            WeightFormat::Q6_K => &[208],
        }
    }

    /// Bytes taken by `elems` consecutive weights (a whole number of blocks).
    pub fn bytes_for(self, elems: usize) -> usize {
        let (n, b) = self.block();
        elems / n * b
    }
}

/// Q4_K/Q5_K's 6-bit scale and min of group `g` (0..8) from the 12 packed bytes
/// (llama.cpp's get_scale_min_k4).
pub fn scale_min_k4(s: &[u8], g: usize) -> (u8, u8) {
    if g < 4 {
        (s[g] & 63, s[g + 4] & 63)
    } else {
        ((s[g + 4] & 0xf) | ((s[g - 4] >> 6) << 4), (s[g + 4] >> 4) | ((s[g] >> 6) << 4))
    }
}

/// Q3_K's signed 6-bit scale of group `g` (0..16) from its 12 packed bytes.
pub fn scale_q3k(s: &[u8], g: usize) -> i32 {
    let lo = (s[g % 8] >> (4 * (g / 8))) & 0xf;
    let hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
    (lo | (hi << 4)) as i32 - 32
}

/// A finite f16 (block scales are checked finite at load) as f32, exactly, subnormals
/// included: the exponent rebased by a multiply, a few instructions where wasm has no f16
/// conversion (the CPU kernels decode every block's scales with it). Measured in V8 against
/// this form: the sign in the bits before the multiply, or normals by integer ops with a cold
/// path for subnormals, were both up to 10% slower on Q4_1/Q8_0 decode matvecs.
#[inline(always)]
pub fn finite_half(bits: u16) -> f32 {
    let h = bits as u32;
    let mag = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits(0x7780_0000);
    f32::from_bits(mag.to_bits() | ((h & 0x8000) << 16))
}

/// Group `g`'s (d, m) of a block (its scales finite): weight = d·code + m. The products are
/// formed as gguf-py forms them ((d·scale)·q − dmin·min), so decoding matches its values.
#[inline(always)]
pub fn group_scale(fmt: WeightFormat, b: &[u8], g: usize) -> (f32, f32) {
    let h = |i: usize| finite_half(u16::from_le_bytes([b[i], b[i + 1]]));
    match fmt {
        WeightFormat::F32 | WeightFormat::F16 | WeightFormat::BF16 => (1.0, 0.0),
        WeightFormat::Q8_0 | WeightFormat::Q5_0 | WeightFormat::IQ4_NL => (h(0), 0.0),
        WeightFormat::Q4_0 => (h(0), -8.0 * h(0)),
        WeightFormat::Q4_1 | WeightFormat::Q5_1 => (h(0), h(2)),
        WeightFormat::Q2_K => (h(80) * (b[g] & 0xf) as f32, -(h(82) * (b[g] >> 4) as f32)),
        WeightFormat::Q3_K => (h(108) * scale_q3k(&b[96..108], g) as f32, 0.0),
        WeightFormat::Q4_K | WeightFormat::Q5_K => {
            let (sc, m) = scale_min_k4(&b[4..16], g);
            (h(0) * sc as f32, -(h(2) * m as f32))
        }
        WeightFormat::Q6_K => (h(208) * b[192 + g] as i8 as f32, 0.0),
    }
}

/// The code of weight `k` (0..block) of a block format's block, as `group_scale` scales it.
pub fn code(fmt: WeightFormat, b: &[u8], k: usize) -> f32 {
    let nib = |at: usize, high: bool| if high { b[at] >> 4 } else { b[at] & 0xf };
    let bit = |at: usize, i: usize| (b[at] >> i) & 1;
    match fmt {
        WeightFormat::F32 | WeightFormat::F16 | WeightFormat::BF16 => unreachable!("not a block format"),
        WeightFormat::Q8_0 => b[2 + k] as i8 as f32,
        WeightFormat::Q4_0 | WeightFormat::Q4_1 => nib(2 + 2 * (fmt == WeightFormat::Q4_1) as usize + k % 16, k >= 16) as f32,
        WeightFormat::IQ4_NL => IQ4_NL_VALUES[nib(2 + k % 16, k >= 16) as usize] as f32,
        WeightFormat::Q5_0 | WeightFormat::Q5_1 => {
            let (qh, qs) = if fmt == WeightFormat::Q5_0 { (2, 6) } else { (4, 8) };
            let q = nib(qs + k % 16, k >= 16) | (bit(qh + k / 8, k % 8) << 4);
            if fmt == WeightFormat::Q5_0 { q as f32 - 16.0 } else { q as f32 }
        }
        WeightFormat::Q2_K | WeightFormat::Q3_K => {
            let qs = if fmt == WeightFormat::Q2_K { 16 } else { 32 };
            let (h, r) = (k / 128, k % 128);
            let q = ((b[qs + 32 * h + r % 32] >> (2 * (r / 32))) & 3) as i32;
            if fmt == WeightFormat::Q2_K { q as f32 } else { (q - 4 * (1 - bit(k % 32, k / 32)) as i32) as f32 }
        }
        WeightFormat::Q4_K | WeightFormat::Q5_K => {
            let qs = if fmt == WeightFormat::Q4_K { 16 } else { 48 };
            let g = k / 32;
            let q = nib(qs + 32 * (g / 2) + k % 32, g % 2 == 1);
            if fmt == WeightFormat::Q4_K { q as f32 } else { (q | (bit(16 + k % 32, g) << 4)) as f32 }
        }
        WeightFormat::Q6_K => {
            let (h, r) = (k / 128, k % 128);
            let lo = nib(64 * h + r % 64, r >= 64);
            let hi = (b[128 + 32 * h + r % 32] >> (2 * (r / 32))) & 3;
            ((lo | (hi << 4)) as i32 - 32) as f32
        }
    }
}

fn half(b: &[u8], i: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Decodes `out.len()` weights of `fmt` from `bytes` (whole blocks).
pub fn dequantize(fmt: WeightFormat, bytes: &[u8], out: &mut [f32]) {
    match fmt {
        WeightFormat::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        WeightFormat::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half(b, 0);
            }
        }
        WeightFormat::BF16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
            }
        }
        _ => {
            let (per, size, group) = (fmt.block().0, fmt.block().1, fmt.group());
            for (o, b) in out.chunks_exact_mut(per).zip(bytes.chunks_exact(size)) {
                for (g, og) in o.chunks_exact_mut(group).enumerate() {
                    let (d, m) = group_scale(fmt, b, g);
                    for (j, v) in og.iter_mut().enumerate() {
                        *v = d * code(fmt, b, g * group + j) + m;
                    }
                }
            }
        }
    }
}

/// 32 codes of 0..16 as 16 bytes: byte j holds code j (low nibble) and code j + 16 (high).
fn nibbles32(q: &[u8]) -> impl Iterator<Item = u8> + '_ {
    (0..16).map(move |j| (q[j] & 0xf) | ((q[j + 16] & 0xf) << 4))
}

/// The fifth bits of 32 codes as a little-endian u32.
fn fifth_bits(q: &[u8]) -> [u8; 4] {
    q.iter().enumerate().fold(0u32, |acc, (j, &c)| acc | (((c >> 4) as u32 & 1) << j)).to_le_bytes()
}

/// The value of largest magnitude, with its sign.
fn signed_max(b: &[f32]) -> f32 {
    b.iter().fold(0f32, |m, &x| if x.abs() > m.abs() { x } else { m })
}

/// `x / s` rounded into `lo..=hi` (0 when s is 0).
fn code_of(x: f32, s: f32, lo: i32, hi: i32) -> i32 {
    if s == 0.0 { 0.max(lo) } else { ((x / s).round() as i32).clamp(lo, hi) }
}

/// A K-quant's per-group (scale, min) with `levels` codes above the min: the min is ≤ 0 and
/// the codes span the group's range.
fn group_ranges(b: &[f32], group: usize, levels: f32) -> Vec<(f32, f32)> {
    b.chunks_exact(group)
        .map(|g| {
            let lo = g.iter().fold(0f32, |m, &x| m.min(x));
            let hi = g.iter().fold(lo, |m, &x| m.max(x));
            ((hi - lo) / levels, -lo)
        })
        .collect()
}

/// Super-block scale for `max` over `steps`, rounded to f16 as stored, and the integer
/// steps of each value under it.
fn super_scale(vals: impl Iterator<Item = f32> + Clone, steps: f32, lo: i32, hi: i32) -> (f32, Vec<i32>) {
    let max = vals.clone().fold(0f32, |m, x| m.max(x.abs()));
    let d = half::f16::from_f32(max / steps).to_f32();
    (d, vals.map(|x| code_of(x, d, lo, hi)).collect())
}

/// Encodes f32 weights in block format `fmt` (whole blocks), round to nearest: the 32-weight
/// formats as llama.cpp's reference quantizers do, the K-quants with plain min/max scales per
/// group (valid files, not llama.cpp's searched scales): `WeightData::quantize`.
pub fn quantize_blocks(fmt: WeightFormat, v: &[f32]) -> Vec<u8> {
    let h = |x: f32| half::f16::from_f32(x).to_bits().to_le_bytes();
    let (per, size) = fmt.block();
    let mut bytes = Vec::with_capacity(v.len() / per * size);
    match fmt {
        WeightFormat::F32 | WeightFormat::F16 | WeightFormat::BF16 => unreachable!("{} is not a block format", fmt.name()),
        WeightFormat::Q8_0 => {
            for b in v.chunks_exact(per) {
                let amax = b.iter().fold(0f32, |m, x| m.max(x.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                bytes.extend(h(d));
                bytes.extend(b.iter().map(|x| (x * id).round() as i8 as u8));
            }
        }
        WeightFormat::Q4_0 => {
            for b in v.chunks_exact(per) {
                // The signed value of largest magnitude maps to -8.
                let max = b.iter().fold(0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q = |x: f32| ((x * id + 8.5) as u8).min(15);
                bytes.extend(h(d));
                bytes.extend((0..16).map(|j| q(b[j]) | (q(b[j + 16]) << 4)));
            }
        }
        WeightFormat::Q4_1 => {
            for b in v.chunks_exact(per) {
                let (min, max) = b.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q = |x: f32| (((x - min) * id + 0.5) as u8).min(15);
                bytes.extend(h(d));
                bytes.extend(h(min));
                bytes.extend((0..16).map(|j| q(b[j]) | (q(b[j + 16]) << 4)));
            }
        }
        WeightFormat::Q5_0 => {
            for b in v.chunks_exact(per) {
                let d = signed_max(b) / -16.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q: Vec<u8> = b.iter().map(|x| ((x * id + 16.5) as u8).min(31)).collect();
                bytes.extend(h(d));
                bytes.extend(fifth_bits(&q));
                bytes.extend(nibbles32(&q));
            }
        }
        WeightFormat::Q5_1 => {
            for b in v.chunks_exact(per) {
                let (min, max) = b.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                let d = (max - min) / 31.0;
                let q: Vec<u8> = b.iter().map(|&x| code_of(x - min, d, 0, 31) as u8).collect();
                bytes.extend(h(d));
                bytes.extend(h(min));
                bytes.extend(fifth_bits(&q));
                bytes.extend(nibbles32(&q));
            }
        }
        WeightFormat::IQ4_NL => {
            for b in v.chunks_exact(per) {
                let d = half::f16::from_f32(signed_max(b) / IQ4_NL_VALUES[0] as f32).to_f32();
                let nearest = |x: f32| (0..16u8).min_by(|&i, &j| (d * IQ4_NL_VALUES[i as usize] as f32 - x).abs().total_cmp(&(d * IQ4_NL_VALUES[j as usize] as f32 - x).abs())).unwrap();
                let q: Vec<u8> = b.iter().map(|&x| nearest(x)).collect();
                bytes.extend(h(d));
                bytes.extend(nibbles32(&q));
            }
        }
        WeightFormat::Q4_K | WeightFormat::Q5_K => {
            let levels = if fmt == WeightFormat::Q4_K { 15 } else { 31 };
            for b in v.chunks_exact(per) {
                let r = group_ranges(b, 32, levels as f32);
                let (d, sc) = super_scale(r.iter().map(|g| g.0), 63.0, 0, 63);
                let (dmin, m) = super_scale(r.iter().map(|g| g.1), 63.0, 0, 63);
                let q: Vec<u8> = b.iter().enumerate().map(|(k, &x)| code_of(x + dmin * m[k / 32] as f32, d * sc[k / 32] as f32, 0, levels) as u8).collect();
                let (sc, m): (Vec<u8>, Vec<u8>) = (sc.iter().map(|&x| x as u8).collect(), m.iter().map(|&x| x as u8).collect());
                bytes.extend(h(d));
                bytes.extend(h(dmin));
                bytes.extend((0..4).map(|j| sc[j] | ((sc[j + 4] >> 4) << 6)));
                bytes.extend((0..4).map(|j| m[j] | ((m[j + 4] >> 4) << 6)));
                bytes.extend((4..8).map(|j| (sc[j] & 0xf) | ((m[j] & 0xf) << 4)));
                if fmt == WeightFormat::Q5_K {
                    bytes.extend((0..32).map(|i| (0..8).fold(0u8, |acc, g| acc | (((q[32 * g + i] >> 4) & 1) << g))));
                }
                bytes.extend((0..128).map(|i| (q[64 * (i / 32) + i % 32] & 0xf) | ((q[64 * (i / 32) + 32 + i % 32] & 0xf) << 4)));
            }
        }
        WeightFormat::Q6_K => {
            for b in v.chunks_exact(per) {
                let groups: Vec<f32> = b.chunks_exact(16).map(|g| signed_max(g) / -32.0).collect();
                let (d, sc) = super_scale(groups.iter().copied(), 127.0, -127, 127);
                let q: Vec<u8> = b.iter().enumerate().map(|(k, &x)| (code_of(x, d * sc[k / 16] as f32, -32, 31) + 32) as u8).collect();
                // ql: byte 64h + i holds weight 128h + i (low) and 128h + 64 + i (high).
                bytes.extend((0..128).map(|i| {
                    let (h, i) = (i / 64, i % 64);
                    (q[128 * h + i] & 0xf) | ((q[128 * h + 64 + i] & 0xf) << 4)
                }));
                // qh: byte 32h + i holds the top two bits of weights 128h + 32s + i at bits 2s.
                bytes.extend((0..64).map(|i| {
                    let (h, i) = (i / 32, i % 32);
                    (0..4).fold(0u8, |acc, s| acc | ((q[128 * h + 32 * s + i] >> 4) << (2 * s)))
                }));
                bytes.extend(sc.iter().map(|&x| x as i8 as u8));
                bytes.extend(h(d));
            }
        }
        WeightFormat::Q2_K => {
            for b in v.chunks_exact(per) {
                let r = group_ranges(b, 16, 3.0);
                let (d, sc) = super_scale(r.iter().map(|g| g.0), 15.0, 0, 15);
                let (dmin, m) = super_scale(r.iter().map(|g| g.1), 15.0, 0, 15);
                let q: Vec<u8> = b.iter().enumerate().map(|(k, &x)| code_of(x + dmin * m[k / 16] as f32, d * sc[k / 16] as f32, 0, 3) as u8).collect();
                bytes.extend((0..16).map(|g| sc[g] as u8 | ((m[g] as u8) << 4)));
                bytes.extend(two_bits(&q));
                bytes.extend(h(d));
                bytes.extend(h(dmin));
            }
        }
        WeightFormat::Q3_K => {
            for b in v.chunks_exact(per) {
                let groups: Vec<f32> = b.chunks_exact(16).map(|g| signed_max(g) / -4.0).collect();
                let (d, sc) = super_scale(groups.iter().copied(), 31.0, -32, 31);
                let u: Vec<u8> = b.iter().enumerate().map(|(k, &x)| (code_of(x, d * sc[k / 16] as f32, -4, 3) + 4) as u8).collect();
                bytes.extend((0..32).map(|i| (0..8).fold(0u8, |acc, j| acc | (((u[32 * j + i] >> 2) & 1) << j))));
                bytes.extend(two_bits(&u));
                let sc6: Vec<u8> = sc.iter().map(|&x| (x + 32) as u8).collect();
                bytes.extend((0..8).map(|i| (sc6[i] & 0xf) | ((sc6[i + 8] & 0xf) << 4)));
                bytes.extend((0..4).map(|i| (0..4).fold(0u8, |acc, j| acc | ((sc6[4 * j + i] >> 4) << (2 * j)))));
                bytes.extend(h(d));
            }
        }
    }
    bytes
}

/// Q2_K/Q3_K's 2-bit codes of 256 weights: byte 32h + i holds weights 128h + 32s + i at
/// bits 2s.
fn two_bits(q: &[u8]) -> impl Iterator<Item = u8> + '_ {
    (0..64).map(move |i| {
        let (h, i) = (i / 32, i % 32);
        (0..4).fold(0u8, |acc, s| acc | ((q[128 * h + 32 * s + i] & 3) << (2 * s)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str, ext: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/quant/{name}.{ext}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// Every finite f16 bit pattern (subnormals, both zeros) widens exactly.
    #[test]
    fn finite_half_is_exact() {
        for bits in (0..=u16::MAX).filter(|b| b & 0x7c00 != 0x7c00) {
            assert_eq!(finite_half(bits).to_bits(), half::f16::from_bits(bits).to_f32().to_bits(), "{bits:#06x}");
        }
    }

    /// The scalar decoder equals gguf-py's dequantization of random blocks of every block
    /// format (tests/fixtures/make_quant_blocks.py): bit for bit, the products being formed
    /// in the same order, except Q4_0 (d·q − 8d here, d·(q − 8) there: within an ulp of d·8).
    #[test]
    fn dequantize_matches_gguf_py() {
        for f in WeightFormat::ALL.into_iter().filter(|f| f.block().0 > 1) {
            let (bytes, want) = (fixture(f.name(), "bin"), fixture(f.name(), "f32"));
            let want: Vec<f32> = want.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            assert_eq!(want.len(), bytes.len() / f.block().1 * f.block().0, "{f:?}");
            let mut got = vec![0.0; want.len()];
            dequantize(f, &bytes, &mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let ok = if f == WeightFormat::Q4_0 { (g - w).abs() <= 1e-6 * w.abs().max(1e-3) } else { g.to_bits() == w.to_bits() || (*g == 0.0 && *w == 0.0) };
                assert!(ok, "{f:?} weight {i}: {g} vs gguf-py {w}");
            }
            assert!(want.iter().filter(|v| **v != 0.0).count() > want.len() / 2, "{f:?}: a fixture of mostly zeros");
        }
    }

    /// quantize_blocks writes what the decoder reads: random weights come back within the
    /// format's precision (relative L2).
    #[test]
    fn quantize_round_trips_every_block_format() {
        let mut seed = 7u64;
        let v: Vec<f32> = (0..4096)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
            })
            .collect();
        for (f, bound) in [
            // Measured on these uniform weights: 0.0038, 0.065, 0.060, 0.031, 0.030, 0.069,
            // 0.28, 0.135, 0.060, 0.029, 0.015 (about a step over √12 per format's levels).
            (WeightFormat::Q8_0, 0.005),
            (WeightFormat::Q4_0, 0.08),
            (WeightFormat::Q4_1, 0.075),
            (WeightFormat::Q5_0, 0.04),
            (WeightFormat::Q5_1, 0.037),
            (WeightFormat::IQ4_NL, 0.085),
            (WeightFormat::Q2_K, 0.34),
            (WeightFormat::Q3_K, 0.17),
            (WeightFormat::Q4_K, 0.075),
            (WeightFormat::Q5_K, 0.037),
            (WeightFormat::Q6_K, 0.018),
        ] {
            let bytes = quantize_blocks(f, &v);
            assert_eq!(bytes.len(), f.bytes_for(v.len()), "{f:?}");
            let mut back = vec![0.0; v.len()];
            dequantize(f, &bytes, &mut back);
            let num: f64 = v.iter().zip(&back).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
            let den: f64 = v.iter().map(|a| (*a as f64).powi(2)).sum();
            let rel = (num / den).sqrt();
            eprintln!("{f:?}: round trip rel L2 {rel:.4}");
            assert!(rel < bound, "{f:?}: {rel}");
        }
    }
}
