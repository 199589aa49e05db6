//! Recording the fused LoRA linear: one shrink pass (T = coef·X·Aᵀ for every route entry),
//! then per weight chunk one matvec (n < 16) or tiled matmul pass that adds T·Bᵀ in-tile.

use super::pipelines::Kernel;
use super::{GpuArena, GpuTensor, GpuWeight, Inner, STORAGE};
use crate::backend::check_linear_shapes;
use crate::error::{Error, Result};
use crate::backend::routing::Routes;
use bytemuck::{Pod, Zeroable};

/// Rows at which the tiled kernel takes over from the matvec one.
pub const PREFILL_ROWS: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LinearParams {
    n: u32,
    cols: u32,
    rows: u32,
    out_base: u32,
    y_stride: u32,
    wg_x: u32,
    dora: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ShrinkParams {
    n: u32,
    cols: u32,
    rows: u32,
    pad: u32,
}

pub(super) fn encode(
    g: &Inner,
    x: &GpuTensor,
    w: &GpuWeight,
    arena: &GpuArena,
    routes: &Routes,
    y: &mut GpuTensor,
) -> Result<()> {
    g.ctx.check()?;
    let n = x.rows;
    check_linear_shapes([x.rows, x.cols], [w.rows, w.cols], [y.rows, y.cols], routes)?;
    let max = g.ctx.max_dispatch as usize;
    if routes.entries.len() > max || n.div_ceil(64) > max {
        return Err(Error::shape(format!(
            "{n} rows with {} adapter entries exceed one GPU dispatch ({max} workgroups)",
            routes.entries.len()
        )));
    }
    let dev = &g.ctx.device;
    let words = routes.to_words();
    let routes_buf = g.pool.acquire(dev, (words.len() * 4) as u64, STORAGE);
    g.ctx.queue.write_buffer(&routes_buf.buf, 0, bytemuck::cast_slice(&words));
    let t_buf = g.pool.acquire(dev, (routes.t_len.max(1) * 4) as u64, STORAGE);
    let kernel = if n < PREFILL_ROWS { Kernel::LoraMatvec(w.format) } else { Kernel::LoraMatmul(w.format) };
    let dora = routes.entries.iter().any(|e| e.dora()) as u32;
    g.record(|enc| {
        if !routes.entries.is_empty() {
            let params = ShrinkParams { n: n as u32, cols: x.cols as u32, rows: w.rows as u32, pad: 0 };
            let bufs = [(&x.buf.buf, x.buf.id), (&arena.buf, arena.id), (&routes_buf.buf, routes_buf.id), (&t_buf.buf, t_buf.id)];
            g.pass(enc, Kernel::LoraShrink, &bufs, bytemuck::bytes_of(&params), [routes.entries.len(), routes.max_rank as usize, 1])?;
        }
        for c in &w.chunks {
            let (wg_x, grid) = match kernel {
                Kernel::LoraMatvec(..) => {
                    let wg_x = c.rows.min(max);
                    (wg_x, [wg_x, c.rows.div_ceil(wg_x), n.div_ceil(4)])
                }
                _ => (0, [c.rows.div_ceil(64), n.div_ceil(64), 1]),
            };
            let params = LinearParams {
                n: n as u32,
                cols: w.cols as u32,
                rows: c.rows as u32,
                out_base: c.row0 as u32,
                y_stride: w.rows as u32,
                wg_x: wg_x as u32,
                dora,
                pad: 0,
            };
            let bufs = [
                (&c.buf, c.id),
                (&x.buf.buf, x.buf.id),
                (&arena.buf, arena.id),
                (&t_buf.buf, t_buf.id),
                (&routes_buf.buf, routes_buf.id),
                (&y.buf.buf, y.buf.id),
            ];
            g.pass(enc, kernel, &bufs, bytemuck::bytes_of(&params), grid)?;
        }
        Ok(())
    })
}
