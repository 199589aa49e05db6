//! How an arena stores adapter factors (A, B), shared by both backends so that a format
//! means the same numbers everywhere. DoRA gains are f32 words in every format.

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
    /// The format `name()` names, if any (callers word the error for their own option).
    pub fn parse(s: &str) -> Option<FactorFormat> {
        [FactorFormat::F32, FactorFormat::F16, FactorFormat::I16].into_iter().find(|f| f.name() == s)
    }

    /// The format's number in the GPU's route table (`arena.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            FactorFormat::F32 => 0,
            FactorFormat::F16 => 1,
            FactorFormat::I16 => 2,
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
    /// The matrix's lines that share one rank's step, each with that rank: whole rows (A),
    /// or every row position by position (Aᵀ, B). No division per value: these run over
    /// every factor at load.
    fn for_each(self, data: &[f32], rank: usize, mut f: impl FnMut(usize, f32)) {
        if rank == 0 || data.len() < rank {
            return;
        }
        debug_assert_eq!(data.len() % rank, 0, "a factor matrix has whole lines of `rank` values");
        match self {
            RankAxis::Rows => data.chunks_exact(data.len() / rank).enumerate().for_each(|(j, row)| row.iter().for_each(|&v| f(j, v))),
            RankAxis::Columns => data.chunks_exact(rank).for_each(|row| row.iter().enumerate().for_each(|(j, &v)| f(j, v))),
        }
    }
}

/// `FactorFormat::I16`'s step per rank: the rank's largest magnitude over 32767.
pub fn i16_scales(data: &[f32], rank: usize, axis: RankAxis) -> Vec<f32> {
    let mut max = vec![0f32; rank];
    axis.for_each(data, rank, |j, v| max[j] = max[j].max(v.abs()));
    max.into_iter().map(|m| m / 32767.0).collect()
}

/// Appends each value's nearest code at its rank's step (a zero rank gives zero codes).
pub fn i16_codes(data: &[f32], scales: &[f32], axis: RankAxis, out: &mut Vec<i16>) {
    axis.for_each(data, scales.len(), |j, v| out.push(code(v, scales[j])));
}

/// The nearest code of `v` at `step` (0 at a zero step), halves away from zero as `f32::round`,
/// but built on `f32.nearest` (`round` is a libm call in wasm, 4x an adapter's load time).
/// Quotients are exact halves often (a code takes 15 of f32's 24 bits), so the tie rule
/// matters; the tie test is a rarely taken branch.
#[inline]
fn code(v: f32, step: f32) -> i16 {
    if step <= 0.0 {
        return 0;
    }
    let q = v / step;
    let r = q.round_ties_even();
    (if (r - q).abs() == 0.5 { q + 0.5f32.copysign(q) } else { r }) as i16
}

/// Each value of a factor matrix with its rank and what it reads back as once stored in
/// `format` (the one definition of a format's rounding that `stored` and `rounding_error`
/// share).
fn for_each_stored(data: &[f32], format: FactorFormat, rank: usize, axis: RankAxis, mut f: impl FnMut(usize, f32, f32)) {
    match format {
        FactorFormat::F32 => axis.for_each(data, rank, |j, v| f(j, v, v)),
        FactorFormat::F16 => axis.for_each(data, rank, |j, v| f(j, v, half::f16::from_f32(v).to_f32())),
        FactorFormat::I16 => {
            let steps = i16_scales(data, rank, axis);
            axis.for_each(data, rank, |j, v| f(j, v, code(v, steps[j]) as f32 * steps[j]));
        }
    }
}

/// The values a factor matrix reads back as once stored in `format`.
pub fn stored(data: &[f32], format: FactorFormat, rank: usize, axis: RankAxis) -> Vec<f32> {
    if format == FactorFormat::F32 {
        return data.to_vec();
    }
    let mut back = Vec::with_capacity(data.len());
    for_each_stored(data, format, rank, axis, |_, _, b| back.push(b));
    back
}

/// How far a factor matrix moves when stored in `format`, per rank: the mean absolute
/// rounding error over the mean absolute value, worst rank (0 in f32). About 1.5e-5 to 4e-5
/// in int16 for uniform or Gaussian factors, about 2e-4 in f16; a rank whose largest value
/// dwarfs the rest (int16 steps set by an outlier) shows up orders of magnitude higher.
pub fn rounding_error(data: &[f32], format: FactorFormat, rank: usize, axis: RankAxis) -> f64 {
    if format == FactorFormat::F32 {
        return 0.0; // stored exactly: no pass over the factors
    }
    // f32 sums (a rank has at most one line of the matrix, ≤ 2^16 values): a diagnostic,
    // and f64 per value cost a third of an int16 adapter's load time in wasm.
    let (mut err, mut mass) = (vec![0f32; rank], vec![0f32; rank]);
    for_each_stored(data, format, rank, axis, |j, v, back| {
        err[j] += (back - v).abs();
        mass[j] += v.abs();
    });
    err.iter().zip(&mass).filter(|(_, m)| **m > 0.0).map(|(e, m)| (e / m) as f64).fold(0.0, f64::max)
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
        let mut q = Vec::new();
        i16_codes(&a, &s, RankAxis::Rows, &mut q);
        assert_eq!(q, [8192, -32767, 24575, 32767, 13107, -6553]);
        let back = stored(&a, FactorFormat::I16, 2, RankAxis::Rows);
        assert!(back.iter().zip(&a).all(|(b, v)| (b - v).abs() <= 0.5 * 4.0 / 32767.0));
        assert_eq!(stored(&[0.0, 0.0], FactorFormat::I16, 1, RankAxis::Columns), [0.0, 0.0]);
        assert_eq!(FactorFormat::I16.words(5, 2), 5);
        // Halves go away from zero, as f32::round.
        for q in [2.5f32, -3.5, 32766.5, 0.49999997, -0.5, 7.25, -7.75] {
            assert_eq!(code(q, 1.0), q.round() as i16, "{q}");
        }
        // Per rank, the mean |error| over the mean |value|; the worst rank is the figure.
        let per_rank = |row: &[f32], step: f32| {
            let miss: f32 = row.iter().map(|&v| ((v / step).round() * step - v).abs()).sum();
            (miss / row.iter().map(|v| v.abs()).sum::<f32>()) as f64
        };
        let (r0, r1) = (per_rank(&a[..3], 4.0 / 32767.0), per_rank(&a[3..], 0.5 / 32767.0));
        let err = rounding_error(&a, FactorFormat::I16, 2, RankAxis::Rows);
        assert!(r0 != r1 && (err - r0.max(r1)).abs() <= 1e-6 * err, "{err} vs ranks {r0}, {r1}");
        assert_eq!(rounding_error(&a, FactorFormat::F32, 2, RankAxis::Rows), 0.0);
        // An outlier sets its rank's step: the rest of the rank rounds coarsely, and it shows.
        let mut spiky: Vec<f32> = (0..576).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let plain = rounding_error(&spiky, FactorFormat::I16, 1, RankAxis::Rows);
        spiky[7] = 1000.0;
        let outlier = rounding_error(&spiky, FactorFormat::I16, 1, RankAxis::Rows);
        assert!(plain < 3e-5 && outlier > 100.0 * plain, "{plain} then {outlier}");
        assert_eq!(FactorFormat::F16.words(5, 2), 3);
    }
}
