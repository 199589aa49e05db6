//! Recording the fused linear: the call's route table (every weight's, one buffer with the T
//! scratch after it), one shrink for all the group's adapters, then one pass of the base
//! kernel over the whole group with the norm in its prologue, the expand and the epilogue in
//! its epilogue: `matvec.wgsl` for decode (n < 16 rows), `matmul.wgsl` for prefill (after
//! `rms.wgsl`'s row norms). A group that one pass cannot cover (weights in several stores or
//! chunks, prefill's silu·mul) stores each weight's result side by side and finishes with
//! `combine.wgsl`.

use super::encoder::Dispatch;
use super::layout::{CombineParams, LinearParams, RouteEntry};
use super::pipelines::{Epi, Kernel, Norm};
use super::{GpuBackend, GpuTensor, Inner};
use crate::backend::linear::{Epilogue, Linear, Part};
use crate::backend::routing::NO_GAIN;
use crate::error::Result;

/// Rows at which the tiled kernel takes over from the matvec one.
pub const PREFILL_ROWS: usize = 16;
/// Route tables kept for reuse (one per group of a model: 4 per layer and the lm_head).
const MAX_CACHED_ROUTES: usize = 1024;

/// The call's route table: `row_start` for every (weight, row), then the entries weight by
/// weight (T offsets made global), as `routes.wgsl` reads them. Returns (words, the word the
/// entries start at, T's length, entries, the largest rank, some entry is DoRA).
fn route_words(parts: &[Part<'_, GpuBackend>], n: usize) -> (Vec<u32>, usize, usize, usize, u32, bool) {
    let entries: usize = parts.iter().map(|p| p.routes.entries.len()).sum();
    let starts = parts.len() * n + 1;
    let mut w = Vec::with_capacity(starts + 8 * entries);
    let (mut e0, mut t0, mut max_rank, mut dora) = (0u32, 0u32, 0, false);
    for p in parts {
        w.extend(p.routes.row_start[..n].iter().map(|s| e0 + s));
        e0 += p.routes.entries.len() as u32;
    }
    w.push(e0);
    for p in parts {
        for e in &p.routes.entries {
            let g = RouteEntry { row: e.row, a_off: e.a_off, b_off: e.b_off, rank_format: e.rank | e.format << 16, t_off: t0 + e.t_off, coef: e.coef, g_off: e.g_off, gw: e.gw };
            w.extend_from_slice(bytemuck::cast_slice(&[g]));
            max_rank = max_rank.max(e.rank);
            dora |= e.g_off != NO_GAIN;
        }
        t0 += p.routes.t_len as u32;
    }
    (w, starts, t0 as usize, entries, max_rank, dora)
}

pub(super) fn encode(g: &Inner, op: Linear<'_, GpuBackend>) -> Result<()> {
    let (n, cols) = (op.rows(), op.cols());
    let Linear { x, norm, parts, arena, epilogue, .. } = op;
    let outs: Vec<usize> = parts.iter().map(|p| p.weight.rows).collect();
    let total: usize = outs.iter().sum();
    let ends: Vec<u32> = outs.iter().scan(0, |a, o| Some({ *a += o; *a as u32 })).collect();
    let end = |i: usize| ends.get(i).copied().unwrap_or(total as u32);
    let (words, entries_at, t_len, entries, max_rank, dora) = route_words(&parts, n);
    // Without adapters the table is all zeros (no entries for any row): nothing to upload.
    // With adapters, a decode step reuses its group's last table when it is the same (it
    // usually is); its T is rewritten by each call's shrink, in order. Prefill's (larger,
    // rarer) tables are not kept.
    let (zeros, scratch);
    let mut cache = g.routes.borrow_mut();
    let lora_b = if entries == 0 {
        zeros = g.zeros((words.len() * 4) as u64);
        (&zeros.0, zeros.1)
    } else if n >= PREFILL_ROWS {
        scratch = g.scratch(((words.len() + t_len) * 4) as u64);
        g.ctx.queue.write_buffer(&scratch.buf, 0, bytemuck::cast_slice(&words));
        (&scratch.buf, scratch.id)
    } else {
        let bytes = ((words.len() + t_len) * 4) as u64;
        let hit = cache.get(&arena.id).is_some_and(|(w, b)| *w == words && b.buf.size() >= bytes);
        if !hit {
            if cache.len() >= MAX_CACHED_ROUTES {
                cache.clear();
            }
            let lora = g.scratch(bytes);
            g.ctx.queue.write_buffer(&lora.buf, 0, bytemuck::cast_slice(&words));
            cache.insert(arena.id, (words.clone(), lora));
        }
        let lora = &cache[&arena.id].1;
        (&lora.buf, lora.id)
    };

    let decode = n < PREFILL_ROWS;
    let (gain, eps) = norm.map_or((None, 0.0), |(gain, eps)| (Some(gain), eps));
    let unused = (&g.unused.0, g.unused.1);
    let gain_b = gain.map_or(unused, |t| t.bind());
    let rows_norm = gain.is_some() && !decode;
    let mode = match (gain, decode) {
        (None, _) => Norm::None,
        (Some(_), true) => Norm::Inline,
        (Some(_), false) => Norm::Rows,
    };
    let base = LinearParams {
        n: n as u32,
        cols: cols as u32,
        rows: total as u32,
        parts: parts.len() as u32,
        end0: end(0),
        end1: end(1),
        end2: end(2),
        entries: entries_at as u32,
        t_base: words.len() as u32,
        dora: dora as u32,
        eps,
        ..Default::default()
    };
    let x_b = x.bind();
    // Prefill's row norms.
    let rs = rows_norm.then(|| g.scratch((n * 4) as u64));
    if let Some(rs) = &rs {
        let (wg_x, [gx, gy]) = g.fold(n);
        let params = LinearParams { wg_x: wg_x as u32, ..base };
        let bufs = [x_b, (&rs.buf, rs.id)];
        g.dispatch(Dispatch { kernel: Kernel::RowNorms, bufs: &bufs, params: bytemuck::bytes_of(&params), grid: [gx, gy, 1], bytes: (n * cols * 4) as u64 })?;
    }
    let rs_b = rs.as_ref().map_or(unused, |r| (&r.buf, r.id));
    // Bytes of the adapters' A (read by the shrink) and B (by the expand).
    let (mut a_bytes, mut b_bytes) = (0u64, 0u64);
    for (p, &out) in parts.iter().zip(&outs) {
        for e in &p.routes.entries {
            let per = e.rank as u64 * if e.format == 0 { 4 } else { 2 };
            (a_bytes, b_bytes) = (a_bytes + per * cols as u64, b_bytes + per * out as u64);
        }
    }
    if entries > 0 {
        let bufs = [x_b, (&arena.buf, arena.id), lora_b, gain_b, rs_b];
        let bytes = a_bytes + (n * cols * 4) as u64;
        g.dispatch(Dispatch { kernel: Kernel::Shrink(mode), bufs: &bufs, params: bytemuck::bytes_of(&base), grid: [entries, max_rank as usize, 1], bytes })?;
    }

    // One pass over the whole group where its weights are one run of one chunk.
    let first = parts[0].weight;
    let one_run = parts.windows(2).all(|w| w[0].weight.followed_by(w[1].weight));
    let pieces = first.pieces(0..first.rows);
    let whole = one_run && first.store.chunks.iter().any(|c| c.row0 <= first.row0 && first.row0 + total <= c.row0 + c.rows);
    let glu = matches!(epilogue, Epilogue::Glu(..));
    let main = |epi: Epi, out: &GpuTensor, chunk: (&wgpu::Buffer, u64), row0: usize, rows: usize, w_row0: usize, fmt| -> Result<()> {
        let out_cols = out.cols as u32;
        let bias_b = match &epilogue {
            Epilogue::Store { bias: Some(b), .. } if matches!(epi, Epi::Store { bias: true }) => b.bind(),
            _ => unused,
        };
        let bufs = [chunk, x_b, (&arena.buf, arena.id), lora_b, out.bind(), gain_b, bias_b, rs_b];
        let wbytes = first.format.bytes_for(rows * cols) as u64 * if glu && decode { 2 } else { 1 };
        let bytes = wbytes + (n * (cols + rows) * 4) as u64 + b_bytes;
        let mut p = LinearParams { rows: rows as u32, row0: row0 as u32, w_row0: w_row0 as u32, out_cols, ..base };
        let (kernel, grid) = if decode {
            let units = if matches!(epi, Epi::Glu(_)) { rows } else { rows.div_ceil(2) };
            let (wg_x, [gx, gy]) = g.fold(units);
            p.wg_x = wg_x as u32;
            (Kernel::Matvec(fmt, mode, epi), [gx, gy, n.div_ceil(4)])
        } else {
            (Kernel::Matmul(fmt, mode, epi), [rows.div_ceil(64), n.div_ceil(64), 1])
        };
        g.dispatch(Dispatch { kernel, bufs: &bufs, params: bytemuck::bytes_of(&p), grid, bytes })
    };
    if whole && (decode || !glu) {
        let piece = &pieces[0];
        let chunk = (&piece.chunk.buf, piece.chunk.id);
        let (epi, rows) = match &epilogue {
            Epilogue::Store { bias, .. } => (Epi::Store { bias: bias.is_some() }, total),
            Epilogue::Add(_) => (Epi::Add, total),
            Epilogue::Glu(_, act) => (Epi::Glu(*act), outs[0]),
        };
        return main(epi, epilogue.target(), chunk, 0, rows, piece.chunk_row, first.format);
    }
    // Each weight chunk by chunk, side by side in the output (a plain store) or a scratch,
    // then the epilogue.
    let tmp = match &epilogue {
        Epilogue::Store { .. } => None,
        _ => Some(GpuTensor { buf: g.scratch((n * total * 4) as u64), rows: n, cols: total }),
    };
    let mut row0 = 0;
    for p in &parts {
        for piece in p.weight.pieces(0..p.weight.rows) {
            let out = tmp.as_ref().unwrap_or_else(|| epilogue.target());
            main(Epi::Store { bias: false }, out, (&piece.chunk.buf, piece.chunk.id), row0 + piece.rows.start, piece.rows.len(), piece.chunk_row, p.weight.format)?;
        }
        row0 += p.weight.rows;
    }
    let (mode, y) = match (&epilogue, &tmp) {
        (Epilogue::Store { bias: Some(b), .. }, _) => (0, *b),
        (Epilogue::Store { bias: None, .. }, _) => return Ok(()),
        (Epilogue::Add(_), Some(t)) => (1, t),
        (Epilogue::Glu(_, act), t) => (Epi::Glu(*act).code(), t.as_ref().expect("a scratch")),
        (Epilogue::Add(_), None) => unreachable!("an add always has a scratch"),
    };
    let out = epilogue.target();
    let len = out.rows * out.cols;
    let params = CombineParams { len: len as u32, cols: out.cols as u32, in_cols: y.cols as u32, pad: 0 };
    let bufs = [out.bind(), y.bind()];
    g.dispatch(Dispatch { kernel: Kernel::Combine(mode), bufs: &bufs, params: bytemuck::bytes_of(&params), grid: g.grid_1d(len), bytes: (len * 12) as u64 })
}
