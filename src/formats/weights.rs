//! Base weights as they arrive from the caller or a loader: `[rows = out, cols = in]`,
//! PyTorch layout, in one of the storage formats. Backends take a `HostWeight` by value and
//! keep or upload it in that same format: nothing is widened to f32 ahead of the kernels.

pub use super::dtype::WeightFormat;
use super::dtype;
use crate::error::{check_finite, checked_len, Error, Result};

#[derive(Clone, Debug)]
pub enum WeightData {
    F32(Vec<f32>),
    /// IEEE binary16 bit patterns.
    F16(Vec<u16>),
    /// bfloat16 bit patterns (the top half of an f32).
    BF16(Vec<u16>),
    /// Whole blocks of a block format, row after row.
    Blocks(WeightFormat, Vec<u8>),
}

impl WeightData {
    /// `v` encoded in `fmt`, block formats the way llama.cpp's reference quantizers do
    /// (round to nearest): for tests, benchmarks and fixtures, not for loading models.
    pub fn quantize(fmt: WeightFormat, v: &[f32]) -> WeightData {
        match fmt {
            WeightFormat::F32 => WeightData::F32(v.to_vec()),
            WeightFormat::F16 => WeightData::F16(v.iter().map(|&x| half::f16::from_f32(x).to_bits()).collect()),
            WeightFormat::BF16 => WeightData::BF16(v.iter().map(|&x| half::bf16::from_f32(x).to_bits()).collect()),
            _ => WeightData::Blocks(fmt, dtype::quantize_blocks(fmt, v)),
        }
    }
}

#[derive(Clone, Debug)]
pub struct HostWeight {
    pub rows: usize,
    pub cols: usize,
    pub data: WeightData,
}

impl HostWeight {
    pub fn new(rows: usize, cols: usize, data: WeightData) -> Result<Self> {
        if rows == 0 || cols == 0 {
            return Err(Error::shape(format!("weight shape [{rows}, {cols}] has a zero dimension")));
        }
        let elems = checked_len("weight", &[rows, cols])?;
        let format = data_format(&data);
        let (per_block, block_bytes) = format.block();
        if cols % per_block != 0 {
            return Err(Error::shape(format!(
                "{} weight rows must hold whole blocks of {per_block}, got {cols} columns",
                format.name()
            )));
        }
        let (have, want) = match &data {
            WeightData::F32(v) => (v.len(), elems),
            WeightData::F16(v) | WeightData::BF16(v) => (v.len(), elems),
            WeightData::Blocks(_, v) => (v.len(), elems / per_block * block_bytes),
        };
        if have != want {
            let unit = if matches!(data, WeightData::Blocks(..)) { "bytes" } else { "values" };
            return Err(Error::shape(format!(
                "weight has {have} {} {unit}, expected {want} for [{rows}, {cols}]",
                format.name()
            )));
        }
        match &data {
            WeightData::F32(v) => check_finite("weight", v)?,
            WeightData::F16(v) => check_halves("weight", v.iter().copied(), 0x7c00)?,
            WeightData::BF16(v) => check_halves("weight", v.iter().copied(), 0x7f80)?,
            WeightData::Blocks(f, v) if f.block().0 > 1 => {
                // The blocks' f16 scales and mins.
                let halves = v.chunks_exact(block_bytes).flat_map(|b| f.halves().iter().map(move |&i| half_at(b, i)));
                check_halves("weight block scales", halves, 0x7c00)?
            }
            WeightData::Blocks(f, _) => {
                return Err(Error::config(format!("{} is not a block format", f.name())));
            }
        }
        Ok(HostWeight { rows, cols, data })
    }

    pub fn format(&self) -> WeightFormat {
        data_format(&self.data)
    }

    /// The raw little-endian bytes, as stored.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            WeightData::F32(v) => bytemuck::cast_slice(v),
            WeightData::F16(v) | WeightData::BF16(v) => bytemuck::cast_slice(v),
            WeightData::Blocks(_, v) => v,
        }
    }

    /// Bytes a matmul reads once over the whole weight.
    pub fn byte_len(&self) -> usize {
        self.format().bytes_for(self.rows * self.cols)
    }

    /// Rows of this weight, in any order: row `i` of the result is row `src[i]` (a
    /// permutation, or a slice of a fused weight).
    pub fn gather_rows(&self, src: &[usize]) -> HostWeight {
        // Sized once: a collected flat_map grows by doubling, and the slack stayed held
        // (3.5 MiB over SmolLM2's un-permuted q/k weights).
        fn gather<T: Copy>(v: &[T], unit: usize, src: &[usize]) -> Vec<T> {
            let mut out = Vec::with_capacity(src.len() * unit);
            for &r in src {
                out.extend_from_slice(&v[r * unit..(r + 1) * unit]);
            }
            out
        }
        let (cols, fmt) = (self.cols, self.format());
        let data = match &self.data {
            WeightData::F32(v) => WeightData::F32(gather(v, cols, src)),
            WeightData::F16(v) => WeightData::F16(gather(v, cols, src)),
            WeightData::BF16(v) => WeightData::BF16(gather(v, cols, src)),
            WeightData::Blocks(f, v) => WeightData::Blocks(*f, gather(v, fmt.bytes_for(cols), src)),
        };
        HostWeight { rows: src.len(), cols, data }
    }

    /// Rows `start..end`.
    pub fn slice_rows(&self, start: usize, end: usize) -> HostWeight {
        self.gather_rows(&(start..end).collect::<Vec<_>>())
    }

    /// One row widened to f32 (scalar reference decode; not the hot path).
    pub fn row_f32(&self, r: usize) -> Vec<f32> {
        let fmt = self.format();
        let row_bytes = fmt.bytes_for(self.cols);
        let mut out = vec![0.0; self.cols];
        dtype::dequantize(fmt, &self.bytes()[r * row_bytes..(r + 1) * row_bytes], &mut out);
        out
    }
}

fn data_format(d: &WeightData) -> WeightFormat {
    match d {
        WeightData::F32(_) => WeightFormat::F32,
        WeightData::F16(_) => WeightFormat::F16,
        WeightData::BF16(_) => WeightFormat::BF16,
        WeightData::Blocks(f, _) => *f,
    }
}

fn half_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

/// Rejects Inf/NaN in 16-bit floats (`exp_mask`: 0x7c00 for f16, 0x7f80 for bf16).
fn check_halves(what: &str, v: impl Iterator<Item = u16>, exp_mask: u16) -> Result<()> {
    for (i, h) in v.enumerate() {
        if h & exp_mask == exp_mask {
            return Err(Error::config(format!("{what}: element {i} is NaN or infinite")));
        }
    }
    Ok(())
}
