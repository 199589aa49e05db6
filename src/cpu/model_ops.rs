//! `ModelOps` on the CPU: eager kernels over `Vec<f32>` tensors (shapes checked by the
//! fronts in `backend::ops`).

use super::{ops, CpuBackend, CpuTensor};
use crate::backend::ops::{Attend, Map, ModelOps};
use crate::backend::select::{self, top_k, Choice, SelectRow, Selection};
use crate::error::Result;
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

    fn kv_width(&self, kv: &CpuKv) -> usize {
        kv.width
    }

    fn kv_bytes(&self, kv: &CpuKv) -> usize {
        (kv.k.capacity() + kv.v.capacity()) * 4
    }

    fn kv_truncate(&self, kv: &mut CpuKv, len: usize) {
        kv.k.truncate(len * kv.width);
        kv.v.truncate(len * kv.width);
    }

    fn embed(&self, table: &HostWeight, ids: &[u32], out: &mut CpuTensor) -> Result<()> {
        for (row, &id) in out.data.chunks_exact_mut(table.cols).zip(ids) {
            row.copy_from_slice(&table.row_f32(id as usize));
        }
        Ok(())
    }

    fn map(&self, x: &mut CpuTensor, f: Map) -> Result<()> {
        match f {
            Map::Scale(c) => x.data.iter_mut().for_each(|v| *v *= c),
            Map::Softcap(c) => x.data.iter_mut().for_each(|v| *v = ops::softcap(*v, c)),
        }
        Ok(())
    }

    fn add_normed(&self, x: &mut CpuTensor, y: &CpuTensor, gain: &CpuTensor, eps: f32) -> Result<()> {
        ops::add_rms_normed(&mut x.data, &y.data, &gain.data, eps);
        Ok(())
    }

    fn gather_rows(&self, x: &CpuTensor, rows: &[usize], out: &mut CpuTensor) -> Result<()> {
        for (o, &r) in out.data.chunks_exact_mut(x.cols).zip(rows) {
            o.copy_from_slice(&x.data[r * x.cols..(r + 1) * x.cols]);
        }
        Ok(())
    }

    /// Per sequence: its rows' q and k rotated in place, k and v appended to its cache, then
    /// attention of its rows (queries read in place from `qkv`).
    fn attend(&self, op: Attend<'_, Self>) -> Result<()> {
        let cs = op.rope_table();
        let Attend { qkv, caches, spans, heads: h, qk_norm, out, .. } = op;
        let (qw, kvw, hd) = (h.q_width(), h.kv_width(), h.head_dim);
        let w = qkv.cols;
        for (s, kv) in spans.iter().zip(caches) {
            for r in s.row0..s.row0 + s.rows {
                let row = &mut qkv.data[r * w..(r + 1) * w];
                if let Some(n) = &qk_norm {
                    ops::rms_norm_in_place(&mut row[..qw], &n.q.data, n.eps);
                    ops::rms_norm_in_place(&mut row[qw..qw + kvw], &n.k.data, n.eps);
                }
                let c = &cs[r * hd / 2..(r + 1) * hd / 2];
                ops::rope(&mut row[..qw + kvw], hd, c);
                kv.k.extend_from_slice(&row[qw..qw + kvw]);
                kv.v.extend_from_slice(&row[qw + kvw..]);
            }
            let o = &mut out.data[s.row0 * qw..(s.row0 + s.rows) * qw];
            ops::attention(&qkv.data[s.row0 * w..], w, &kv.k, &kv.v, s.rows, s.pos0, &h, o);
        }
        Ok(())
    }

    /// The sampler picks from these in f64 itself: a row's draw is not used here.
    async fn select(&self, logits: &mut CpuTensor, k: usize, asks: &[SelectRow]) -> Result<Vec<Choice>> {
        Ok(logits
            .data
            .chunks_mut(logits.cols)
            .zip(asks)
            .map(|(row, a)| {
                a.apply(row);
                let cands = top_k(row, k);
                let max = cands[0].1;
                let mass = (a.inv_temp > 0.0).then(|| row.iter().map(|&l| (((l - max) * a.inv_temp) as f64).exp()).sum());
                let lse = a.lse.then(|| select::lse(row));
                Choice::Select(Selection { cands, mass, lse })
            })
            .collect())
    }
}
