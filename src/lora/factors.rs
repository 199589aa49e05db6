//! How an arena stores adapter factors (A, B), shared by both backends so that a format
//! means the same numbers everywhere. DoRA gains are f32 words in every format.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FactorFormat {
    /// Exact: PEFT's f32 results.
    #[default]
    F32,
    /// Two halves per word, about 3 significant digits (WebGPU only: widening f16 in wasm
    /// costs more than the bytes it saves).
    F16,
    /// Signed 16-bit codes, two per word, then one f32 scale per rank: rank j of A and of B
    /// each map their largest magnitude to ±32767. Half the bytes, and more exact than f16
    /// unless a rank holds outliers (its largest value sets its step). Both scales of rank j
    /// fold into the shrink's `T[j]`, so the expand widens a code with one conversion.
    I16,
}

impl FactorFormat {
    pub fn parse(s: &str) -> Result<FactorFormat> {
        match s {
            "f32" => Ok(FactorFormat::F32),
            "f16" => Ok(FactorFormat::F16),
            "i16" => Ok(FactorFormat::I16),
            other => Err(Error::config(format!("unknown adapterPrecision {other:?} (expected \"f32\", \"f16\" or \"i16\")"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FactorFormat::F32 => "f32",
            FactorFormat::F16 => "f16",
            FactorFormat::I16 => "i16",
        }
    }

    /// Arena words a factor matrix of `n` values and `rank` ranks takes.
    pub fn words(self, n: usize, rank: usize) -> usize {
        match self {
            FactorFormat::F32 => n,
            FactorFormat::F16 => n.div_ceil(2),
            FactorFormat::I16 => n.div_ceil(2) + rank,
        }
    }
}

/// Which index of a factor matrix is its rank: the rows of `A [rank, in]` (GPU), the columns
/// of `Aᵀ [in, rank]` (CPU) and of `B [out, rank]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankAxis {
    Rows,
    Columns,
}

impl RankAxis {
    fn of(self, i: usize, len: usize, rank: usize) -> usize {
        match self {
            RankAxis::Rows => i / (len / rank),
            RankAxis::Columns => i % rank,
        }
    }
}

/// `FactorFormat::I16`'s step per rank: the rank's largest magnitude over 32767.
pub fn i16_scales(data: &[f32], rank: usize, axis: RankAxis) -> Vec<f32> {
    let mut max = vec![0f32; rank];
    for (i, v) in data.iter().enumerate() {
        let m = &mut max[axis.of(i, data.len(), rank)];
        *m = m.max(v.abs());
    }
    max.into_iter().map(|m| m / 32767.0).collect()
}

/// Each value's nearest code at its rank's step (a zero rank gives zero codes).
pub fn i16_codes<'a>(data: &'a [f32], scales: &'a [f32], axis: RankAxis) -> impl Iterator<Item = i16> + 'a {
    data.iter().enumerate().map(move |(i, &v)| {
        let s = scales[axis.of(i, data.len(), scales.len())];
        if s > 0.0 {
            (v / s).round() as i16
        } else {
            0
        }
    })
}

/// The values a factor matrix reads back as once stored in `format`.
pub fn stored(data: &[f32], format: FactorFormat, rank: usize, axis: RankAxis) -> Vec<f32> {
    match format {
        FactorFormat::F32 => data.to_vec(),
        FactorFormat::F16 => data.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
        FactorFormat::I16 => {
            let s = i16_scales(data, rank, axis);
            i16_codes(data, &s, axis).enumerate().map(|(i, q)| q as f32 * s[axis.of(i, data.len(), rank)]).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rank j is a row of A and a column of Aᵀ: both axes give the same steps and codes.
    #[test]
    fn i16_rounds_each_rank_to_its_own_step() {
        let a = [1.0, -4.0, 3.0, 0.5, 0.2, -0.1]; // A [2, 3]: rank 0 peaks at -4, rank 1 at 0.5
        let at = [1.0, 0.5, -4.0, 0.2, 3.0, -0.1]; // the same as Aᵀ [3, 2]
        assert_eq!(i16_scales(&a, 2, RankAxis::Rows), [4.0 / 32767.0, 0.5 / 32767.0]);
        assert_eq!(i16_scales(&at, 2, RankAxis::Columns), i16_scales(&a, 2, RankAxis::Rows));
        let s = i16_scales(&a, 2, RankAxis::Rows);
        let q: Vec<i16> = i16_codes(&a, &s, RankAxis::Rows).collect();
        assert_eq!(q, [8192, -32767, 24575, 32767, 13107, -6553]);
        let back = stored(&a, FactorFormat::I16, 2, RankAxis::Rows);
        assert!(back.iter().zip(&a).all(|(b, v)| (b - v).abs() <= 0.5 * 4.0 / 32767.0));
        assert_eq!(stored(&[0.0, 0.0], FactorFormat::I16, 1, RankAxis::Columns), [0.0, 0.0]);
        assert_eq!(FactorFormat::I16.words(5, 2), 5);
        assert_eq!(FactorFormat::F16.words(5, 2), 3);
    }
}
