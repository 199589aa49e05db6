//! The storage formats of base weights (f32, f16, bf16 and GGML's blocks) and their scalar
//! decoding: the reference the SIMD and WGSL kernels are tested against, and the path for
//! rare whole-row reads (embedding lookups, tests).

use crate::error::{Error, Result};

/// Storage format of a base weight. Block formats store `block().0` weights in
/// `block().1` bytes (GGUF's layouts); the kernels decode them in-loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
}

impl WeightFormat {
    pub const ALL: [WeightFormat; 6] =
        [WeightFormat::F32, WeightFormat::F16, WeightFormat::BF16, WeightFormat::Q8_0, WeightFormat::Q4_0, WeightFormat::Q4_1];

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
        }
    }

    /// (weights per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        match self {
            WeightFormat::F32 => (1, 4),
            WeightFormat::F16 | WeightFormat::BF16 => (1, 2),
            WeightFormat::Q8_0 => (32, 34),
            WeightFormat::Q4_0 => (32, 18),
            WeightFormat::Q4_1 => (32, 20),
        }
    }

    /// Bytes taken by `elems` consecutive weights (a whole number of blocks).
    pub fn bytes_for(self, elems: usize) -> usize {
        let (n, b) = self.block();
        elems / n * b
    }
}


fn half(b: &[u8], i: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Decodes `out.len()` weights of `fmt` from `bytes` (whole blocks).
pub fn dequantize(fmt: WeightFormat, bytes: &[u8], out: &mut [f32]) {
    let (per, size) = fmt.block();
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
        WeightFormat::Q8_0 => {
            for (o, b) in out.chunks_exact_mut(per).zip(bytes.chunks_exact(size)) {
                let d = half(b, 0);
                for (j, v) in o.iter_mut().enumerate() {
                    *v = d * (b[2 + j] as i8) as f32;
                }
            }
        }
        WeightFormat::Q4_0 | WeightFormat::Q4_1 => {
            let qs_at = if fmt == WeightFormat::Q4_0 { 2 } else { 4 };
            for (o, b) in out.chunks_exact_mut(per).zip(bytes.chunks_exact(size)) {
                let d = half(b, 0);
                let m = if fmt == WeightFormat::Q4_0 { -8.0 * d } else { half(b, 2) };
                // Byte j holds weight j (low nibble) and weight j + 16 (high nibble).
                for j in 0..16 {
                    let q = b[qs_at + j];
                    o[j] = d * (q & 0xf) as f32 + m;
                    o[j + 16] = d * (q >> 4) as f32 + m;
                }
            }
        }
    }
}

/// Encodes f32 weights in block format `fmt` (whole blocks) the way llama.cpp's reference
/// quantizers do (round to nearest): `WeightData::quantize`.
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
    }
    bytes
}
