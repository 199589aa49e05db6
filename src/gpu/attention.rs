//! Recording attention: Qwen3's per-head q/k norm over the whole batch first
//! (`head_norm.wgsl`), then per sequence of the batch: `rope_append.wgsl` (RoPE of the rows'
//! queries in place and keys into the cache, values copied there), then causal attention over
//! the cache: `attention_split.wgsl` for a few rows (decode; split over the context, with
//! `attention_merge.wgsl` when it took several chunks), `attention_prefill.wgsl` from 16 rows.
//! A sequence's one-row step (decode) is one dispatch: the split kernel does the RoPE and the
//! cache append itself.

use super::encoder::Dispatch;
use super::layout::AttnParams;
use super::model_ops::GpuKv;
use super::pipelines::Kernel;
use super::GpuBackend;
use crate::backend::ops::Attend;
use crate::backend::Shaped;
use crate::error::{Error, Result};

/// Spans of at least this many rows take the tiled kernel (its ROWS rows a workgroup).
const PREFILL_TILED_ROWS: usize = 16;
/// The tiled kernel's largest head dim (its lanes hold 1/8 of a query row and of its output),
/// and the split kernel's (its workgroup memory holds one query).
const MAX_HEAD_DIM: usize = 256;
/// RoPE tables kept uploaded (a model's global and sliding layers' tables).
const ROPE_TABLES: usize = 2;
/// Positions per chunk of the split kernel (attention_split.wgsl's MAX_CHUNK).
const CHUNK: usize = 256;

