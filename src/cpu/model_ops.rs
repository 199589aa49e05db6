//! `ModelOps` on the CPU: eager ops over `Vec<f32>` tensors.

use super::{ops, CpuBackend, CpuTensor};
use crate::error::{Error, Result};
use crate::backend::ops::{check_attention, same_shape, ModelOps};
use crate::backend::select::{check_top_k, penalize, top_k, Choice, SelectRow, Selection};
use crate::formats::weights::HostWeight;

pub struct CpuKv {
    k: Vec<f32>,
    v: Vec<f32>,
    width: usize,
}

impl ModelOps for CpuBackend {
    type Kv = CpuKv;

    fn kv_new(&self, width: usize) -> CpuKv {
        CpuKv { k: Vec::new(), v: Vec::new(), width }
    }

    fn kv_len(&self, kv: &CpuKv) -> usize {
        kv.k.len() / kv.width
    }

    fn kv_truncate(&self, kv: &mut CpuKv, len: usize) {
        kv.k.truncate(len * kv.width);
        kv.v.truncate(len * kv.width);
    }

    fn embed(&self, table: &HostWeight, ids: &[u32]) -> Result<CpuTensor> {
        let cols = table.cols;
        let mut data = Vec::with_capacity(ids.len() * cols);
        for &id in ids {
            if id as usize >= table.rows {
                return Err(Error::shape(format!("token id {id} is outside the vocabulary of {}", table.rows)));
            }
            data.extend(table.row_f32(id as usize));
        }
        Ok(CpuTensor { data, rows: ids.len(), cols })
    }

    fn rms_norm(&self, x: &CpuTensor, w: &CpuTensor, eps: f32) -> Result<CpuTensor> {
        if w.data.len() != x.cols {
            return Err(Error::shape(format!("rms_norm: gain of {} for rows of {}", w.data.len(), x.cols)));
        }
        let mut out = vec![0.0; x.data.len()];
        ops::rms_norm(&x.data, &w.data, eps, &mut out);
        Ok(CpuTensor { data: out, rows: x.rows, cols: x.cols })
    }

    fn add_bias(&self, x: &mut CpuTensor, b: &CpuTensor) -> Result<()> {
        if b.data.len() != x.cols {
            return Err(Error::shape(format!("bias of {} for rows of {}", b.data.len(), x.cols)));
        }
        for row in x.data.chunks_exact_mut(x.cols) {
            for (v, &b) in row.iter_mut().zip(&b.data) {
                *v += b;
            }
        }
        Ok(())
    }

    fn rope(&self, x: &mut CpuTensor, head_dim: usize, pos0: usize, inv_freq: &[f64]) -> Result<()> {
        let positions: Vec<usize> = (pos0..pos0 + x.rows).collect();
        ops::rope(&mut x.data, x.cols, head_dim, &positions, inv_freq);
        Ok(())
    }

    fn attention(
        &self,
        q: &CpuTensor,
        k: &CpuTensor,
        v: &CpuTensor,
        kv: &mut CpuKv,
        pos0: usize,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        window: Option<usize>,
    ) -> Result<CpuTensor> {
        check_attention([q.rows, q.cols], [k.rows, k.cols], [v.rows, v.cols], kv.width, self.kv_len(kv), pos0, heads, kv_heads, head_dim)?;
        kv.k.extend_from_slice(&k.data);
        kv.v.extend_from_slice(&v.data);
        let mut out = vec![0.0; q.data.len()];
        ops::attention(&q.data, &kv.k, &kv.v, q.rows, pos0, heads, kv_heads, head_dim, window, &mut out);
        Ok(CpuTensor { data: out, rows: q.rows, cols: q.cols })
    }

    fn silu_mul(&self, gate: &mut CpuTensor, up: &CpuTensor) -> Result<()> {
        same_shape([gate.rows, gate.cols], [up.rows, up.cols], "silu_mul")?;
        ops::silu_mul(&mut gate.data, &up.data);
        Ok(())
    }

    fn add(&self, x: &mut CpuTensor, y: &CpuTensor) -> Result<()> {
        same_shape([x.rows, x.cols], [y.rows, y.cols], "add")?;
        for (a, b) in x.data.iter_mut().zip(&y.data) {
            *a += b;
        }
        Ok(())
    }

    fn rows(&self, x: &CpuTensor, start: usize, len: usize) -> Result<CpuTensor> {
        if start + len > x.rows {
            return Err(Error::shape(format!("rows {start}..{} of a tensor with {}", start + len, x.rows)));
        }
        Ok(CpuTensor { data: x.data[start * x.cols..(start + len) * x.cols].to_vec(), rows: len, cols: x.cols })
    }

    /// The sampler picks from these in f64 itself: a row's draw is not used here.
    async fn top_k(&self, logits: &mut CpuTensor, k: usize, asks: &[SelectRow]) -> Result<Vec<Choice>> {
        let vocab = logits.cols;
        check_top_k(logits.rows, vocab, k, asks)?;
        Ok(logits
            .data
            .chunks_mut(vocab)
            .zip(asks)
            .map(|(row, a)| {
                penalize(row, a.penalty, &a.penalized);
                let cands = top_k(row, k);
                let max = cands[0].1;
                let mass = (a.inv_temp > 0.0).then(|| row.iter().map(|&l| (((l - max) * a.inv_temp) as f64).exp()).sum());
                Choice::Select(Selection { cands, mass })
            })
            .collect())
    }

    fn concat_rows(&self, parts: &[CpuTensor]) -> Result<CpuTensor> {
        let cols = parts.first().map_or(0, |p| p.cols);
        if parts.iter().any(|p| p.cols != cols) {
            return Err(Error::shape("concat_rows: parts of different widths"));
        }
        let data: Vec<f32> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
        Ok(CpuTensor { rows: data.len() / cols.max(1), data, cols })
    }
}
