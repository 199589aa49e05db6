//! `ModelOps` on the GPU: the KV cache (resident, grown by doubling), the embedding gather,
//! row gathers, attention (`attention.rs`) and the token selection (`penalize.wgsl`,
//! `top_k.wgsl`, `pick.wgsl`). Only what the caller reads back (a token, or a selection)
//! leaves the GPU.

use super::encoder::Dispatch;
use super::layout::{Draw, EmbedParams, LinearParams, MapParams, MaskParams, PenalizeParams, PickParams, TopKParams};
use super::pipelines::{Epi, Kernel, Norm};
use super::{GpuBackend, GpuTensor, GpuWeight, Inner};
use crate::backend::linear::Act;
use crate::backend::ops::{Attend, Map, ModelOps};
use crate::backend::select::{Choice, SelectRow, Selection, DRAW_MARGIN};
use crate::backend::Backend;
use crate::error::Result;
use crate::formats::weights::WeightFormat;
use std::rc::Rc;

/// One layer's keys and values for one sequence: `[capacity, width]` f32 buffers, grown by
/// doubling (a GPU copy) when a forward pass needs more positions.
pub struct GpuKv {
    pub(super) bufs: Option<[(wgpu::Buffer, u64); 2]>,
    pub(super) cap: usize,
    pub(super) len: usize,
    pub(super) width: usize,
    owner: Rc<Inner>,
}

impl Drop for GpuKv {
    fn drop(&mut self) {
        if self.bufs.is_some() {
            self.owner.flush(); // recorded passes may still read the cache
        }
        for (buf, id) in self.bufs.iter().flatten() {
            self.owner.pool.forget(*id);
            buf.destroy();
        }
    }
}

impl ModelOps for GpuBackend {
    type Kv = GpuKv;

    fn kv_new(&self, width: usize) -> GpuKv {
        GpuKv { bufs: None, cap: 0, len: 0, width, owner: self.0.clone() }
    }

    fn kv_len(&self, kv: &GpuKv) -> usize {
        kv.len
    }

    fn kv_width(&self, kv: &GpuKv) -> usize {
        kv.width
    }

    fn kv_bytes(&self, kv: &GpuKv) -> usize {
        if kv.bufs.is_some() { 2 * kv.cap * kv.width * 4 } else { 0 }
    }

    fn kv_truncate(&self, kv: &mut GpuKv, len: usize) {
        kv.len = kv.len.min(len);
    }

    fn embed(&self, table: &GpuWeight, ids: &[u32], out: &mut GpuTensor) -> Result<()> {
        let (n, cols) = (ids.len(), table.cols);
        let ids_buf = self.upload(bytemuck::cast_slice(ids));
        for piece in table.pieces(0..table.rows) {
            // The table is a store of its own: its pieces are whole chunks.
            let params = EmbedParams { n: n as u32, cols: cols as u32, row0: piece.rows.start as u32, rows: piece.rows.len() as u32 };
            let bufs = [(&piece.chunk.buf, piece.chunk.id), (&ids_buf.buf, ids_buf.id), out.bind()];
            let bytes = (table.format.bytes_for(n * cols) + n * cols * 4) as u64;
            self.0.dispatch(Dispatch { kernel: Kernel::Embed(table.format), bufs: &bufs, params: bytemuck::bytes_of(&params), grid: [cols.div_ceil(64), n, 1], bytes })?;
        }
        Ok(())
    }

    fn map(&self, x: &mut GpuTensor, f: Map) -> Result<()> {
        let len = x.rows * x.cols;
        let (mode, c) = match f {
            Map::Scale(c) => (0, c),
            Map::Softcap(c) => (1, c),
        };
        let params = MapParams { len: len as u32, c, pad0: 0, pad1: 0 };
        let g = &self.0;
        g.dispatch(Dispatch { kernel: Kernel::Map(mode), bufs: &[x.bind()], params: bytemuck::bytes_of(&params), grid: g.grid_1d(len), bytes: (len * 8) as u64 })
    }

