//! CPU backend: wasm SIMD128 kernels under wasm32, the same code on portable vectors natively.
//! Ops run eagerly; tensors are plain `Vec<f32>`.

/// Evaluates `$body` with `$r` bound to `rank`: a literal for the usual adapter ranks (8, 16,
/// 32), so the LoRA loops over it unroll and strides fold into addressing, else the value.
macro_rules! with_const_rank {
    ($rank:expr, |$r:ident| $body:expr) => {
        match $rank {
            8 => {
                let $r: usize = 8;
                $body
            }
            16 => {
                let $r: usize = 16;
                $body
            }
            32 => {
                let $r: usize = 32;
                $body
            }
            $r => $body,
        }
    };
}

pub mod arena;
pub mod decode;
pub mod kernels;
pub mod model_ops;
pub mod ops;
pub mod pool;
pub mod shrink;
pub mod simd;

use crate::backend::factors::{stored, RankAxis};
use crate::backend::linear::{Epilogue, Linear};
use crate::backend::routing::Routes;
use crate::backend::{ArenaStore, Backend, BackendKind, DoraGain, Shaped};
use crate::error::{checked_len, Error, Result};
use crate::formats::weights::{HostWeight, WeightData, WeightFormat};
pub use arena::CpuArena;
pub use crate::backend::factors::FactorFormat;

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend {
    /// Opt-in: quantize activations to int8 per 32-block for block-format weights (every
    /// one), ~1.2-1.4x faster matvecs than the default exact integer rows, less exact
    /// (accuracy in bench/RESULTS.md).
    pub int8_activations: bool,
    /// How adapter factors (A, B) are stored unless an adapter asks otherwise: f32 (exact,
    /// the default), or int16 codes with a step per rank, half the bytes each decode step
    /// reads for them. There is no f16 on the CPU (widening it in wasm costs more than the
    /// bytes save): writes in F16 fail.
    pub factors: FactorFormat,
}

/// The default CPU backend (f32 activations and adapter factors), usable as a value like a
/// unit struct.
#[allow(non_upper_case_globals)]
pub const CpuBackend: CpuBackend = CpuBackend { int8_activations: false, factors: FactorFormat::F32 };

#[derive(Clone, Debug)]
pub struct CpuTensor {
    pub data: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

impl Shaped for CpuTensor {
    fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
}

impl Backend for CpuBackend {
    type Tensor = CpuTensor;
    type Weight = HostWeight;
    type Arena = CpuArena;

    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn describe(&self) -> String {
        let simd = if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) { "wasm SIMD128" } else { "portable" };
        let int8 = if self.int8_activations { ", int8 activations" } else { "" };
        let factors = match self.factors {
            FactorFormat::F32 => String::new(),
            f => format!(", {} adapter factors", f.name()),
        };
        let threads = pool::threads();
        let s = if threads > 1 { "s" } else { "" };
        format!("CPU ({simd}, {threads} thread{s}{int8}{factors})")
    }

    fn tensor(&self, data: &[f32], rows: usize, cols: usize) -> Result<CpuTensor> {
        if data.len() != checked_len("tensor", &[rows, cols])? {
            return Err(Error::shape(format!("tensor data has {} values for [{rows}, {cols}]", data.len())));
        }
        Ok(CpuTensor { data: data.to_vec(), rows, cols })
    }

    fn empty(&self, rows: usize, cols: usize) -> Result<CpuTensor> {
        Ok(CpuTensor { data: vec![0.0; checked_len("tensor", &[rows, cols])?], rows, cols })
    }

    async fn read(&self, t: &CpuTensor) -> Result<Vec<f32>> {
        Ok(t.data.clone())
    }

    fn weights(&self, ws: Vec<HostWeight>) -> Result<Vec<HostWeight>> {
        Ok(ws)
    }

    /// Row by row on the host, sums in f64, with the factors as stored (rounded as in the
    /// arena, as the GPU's kernel reads them from its arena).
    fn dora_gain(&self, w: &HostWeight, arena: &mut CpuArena, d: &DoraGain<'_>) -> Result<()> {
        let rank = d.rank;
        // Aᵀ [in, rank], as stored.
        let (at, b) = (stored(&shrink::transpose_a(d.a, rank), d.format, rank, RankAxis::Columns), stored(d.b, d.format, rank, RankAxis::Columns));
        let mut gain = Vec::with_capacity(w.rows);
        for o in 0..w.rows {
            let bo = &b[o * rank..(o + 1) * rank];
            let mut sq = 0f64;
            for (k, &wk) in w.row_f32(o).iter().enumerate() {
                let delta: f64 = bo.iter().enumerate().map(|(j, &bj)| bj as f64 * at[k * rank + j] as f64).sum();
                let v = wk as f64 + d.scale as f64 * delta;
                sq += v * v;
            }
            let norm = sq.sqrt();
            if !(norm > 0.0) {
                return Err(Error::config(format!("DoRA: output row {o} of W + scale·B·A is zero")));
            }
            gain.push((d.magnitude[o] as f64 / norm) as f32);
        }
        arena.write(d.g_off, &gain, 1, FactorFormat::F32)
    }

    fn arena(&self) -> CpuArena {
        CpuArena::default()
    }

    fn factor_format(&self) -> FactorFormat {
        self.factors
    }