impl GpuBackend {
    pub(super) fn encode_attend(&self, op: Attend<'_, Self>) -> Result<()> {
        let g = &self.0;
        let h = op.heads;
        let (hd, qw, kvw) = (h.head_dim, h.q_width(), h.kv_width());
        if hd > MAX_HEAD_DIM {
            return Err(Error::unsupported(format!("attention heads of {hd} dims (at most {MAX_HEAD_DIM} on the GPU)")));
        }
        let table = op.rope_table();
        let mut rope = g.rope.borrow_mut();
        // The last two tables stay uploaded: Gemma's layers alternate between the sliding
        // layers' RoPE and the global layers' (one table re-uploaded at every such layer).
        let at = match rope.iter().position(|r| r.0 == table) {
            Some(i) => i,
            None => {
                if rope.len() == ROPE_TABLES {
                    rope.remove(0);
                }
                let buf = self.upload(bytemuck::cast_slice(&table));
                rope.push((table, buf));
                rope.len() - 1
            }
        };
        let cs = &rope[at].1;
        let Attend { qkv, caches, spans, qk_norm, out, .. } = op;
        let w = qkv.cols;
        let params = |rows: usize, row0: usize, pos0: usize, scale: f32, chunks: usize| AttnParams {
            rows: rows as u32,
            row0: row0 as u32,
            pos0: pos0 as u32,
            heads: h.heads as u32,
            kv_heads: h.kv_heads as u32,
            head_dim: hd as u32,
            window: h.window.unwrap_or(0) as u32,
            q_stride: w as u32,
            scale,
            chunks: chunks as u32,
            chunk: CHUNK as u32,
            softcap: h.softcap.unwrap_or(0.0),
        };
        if let Some(n) = qk_norm {
            // Every row of the batch at once, before any span's RoPE.
            let rows = qkv.shape()[0];
            let p = params(rows, 0, 0, n.eps, 1);
            let bufs = [qkv.bind(), n.q.bind(), n.k.bind()];
            let bytes = (rows * (qw + kvw) * 8 + 2 * hd * 4) as u64;
            g.dispatch(Dispatch { kernel: Kernel::HeadNorm, bufs: &bufs, params: bytemuck::bytes_of(&p), grid: g.grid_1d(rows * (h.heads + h.kv_heads)), bytes })?;
        }
        for (s, kv) in spans.iter().zip(caches) {
            let span = s.pos0 + s.rows;
            self.kv_reserve(kv, span)?;
            kv.len = span;
            let [(kb, kid), (vb, vid)] = kv.bufs.as_ref().expect("reserved");
            // Positions the last row attends to (the most any row does).
            let seen = h.window.map_or(span, |win| win.min(span));
            let chunks = if s.rows < PREFILL_TILED_ROWS { seen.div_ceil(CHUNK) } else { 1 };
            let params = params(s.rows, s.row0, s.pos0, h.scale, chunks);
            let p = bytemuck::bytes_of(&params);
            let (qkv_b, kc, vc, out_b) = (qkv.bind(), (kb, *kid), (vb, *vid), out.bind());
            let new = (s.rows * kvw * 4) as u64;
            let fused = s.rows == 1;
            if !fused {
                let items = s.rows * (qw / 2 + kvw / 2 + kvw);
                g.dispatch(Dispatch { kernel: Kernel::RopeAppend, bufs: &[qkv_b, (&cs.buf, cs.id), kc, vc], params: p, grid: g.grid_1d(items), bytes: 4 * new + (s.rows * qw * 8) as u64 })?;
            }
            // What attention reads: the queries, the keys and values of the positions seen.
            let bytes = (s.rows * qw * 8) as u64 + (2 * seen * kvw * 4) as u64 * if s.rows < PREFILL_TILED_ROWS { s.rows as u64 } else { 1 };
            if s.rows >= PREFILL_TILED_ROWS {
                // Tiled: no score scratch, so a long prompt needs no rows × positions buffer.
                let grid = [s.rows.div_ceil(PREFILL_TILED_ROWS), h.heads, 1];
                g.dispatch(Dispatch { kernel: Kernel::AttentionPrefill, bufs: &[qkv_b, kc, vc, out_b], params: p, grid, bytes })?;
            } else if chunks == 1 {
                let unused = (&g.unused.0, g.unused.1);
                let bufs = [qkv_b, kc, vc, out_b, unused, (&cs.buf, cs.id)];
                g.dispatch(Dispatch { kernel: Kernel::AttentionSplit(fused), bufs: &bufs, params: p, grid: [1, h.heads, s.rows], bytes })?;
            } else {
                let part = g.scratch((s.rows * h.heads * chunks * (2 + hd) * 4) as u64);
                let part_b = (&part.buf, part.id);
                let bufs = [qkv_b, kc, vc, out_b, part_b, (&cs.buf, cs.id)];
                g.dispatch(Dispatch { kernel: Kernel::AttentionSplit(fused), bufs: &bufs, params: p, grid: [chunks, h.heads, s.rows], bytes })?;
                let merged = (s.rows * h.heads * chunks * (2 + hd) * 4 + s.rows * qw * 4) as u64;
                g.dispatch(Dispatch { kernel: Kernel::AttentionMerge, bufs: &[part_b, out_b], params: p, grid: [h.heads, s.rows, 1], bytes: merged })?;
            }
        }
        Ok(())
    }

    /// Makes room for `needed` positions, keeping the ones held.
    fn kv_reserve(&self, kv: &mut GpuKv, needed: usize) -> Result<()> {
        if needed <= kv.cap && kv.bufs.is_some() {
            return Ok(());
        }
        let g = &self.0;
        let row = (kv.width * 4) as u64;
        let limit = (g.ctx.max_binding / row) as usize;
        if needed > limit {
            return Err(Error::limit(format!(
                "the KV cache for {needed} positions of width {} exceeds the GPU's storage binding limit of {} bytes",
                kv.width, g.ctx.max_binding
            )));
        }
        let cap = needed.max(kv.cap * 2).max(16).min(limit);
        let usage = super::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let make = || -> Result<(wgpu::Buffer, u64)> { Ok((g.buffer("kv cache", cap as u64 * row, usage)?, g.pool.new_id())) };
        let new = [make()?, make()?];
        if let Some(old) = kv.bufs.take() {
            // Recorded after the passes that filled the old cache; the old buffers are freed
            // when the last handle (here and in recorded commands) goes.
            for ((o, oid), (n, _)) in old.iter().zip(&new) {
                g.copy(o, 0, n, 0, kv.len as u64 * row)?;
                g.pool.forget(*oid);
            }
        }
        kv.bufs = Some(new);
        kv.cap = cap;
        Ok(())
    }
}
