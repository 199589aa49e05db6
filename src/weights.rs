//! Base weights as they arrive from the caller or a loader: `[rows = out, cols = in]`,
//! PyTorch layout, in one of the storage formats. Backends take a `HostWeight` by value and
//! keep or upload it in that same format: nothing is widened to f32 ahead of the kernels.

use crate::error::{check_finite, checked_len, Error, Result};

/// Storage format of a base weight. Quantized block formats (Q4_0, Q4_1, Q8_0, K-quants)
/// join here: each knows its block length and byte size, and the kernels decode it in-loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    F32,
    F16,
}

impl WeightFormat {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(WeightFormat::F32),
            "f16" => Ok(WeightFormat::F16),
            _ => Err(Error::config(format!("unknown weight dtype {s:?} (expected \"f32\" or \"f16\")"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::F16 => "f16",
        }
    }
    /// Bytes taken by `elems` consecutive weights.
    pub fn bytes_for(self, elems: usize) -> usize {
        match self {
            WeightFormat::F32 => elems * 4,
            WeightFormat::F16 => elems * 2,
        }
    }
}

#[derive(Clone, Debug)]
pub enum WeightData {
    F32(Vec<f32>),
    /// IEEE binary16 bit patterns.
    F16(Vec<u16>),
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
        let want = checked_len("weight", &[rows, cols])?;
        let (len, fmt) = match &data {
            WeightData::F32(v) => (v.len(), WeightFormat::F32),
            WeightData::F16(v) => (v.len(), WeightFormat::F16),
        };
        if len != want {
            return Err(Error::shape(format!(
                "weight has {len} {} values, expected outFeatures*inFeatures = {rows}*{cols} = {want}",
                fmt.name()
            )));
        }
        match &data {
            WeightData::F32(v) => check_finite("weight", v)?,
            WeightData::F16(v) => {
                if let Some(i) = v.iter().position(|&h| h & 0x7c00 == 0x7c00) {
                    return Err(Error::config(format!("weight: f16 element {i} is NaN or infinite")));
                }
            }
        }
        Ok(HostWeight { rows, cols, data })
    }

    pub fn format(&self) -> WeightFormat {
        match self.data {
            WeightData::F32(_) => WeightFormat::F32,
            WeightData::F16(_) => WeightFormat::F16,
        }
    }

    /// The raw little-endian bytes, as the GPU wants them.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            WeightData::F32(v) => bytemuck::cast_slice(v),
            WeightData::F16(v) => bytemuck::cast_slice(v),
        }
    }

    /// Bytes a matmul reads once over the whole weight.
    pub fn byte_len(&self) -> usize {
        self.format().bytes_for(self.rows * self.cols)
    }

    /// One row widened to f32 (for references and tests, not the hot path).
    pub fn row_f32(&self, r: usize) -> Vec<f32> {
        let range = r * self.cols..(r + 1) * self.cols;
        match &self.data {
            WeightData::F32(v) => v[range].to_vec(),
            WeightData::F16(v) => v[range].iter().map(|&h| half::f16::from_bits(h).to_f32()).collect(),
        }
    }
}