    fn add_normed(&self, x: &mut GpuTensor, y: &GpuTensor, gain: &GpuTensor, eps: f32) -> Result<()> {
        let g = &self.0;
        let (wg_x, [gx, gy]) = g.fold(x.rows);
        let params = LinearParams { n: x.rows as u32, cols: x.cols as u32, eps, wg_x: wg_x as u32, ..Default::default() };
        let bufs = [x.bind(), y.bind(), gain.bind()];
        g.dispatch(Dispatch { kernel: Kernel::NormAdd, bufs: &bufs, params: bytemuck::bytes_of(&params), grid: [gx, gy, 1], bytes: (x.rows * x.cols * 12) as u64 })
    }

    fn gather_rows(&self, x: &GpuTensor, rows: &[usize], out: &mut GpuTensor) -> Result<()> {
        let row = (x.cols * 4) as u64;
        for (i, &r) in rows.iter().enumerate() {
            self.0.copy(&x.buf.buf, r as u64 * row, &out.buf.buf, i as u64 * row, row)?;
        }
        Ok(())
    }

    fn attend(&self, op: Attend<'_, Self>) -> Result<()> {
        self.encode_attend(op)
    }

    async fn select(&self, logits: &mut GpuTensor, k: usize, asks: &[SelectRow]) -> Result<Vec<Choice>> {
        let (rows, vocab) = (logits.rows, logits.cols);
        let g = &self.0;
        // The penalties in place: one (logit index, scale, minus) entry per penalized token.
        let mut entries = Vec::new();
        for (row, a) in asks.iter().enumerate() {
            for p in a.penalties.iter().filter(|p| (p.token as usize) < vocab) {
                entries.extend([(row * vocab) as u32 + p.token, p.scale.to_bits(), p.minus.to_bits()]);
            }
        }
        if !entries.is_empty() {
            let n = entries.len() / 3;
            let e = self.upload(bytemuck::cast_slice(&entries));
            let params = PenalizeParams { n: n as u32, ..Default::default() };
            g.dispatch(Dispatch { kernel: Kernel::Penalize, bufs: &[logits.bind(), (&e.buf, e.id)], params: bytemuck::bytes_of(&params), grid: g.grid_1d(n), bytes: (n * 20) as u64 })?;
        }
        // Structured output: refused tokens' logits to MASKED (every bit set in rows without).
        if asks.iter().any(|a| a.allowed.is_some()) {
            let words = vocab.div_ceil(32);
            let mut bits = vec![u32::MAX; rows * words];
            for (row, a) in asks.iter().enumerate() {
                if let Some(b) = &a.allowed {
                    bits[row * words..(row + 1) * words].copy_from_slice(&b[..words]);
                }
            }
            let bits = self.upload(bytemuck::cast_slice(&bits));
            let n = rows * vocab;
            let params = MaskParams { n: n as u32, vocab: vocab as u32, words: words as u32, pad: 0 };
            g.dispatch(Dispatch { kernel: Kernel::Mask, bufs: &[logits.bind(), (&bits.buf, bits.id)], params: bytemuck::bytes_of(&params), grid: g.grid_1d(n), bytes: (n * 4 + rows * words * 4) as u64 })?;
            drop(bits);
        }
        // Per row k pairs, then (Σ exp(l − max), mass) when some row wants either.
        let need_lse = asks.iter().any(|a| a.lse);
        let need_mass = (need_lse || asks.iter().any(|a| a.inv_temp > 0.0)) as usize;
        let width = 2 * (k + need_mass);
        let out = self.empty(rows, width)?;
        let inv_t: Vec<f32> = asks.iter().map(|a| a.inv_temp).collect();
        let inv_t = self.upload(bytemuck::cast_slice(&inv_t));
        let params = TopKParams { vocab: vocab as u32, k: k as u32, need_mass: need_mass as u32, need_lse: need_lse as u32 };
        let bytes = (rows * vocab * 4) as u64 * if k <= 4 { k as u64 } else { 5 };
        g.dispatch(Dispatch { kernel: Kernel::TopK, bufs: &[logits.bind(), (&inv_t.buf, inv_t.id), out.bind()], params: bytemuck::bytes_of(&params), grid: [rows, 1, 1], bytes })?;
        drop(inv_t); // reusable after the submit
        // Rows with a draw: the pick itself (pick.wgsl), one u32 back per row (greedy too);
        // only rows it cannot be sure of read their selection.
        let mut choices: Vec<Option<Choice>> = vec![None; rows];
        if asks.iter().any(|a| a.draw.is_some()) {
            let draws: Vec<Draw> = asks.iter().map(draw).collect();
            let draws = self.upload(bytemuck::cast_slice(&draws));
            let picks = self.empty(rows, 1)?;
            let params = PickParams { k: k as u32, need_mass: need_mass as u32, rows: rows as u32, margin: DRAW_MARGIN };
            let bufs = [out.bind(), (&draws.buf, draws.id), picks.bind()];
            g.dispatch(Dispatch { kernel: Kernel::Pick, bufs: &bufs, params: bytemuck::bytes_of(&params), grid: [rows.div_ceil(64), 1, 1], bytes: (rows * width * 4) as u64 })?;
            drop(draws);
            for (c, t) in choices.iter_mut().zip(self.read(&picks).await?) {
                *c = (t.to_bits() != UNDECIDED).then_some(Choice::Token(t.to_bits()));
            }
            if choices.iter().all(Option::is_some) {
                return Ok(choices.into_iter().flatten().collect());
            }
        }
        // Token ids travel as f32 bit patterns; the read is bit-exact.
        let words = self.read(&out).await?;
        Ok(words
            .chunks_exact(width)
            .zip(asks)
            .zip(choices)
            .map(|((r, a), c)| {
                c.unwrap_or_else(|| {
                    Choice::Select(Selection {
                        cands: r[..2 * k].chunks_exact(2).map(|c| (c[0].to_bits(), c[1])).collect(),
                        mass: (a.inv_temp > 0.0).then(|| r[2 * k + 1] as f64),
                        // The row's max is its first candidate's logit.
                        lse: a.lse.then(|| r[1] as f64 + (r[2 * k] as f64).ln()),
                    })
                })
            })
            .collect())
    }

