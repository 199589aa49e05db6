//! `ModelOps` on the GPU: the model's element-wise ops, norms, RoPE and attention as WGSL
//! passes over resident buffers, with the KV cache resident too. Only what the caller reads
//! back (logits) leaves the GPU.

use super::pipelines::Kernel;
use super::{GpuBackend, GpuTensor, GpuWeight, Inner, STORAGE};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::backend::ops::{check_attention, same_shape, ModelOps};
use crate::backend::select::{check_top_k, Choice, SelectRow, Selection, DRAW_MARGIN};
use crate::formats::weights::WeightFormat;
use bytemuck::{Pod, Zeroable};
use std::rc::Rc;

/// Prefills of at least this many rows run the tiled attention kernel, which takes this many
/// rows a workgroup (attention_prefill.wgsl's ROWS).
const PREFILL_TILED_ROWS: usize = 16;
/// The tiled kernel's largest head dim (its lanes' registers hold 1/8 of a query row and of
/// its output each).
const PREFILL_MAX_HEAD_DIM: usize = 256;

/// One layer's keys and values for one sequence: `[capacity, width]` f32 buffers, grown by
/// doubling (a GPU copy) when a forward pass needs more positions.
pub struct GpuKv {
    bufs: Option<[(wgpu::Buffer, u64); 2]>,
    cap: usize,
    len: usize,
    width: usize,
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

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Words4([u32; 4]);

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    cols: u32,
    eps: f32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AttnParams {
    rows: u32,
    pos0: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    window: u32,
    span: u32,
    scale: f32,
}

impl GpuBackend {
    /// A storage buffer holding `data` (pooled; e.g. token ids or RoPE tables).
    fn upload(&self, bytes: &[u8]) -> super::pool::PoolBuf {
        let b = self.0.pool.acquire(&self.0.ctx.device, bytes.len() as u64, STORAGE);
        self.0.ctx.queue.write_buffer(&b.buf, 0, bytes);
        b
    }

    /// `x[i] += y[i mod y_len]`.
    fn add_cyclic(&self, x: &mut GpuTensor, y: &GpuTensor, y_len: usize) -> Result<()> {
        let len = x.rows * x.cols;
        let params = Words4([len as u32, y_len as u32, 0, 0]);
        let bufs = [(&x.buf.buf, x.buf.id), (&y.buf.buf, y.buf.id)];
        self.0.run(Kernel::Add, &bufs, bytemuck::bytes_of(&params), self.0.grid_1d(len))
    }

