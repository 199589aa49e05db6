//! Scalar decoding of every weight format: the reference the SIMD kernels are tested
//! against, and the path for rare whole-row reads (embedding lookups, tests).

use crate::weights::{WeightData, WeightFormat};

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

/// Encodes f32 weights in `fmt` the way llama.cpp's reference quantizers do (round to
/// nearest): for tests, benchmarks and fixtures, not for loading models.
pub fn quantize(fmt: WeightFormat, v: &[f32]) -> WeightData {
    let h = |x: f32| half::f16::from_f32(x).to_bits().to_le_bytes();
    let (per, size) = fmt.block();
    let mut bytes = Vec::with_capacity(v.len() / per * size);
    match fmt {
        WeightFormat::F32 => return WeightData::F32(v.to_vec()),
        WeightFormat::F16 => return WeightData::F16(v.iter().map(|&x| half::f16::from_f32(x).to_bits()).collect()),
        WeightFormat::BF16 => return WeightData::BF16(v.iter().map(|&x| half::bf16::from_f32(x).to_bits()).collect()),
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
    WeightData::Blocks(fmt, bytes)
}