    /// Widening f16 in wasm costs more than the bytes it saves: 16 bits means int16 here.
    fn storable(&self, f: FactorFormat) -> FactorFormat {
        match f {
            FactorFormat::F16 => FactorFormat::I16,
            f => f,
        }
    }

    /// The norm into a copy of the input, each weight's product into its own buffer (or
    /// straight into the output when it is the only one), then the epilogue.
    fn linear(&self, op: Linear<'_, Self>) -> Result<()> {
        let (n, inp) = (op.rows(), op.cols());
        let normed;
        let x = match op.norm {
            Some((g, eps)) => {
                let mut out = vec![0.0; op.x.data.len()];
                ops::rms_norm(&op.x.data, &g.data, eps, &mut out);
                normed = out;
                &normed[..]
            }
            None => &op.x.data[..],
        };
        let (arena, mut epilogue) = (op.arena, op.epilogue);
        if let (Epilogue::Store { out, bias: None }, [p]) = (&mut epilogue, &op.parts[..]) {
            return self.matmul(x, n, inp, p.weight, arena, &p.routes, &mut out.data);
        }
        let mut ys = Vec::with_capacity(op.parts.len());
        for p in &op.parts {
            let mut y = vec![0.0; n * p.weight.rows];
            self.matmul(x, n, inp, p.weight, arena, &p.routes, &mut y)?;
            ys.push((y, p.weight.rows));
        }
        match epilogue {
            Epilogue::Store { out, bias } => {
                let mut col = 0;
                for (y, w) in &ys {
                    for (orow, yrow) in out.data.chunks_exact_mut(out.cols).zip(y.chunks_exact(*w)) {
                        orow[col..col + w].copy_from_slice(yrow);
                    }
                    col += w;
                }
                if let Some(b) = bias {
                    out.data.chunks_exact_mut(out.cols).for_each(|row| row.iter_mut().zip(&b.data).for_each(|(v, b)| *v += b));
                }
            }
            Epilogue::Add(out) => out.data.iter_mut().zip(&ys[0].0).for_each(|(v, y)| *v += y),
            Epilogue::Glu(out, act) => {
                let (gate, up) = (&ys[0].0, &ys[1].0);
                out.data.copy_from_slice(gate);
                ops::glu(&mut out.data, up, act);
            }
        }
        Ok(())
    }
}

impl CpuBackend {
    /// `y[n, out] = x[n, in]·Wᵀ + Σ_entries coef·(x_row·Aᵀ)·Bᵀ`, fused: W read once, y
    /// written once.
    #[allow(clippy::too_many_arguments)]
    fn matmul(&self, x: &[f32], n: usize, inp: usize, w: &HostWeight, arena: &CpuArena, routes: &Routes, y: &mut [f32]) -> Result<()> {
        let mut t = vec![0.0; routes.t_len];
        shrink::lora_shrink(x, inp, arena, routes, &mut t);
        let (out, q8) = (w.rows, self.int8_activations);
        match &w.data {
            WeightData::F32(v) => kernels::lora_linear::<decode::F32>(x, n, inp, v, out, arena, routes, &t, y, q8),
            WeightData::F16(v) => kernels::lora_linear::<decode::F16>(x, n, inp, v, out, arena, routes, &t, y, q8),
            WeightData::BF16(v) => kernels::lora_linear::<decode::BF16>(x, n, inp, v, out, arena, routes, &t, y, q8),
            WeightData::Blocks(f, v) => match f {
                WeightFormat::Q8_0 => kernels::lora_linear::<decode::Q8_0>(x, n, inp, v, out, arena, routes, &t, y, q8),
                WeightFormat::Q4_0 => kernels::lora_linear::<decode::Q4_0>(x, n, inp, v, out, arena, routes, &t, y, q8),
                WeightFormat::Q4_1 => kernels::lora_linear::<decode::Q4_1>(x, n, inp, v, out, arena, routes, &t, y, q8),
                WeightFormat::Q5_0 => kernels::lora_linear::<decode::Q5_0>(x, n, inp, v, out, arena, routes, &t, y, q8),
                WeightFormat::Q5_1 => kernels::lora_linear::<decode::Q5_1>(x, n, inp, v, out, arena, routes, &t, y, q8),
                WeightFormat::IQ4_NL => kernels::lora_linear::<decode::IQ4_NL>(x, n, inp, v, out, arena, routes, &t, y, q8),
                WeightFormat::Q2_K => kernels::lora_linear::<decode::Q2_K>(x, n, inp, v, out, arena, routes, &t, y, q8),
                WeightFormat::Q3_K => kernels::lora_linear::<decode::Q3_K>(x, n, inp, v, out, arena, routes, &t, y, q8),
                WeightFormat::Q4_K => kernels::lora_linear::<decode::Q4_K>(x, n, inp, v, out, arena, routes, &t, y, q8),
                WeightFormat::Q5_K => kernels::lora_linear::<decode::Q5_K>(x, n, inp, v, out, arena, routes, &t, y, q8),
                WeightFormat::Q6_K => kernels::lora_linear::<decode::Q6_K>(x, n, inp, v, out, arena, routes, &t, y, q8),
                other => return Err(Error::config(format!("{} is not a block format", other.name()))),
            },
        }
        Ok(())
    }
}