    /// Copies rows of tensors into a new one: `(tensor, first row, rows)` in order.
    fn gather_rows(&self, parts: &[(&GpuTensor, usize, usize)], cols: usize) -> Result<GpuTensor> {
        let rows = parts.iter().map(|p| p.2).sum();
        let out = self.empty(rows, cols)?;
        self.0.record(|enc| {
            let mut at = 0u64;
            for &(t, r0, n) in parts {
                let bytes = (n * cols * 4) as u64;
                if bytes > 0 {
                    enc.copy_buffer_to_buffer(&t.buf.buf, (r0 * cols * 4) as u64, &out.buf.buf, at, bytes);
                }
                at += bytes;
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Makes room for `needed` positions, keeping the ones held.
    fn kv_reserve(&self, kv: &mut GpuKv, needed: usize) -> Result<()> {
        if needed <= kv.cap && kv.bufs.is_some() {
            return Ok(());
        }
        let row = (kv.width * 4) as u64;
        let limit = (self.0.ctx.max_binding / row) as usize;
        if needed > limit {
            return Err(Error::limit(format!(
                "the KV cache for {needed} positions of width {} exceeds the GPU's storage binding limit of {} bytes",
                kv.width, self.0.ctx.max_binding
            )));
        }
        let cap = needed.max(kv.cap * 2).max(16).min(limit);
        let usage = STORAGE | wgpu::BufferUsages::COPY_SRC;
        let make = || -> Result<(wgpu::Buffer, u64)> { Ok((self.buffer("kv cache", cap as u64 * row, usage)?, self.0.pool.new_id())) };
        let new = [make()?, make()?];
        if let Some(old) = kv.bufs.take() {
            // Recorded after the passes that filled the old cache; the old buffers are freed
            // when the last handle (here and in recorded commands) goes.
            let len = kv.len as u64;
            self.0.record(|enc| {
                for ((o, oid), (n, _)) in old.iter().zip(&new) {
                    if len > 0 {
                        enc.copy_buffer_to_buffer(o, 0, n, 0, len * row);
                    }
                    self.0.pool.forget(*oid);
                }
                Ok(())
            })?;
        }
        kv.bufs = Some(new);
        kv.cap = cap;
        Ok(())
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

    fn kv_truncate(&self, kv: &mut GpuKv, len: usize) {
        kv.len = kv.len.min(len);
    }

    fn embed(&self, table: &GpuWeight, ids: &[u32]) -> Result<GpuTensor> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= table.rows) {
            return Err(Error::shape(format!("token id {id} is outside the vocabulary of {}", table.rows)));
        }
        let (n, cols) = (ids.len(), table.cols);
        let out = self.empty(n, cols)?;
        let ids_buf = self.upload(bytemuck::cast_slice(ids));
        self.0.record(|enc| {
            for c in &table.chunks {
                let params = Words4([n as u32, cols as u32, c.row0 as u32, c.rows as u32]);
                let bufs = [(&c.buf, c.id), (&ids_buf.buf, ids_buf.id), (&out.buf.buf, out.buf.id)];
                self.0.pass(enc, Kernel::Embed(table.format), &bufs, bytemuck::bytes_of(&params), [cols.div_ceil(64), n, 1])?;
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn rms_norm(&self, x: &GpuTensor, w: &GpuTensor, eps: f32) -> Result<GpuTensor> {
        if w.rows * w.cols != x.cols {
            return Err(Error::shape(format!("rms_norm: gain of {} for rows of {}", w.rows * w.cols, x.cols)));
        }
        let out = self.empty(x.rows, x.cols)?;
        let params = NormParams { cols: x.cols as u32, eps, pad: [0; 2] };
        let bufs = [(&x.buf.buf, x.buf.id), (&w.buf.buf, w.buf.id), (&out.buf.buf, out.buf.id)];
        self.0.run(Kernel::RmsNorm, &bufs, bytemuck::bytes_of(&params), [x.rows, 1, 1])?;
        Ok(out)
    }

    fn add_bias(&self, x: &mut GpuTensor, b: &GpuTensor) -> Result<()> {
        if b.rows * b.cols != x.cols {
            return Err(Error::shape(format!("bias of {} for rows of {}", b.rows * b.cols, x.cols)));
        }
        self.add_cyclic(x, b, x.cols)
    }

    fn rope(&self, x: &mut GpuTensor, head_dim: usize, pos0: usize, inv_freq: &[f64]) -> Result<()> {
        let half = head_dim / 2;
        if head_dim % 2 != 0 || x.cols % head_dim != 0 || inv_freq.len() < half {
            return Err(Error::shape(format!("rope: rows of {} with heads of {head_dim}", x.cols)));
        }
        // cos/sin per (row, pair) in f64, as the CPU path computes them.
        let mut cs = Vec::with_capacity(x.rows * half * 2);
        for r in 0..x.rows {
            for &f in &inv_freq[..half] {
                let a = (pos0 + r) as f64 * f;
                cs.extend([a.cos() as f32, a.sin() as f32]);
            }
        }
        let cs = self.upload(bytemuck::cast_slice(&cs));
        let params = Words4([x.rows as u32, x.cols as u32, head_dim as u32, 0]);
        let bufs = [(&x.buf.buf, x.buf.id), (&cs.buf, cs.id)];
        self.0.run(Kernel::Rope, &bufs, bytemuck::bytes_of(&params), self.0.grid_1d(x.rows * x.cols / 2))
    }

    fn attention(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        kv: &mut GpuKv,
        pos0: usize,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        window: Option<usize>,
    ) -> Result<GpuTensor> {
        check_attention([q.rows, q.cols], [k.rows, k.cols], [v.rows, v.cols], kv.width, kv.len, pos0, heads, kv_heads, head_dim)?;
        let rows = q.rows;
        let span = pos0 + rows;
        self.kv_reserve(kv, span)?;
        let out = self.empty(rows, q.cols)?;
        let [(kb, kid), (vb, vid)] = kv.bufs.as_ref().expect("reserved");
        let (at, bytes) = ((pos0 * kv.width * 4) as u64, (rows * kv.width * 4) as u64);
        let params = AttnParams {
            rows: rows as u32,
            pos0: pos0 as u32,
            heads: heads as u32,
            kv_heads: kv_heads as u32,
            head_dim: head_dim as u32,
            window: window.unwrap_or(0) as u32,
            span: span as u32,
            scale: 1.0 / (head_dim as f32).sqrt(),
        };
        let (q_, k_, v_, o_) = ((&q.buf.buf, q.buf.id), (kb, *kid), (vb, *vid), (&out.buf.buf, out.buf.id));
        self.0.record(|enc| {
            enc.copy_buffer_to_buffer(&k.buf.buf, 0, kb, at, bytes);
            enc.copy_buffer_to_buffer(&v.buf.buf, 0, vb, at, bytes);
            if rows >= PREFILL_TILED_ROWS && head_dim <= PREFILL_MAX_HEAD_DIM {
                // Tiled: no score scratch, so a long prompt needs no rows × positions buffer.
                let bufs = [q_, k_, v_, o_];
                self.0.pass(enc, Kernel::AttentionPrefill, &bufs, bytemuck::bytes_of(&params), [rows.div_ceil(PREFILL_TILED_ROWS), heads, 1])
            } else {
                // Few rows (decode): 64 threads per row spread over the positions instead.
                let scratch = self.0.pool.acquire(&self.0.ctx.device, (rows * heads * span * 4) as u64, STORAGE);
                let bufs = [q_, k_, v_, (&scratch.buf, scratch.id), o_];
                self.0.pass(enc, Kernel::Attention, &bufs, bytemuck::bytes_of(&params), [rows, heads, 1])
            }
        })?;
        kv.len = span;
        Ok(out)
    }

    fn silu_mul(&self, gate: &mut GpuTensor, up: &GpuTensor) -> Result<()> {
        same_shape([gate.rows, gate.cols], [up.rows, up.cols], "silu_mul")?;
        let len = gate.rows * gate.cols;
        let params = Words4([len as u32, 0, 0, 0]);
        let bufs = [(&gate.buf.buf, gate.buf.id), (&up.buf.buf, up.buf.id)];
        self.0.run(Kernel::SiluMul, &bufs, bytemuck::bytes_of(&params), self.0.grid_1d(len))
    }

    fn add(&self, x: &mut GpuTensor, y: &GpuTensor) -> Result<()> {
        same_shape([x.rows, x.cols], [y.rows, y.cols], "add")?;
        self.add_cyclic(x, y, x.rows * x.cols)
    }

    fn rows(&self, x: &GpuTensor, start: usize, len: usize) -> Result<GpuTensor> {
        if start + len > x.rows {
            return Err(Error::shape(format!("rows {start}..{} of a tensor with {}", start + len, x.rows)));
        }
        self.gather_rows(&[(x, start, len)], x.cols)
    }

    async fn top_k(&self, logits: &mut GpuTensor, k: usize, asks: &[SelectRow]) -> Result<Vec<Choice>> {
        let (rows, vocab) = (logits.rows, logits.cols);
        check_top_k(rows, vocab, k, asks)?;
        // The repetition penalty in place: one (logit index, penalty) entry per distinct token.
        let mut entries = Vec::new();
        for (row, a) in asks.iter().enumerate() {
            for &t in a.penalized.iter().filter(|&&t| (t as usize) < vocab) {
                entries.extend([(row * vocab) as u32 + t, a.penalty.to_bits()]);
            }
        }
        if !entries.is_empty() {
            let n = entries.len() / 2;
            let e = self.upload(bytemuck::cast_slice(&entries));
            let bufs = [(&logits.buf.buf, logits.buf.id), (&e.buf, e.id)];
            self.0.run(Kernel::Penalize, &bufs, bytemuck::bytes_of(&Words4([n as u32, 0, 0, 0])), self.0.grid_1d(n))?;
        }
        // Per row k pairs, then (0, mass) when some row wants it.
        let need_mass = asks.iter().any(|a| a.inv_temp > 0.0) as usize;
        let width = 2 * (k + need_mass);
        let out = self.empty(rows, width)?;
        let inv_t: Vec<f32> = asks.iter().map(|a| a.inv_temp).collect();
        let inv_t = self.upload(bytemuck::cast_slice(&inv_t));
        let bufs = [(&logits.buf.buf, logits.buf.id), (&inv_t.buf, inv_t.id), (&out.buf.buf, out.buf.id)];
        self.0.run(Kernel::TopK, &bufs, bytemuck::bytes_of(&Words4([vocab as u32, k as u32, need_mass as u32, 0])), [rows, 1, 1])?;
        drop(inv_t); // reusable after the submit
        // Rows with a draw: the pick itself (pick.wgsl), one u32 back per row (greedy too);
        // only rows it cannot be sure of read their selection.
        let mut choices: Vec<Option<Choice>> = vec![None; rows];
        if asks.iter().any(|a| a.draw.is_some()) {
            let draws: Vec<[u32; 8]> = asks.iter().map(draw_words).collect();
            let draws = self.upload(bytemuck::cast_slice(&draws));
            let picks = self.empty(rows, 1)?;
            let bufs = [(&out.buf.buf, out.buf.id), (&draws.buf, draws.id), (&picks.buf.buf, picks.buf.id)];
            let params = Words4([k as u32, need_mass as u32, rows as u32, DRAW_MARGIN.to_bits()]);
            self.0.run(Kernel::Pick, &bufs, bytemuck::bytes_of(&params), [rows.div_ceil(64), 1, 1])?;
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
                    })
                })
            })
            .collect())
    }

    fn prepare(&self, matmul: &[WeightFormat], embed: WeightFormat) -> Result<()> {
        let mut kernels = vec![Kernel::LoraShrink, Kernel::Embed(embed), Kernel::RmsNorm, Kernel::Add, Kernel::SiluMul, Kernel::Rope];
        kernels.extend([Kernel::Attention, Kernel::AttentionPrefill, Kernel::Penalize, Kernel::TopK, Kernel::Pick]);
        kernels.extend(matmul.iter().flat_map(|&f| [Kernel::LoraMatvec(f), Kernel::LoraMatmul(f)]));
        for k in kernels {
            self.0.pipes.get(&self.0.ctx.device, k, || self.0.pool.new_id());
        }
        self.0.ctx.check()
    }

    fn concat_rows(&self, parts: &[GpuTensor]) -> Result<GpuTensor> {
        let cols = parts.first().map_or(0, |p| p.cols);
        if parts.iter().any(|p| p.cols != cols) {
            return Err(Error::shape("concat_rows: parts of different widths"));
        }
        let spans: Vec<_> = parts.iter().map(|p| (p, 0, p.rows)).collect();
        self.gather_rows(&spans, cols)
    }
}

/// pick.wgsl's answer for a row it leaves to the sampler.
const UNDECIDED: u32 = u32::MAX;

/// A row's `Draw` as pick.wgsl reads it (a row without one is inactive).
fn draw_words(a: &SelectRow) -> [u32; 8] {
    let Some(d) = a.draw else { return [0; 8] };
    let inv_t = if d.temperature > 0.0 { 1.0 / d.temperature } else { 0.0 };
    let top_k = d.top_k.min(u32::MAX as usize) as u32;
    let partial = (a.inv_temp > 0.0) as u32;
    [1, f32::to_bits(inv_t), top_k, d.top_p.to_bits(), d.min_p.to_bits(), (d.uniform as f32).to_bits(), partial, 0]
}