    /// Compiles what a LLaMA-family model runs: per weight format the fused linear's
    /// variants (q/k/v: norm and store, with or without bias; o and down: add; gate/up: norm
    /// and silu·mul; lm_head: norm and store), decode and prefill, and the other kernels.
    fn prepare(&self, matmul: &[WeightFormat], embed: WeightFormat) -> Result<()> {
        let mut kernels = vec![Kernel::Embed(embed), Kernel::RowNorms, Kernel::RopeAppend, Kernel::AttentionSplit(false), Kernel::AttentionSplit(true), Kernel::AttentionMerge, Kernel::AttentionPrefill];
        kernels.extend([Kernel::Penalize, Kernel::TopK, Kernel::Pick, Kernel::Combine(2)]);
        kernels.extend([Norm::None, Norm::Inline, Norm::Rows].map(Kernel::Shrink));
        for &f in matmul {
            kernels.extend([(Norm::Inline, Epi::Store { bias: false }), (Norm::None, Epi::Add), (Norm::Inline, Epi::Glu(Act::Silu))].map(|(n, e)| Kernel::Matvec(f, n, e)));
            kernels.extend([(Norm::Rows, Epi::Store { bias: false }), (Norm::None, Epi::Add)].map(|(n, e)| Kernel::Matmul(f, n, e)));
        }
        for k in kernels {
            self.0.pipes.get(&self.0.ctx.device, k, || self.0.pool.new_id());
        }
        self.0.ctx.check()
    }
}

/// pick.wgsl's answer for a row it leaves to the sampler.
const UNDECIDED: u32 = u32::MAX;

/// A row's `Draw` as pick.wgsl reads it (a row without one is inactive).
fn draw(a: &SelectRow) -> Draw {
    let Some(d) = a.draw else { return Draw::default() };
    let inv_t = if d.temperature > 0.0 { 1.0 / d.temperature } else { 0.0 };
    let top_k = d.top_k.min(u32::MAX as usize) as u32;
    let partial = (a.inv_temp > 0.0) as u32;
    Draw { wanted: 1, inv_t, top_k, top_p: d.top_p, min_p: d.min_p, uniform: d.uniform as f32, partial, pad: 0 }
}
