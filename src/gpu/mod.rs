//! GPU backend on wgpu: WebGPU in the browser, Vulkan or GL natively. Weights and adapter
//! arenas stay resident; activations are pooled buffers; every op is a compute pass.

pub mod context;
mod linear;
mod model_ops;
pub mod pipelines;
pub mod pool;
#[cfg(target_arch = "wasm32")]
mod web;

use crate::backend::{ArenaMove, Backend, BackendKind, DoraGain};
use crate::error::{checked_len, Error, Result};
use crate::backend::routing::Routes;
use crate::formats::weights::{HostWeight, WeightFormat};
pub use context::{Context, GpuOptions, GpuStats, ShaderFlags};
pub use model_ops::GpuKv;
use crate::backend::factors::{i16_codes, i16_scales, FactorFormat, RankAxis};
use pipelines::{Kernel, Pipeline, Pipelines};
use pool::{Pool, PoolBuf};
use std::rc::Rc;

#[derive(Clone)]
pub struct GpuBackend(Rc<Inner>);

pub(crate) struct Inner {
    ctx: Context,
    pool: Rc<Pool>,
    pipes: Pipelines,
    /// How adapter factors are stored unless an adapter asks otherwise.
    factors: FactorFormat,
    /// The open encoder: a step's passes and copies, submitted once by `flush` (at a read,
    /// before host writes to live buffers, or when too much memory waits for reuse).
    enc: std::cell::RefCell<Option<wgpu::CommandEncoder>>,
}

/// Past this many bytes of dropped-but-not-yet-reusable buffers, `record` submits early
/// (a long prefill would otherwise keep every intermediate alive until its read).
const MAX_DEFERRED_BYTES: u64 = 64 << 20;

pub struct GpuTensor {
    buf: PoolBuf,
    pub rows: usize,
    pub cols: usize,
}

/// A weight split by rows into chunks that each fit one storage binding.
pub struct GpuWeight {
    pub format: WeightFormat,
    pub rows: usize,
    pub cols: usize,
    chunks: Vec<WeightChunk>,
    owner: Rc<Inner>,
}

struct WeightChunk {
    id: u64,
    buf: wgpu::Buffer,
    row0: usize,
    rows: usize,
}

pub struct GpuArena {
    id: u64,
    buf: wgpu::Buffer,
    /// Capacity in 32-bit words.
    cap: usize,
    owner: Rc<Inner>,
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST);

impl GpuBackend {
    pub async fn new(opts: &GpuOptions) -> Result<GpuBackend> {
        let ctx = Context::new(opts).await?;
        let factors = opts.factors;
        let (pool, pipes) = (Rc::new(Pool::default()), Pipelines::new(ctx.flags));
        Ok(GpuBackend(Rc::new(Inner { ctx, pool, pipes, factors, enc: Default::default() })))
    }

    pub fn context(&self) -> &Context {
        &self.0.ctx
    }

    /// Submits what was recorded and, natively, waits until the GPU has run it: how a
    /// benchmark times work (a read does this itself; recording alone runs nothing).
    pub fn finish(&self) -> Result<()> {
        self.0.flush();
        #[cfg(not(target_arch = "wasm32"))]
        self.0
            .ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::backend(format!("GPU poll failed: {e}")))?;
        self.0.ctx.check()
    }

    /// Pipelines compiled so far (a model compiles its own at load).
    pub fn pipelines_compiled(&self) -> usize {
        self.0.pipes.len()
    }

    /// Number of weight chunks (storage bindings) a weight was split into.
    pub fn weight_chunks(w: &GpuWeight) -> usize {
        w.chunks.len()
    }

    fn buffer(&self, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        if bytes > self.0.ctx.max_binding {
            return Err(Error::shape(format!(
                "{label}: {bytes} bytes exceed the GPU's storage binding limit of {} bytes",
                self.0.ctx.max_binding
            )));
        }
        Ok(self.0.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage,
            mapped_at_creation: false,
        }))
    }

    /// Writes 32-bit words at word `offset`, growing the arena as needed.
    fn arena_write_words(&self, arena: &mut GpuArena, offset: usize, bytes: &[u8]) -> Result<()> {
        self.arena_reserve(arena, offset + bytes.len() / 4)?;
        self.0.ctx.queue.write_buffer(&arena.buf, (offset * 4) as u64, bytes);
        self.0.ctx.check()
    }

    /// Writes a factor matrix in `format` (arena.wgsl's `lora_at` reads it back).
    fn write_factors(&self, arena: &mut GpuArena, offset: usize, data: &[f32], rank: usize, axis: RankAxis, format: FactorFormat) -> Result<()> {
        // 16-bit formats: the halves (padded to a word), then int16's steps per rank.
        let (mut halves, steps): (Vec<u16>, Vec<f32>) = match format {
            FactorFormat::F32 => return self.arena_write_words(arena, offset, bytemuck::cast_slice(data)),
            FactorFormat::F16 => (data.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect(), Vec::new()),
            FactorFormat::I16 => {
                let steps = i16_scales(data, rank, axis);
                let mut codes = Vec::with_capacity(data.len() + 1);
                i16_codes(data, &steps, axis, &mut codes);
                (codes.into_iter().map(|q| q as u16).collect(), steps)
            }
        };
        halves.resize(data.len().next_multiple_of(2), 0);
        let mut bytes: Vec<u8> = bytemuck::cast_slice(&halves).to_vec();
        bytes.extend_from_slice(bytemuck::cast_slice(&steps));
        self.arena_write_words(arena, offset, &bytes)
    }

    /// Replaces the arena's buffer with one of `cap` words holding the `keep` ranges (copied
    /// on the device), then destroys the old one. Growing and packing both come here.
    fn rebuild_arena(&self, arena: &mut GpuArena, cap: usize, keep: &[ArenaMove]) -> Result<()> {
        let buf = self.buffer("lora arena", (cap * 4) as u64, STORAGE | wgpu::BufferUsages::COPY_SRC)?;
        self.0.record(|enc| {
            for m in keep {
                enc.copy_buffer_to_buffer(&arena.buf, (m.from * 4) as u64, &buf, (m.to * 4) as u64, (m.len * 4) as u64);
            }
            Ok(())
        })?;
        self.0.flush();
        self.0.ctx.check()?;
        self.0.pool.forget(arena.id);
        arena.buf.destroy();
        arena.buf = buf;
        arena.cap = cap;
        arena.id = self.0.pool.new_id();
        Ok(())
    }

    fn write_padded(&self, buf: &wgpu::Buffer, bytes: &[u8]) {
        // write_buffer wants a multiple of 4 bytes: send the tail zero-padded.
        let main = bytes.len() / 4 * 4;
        if main > 0 {
            self.0.ctx.queue.write_buffer(buf, 0, &bytes[..main]);
        }
        if main < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - main].copy_from_slice(&bytes[main..]);
            self.0.ctx.queue.write_buffer(buf, main as u64, &tail);
        }
    }
}

impl Inner {
    /// The (cached) bind group binding `bufs` to bindings 0.. of the pipeline's group 0.
    fn bind(&self, pipe: &Pipeline, bufs: &[(&wgpu::Buffer, u64)]) -> wgpu::BindGroup {
        let mut key = vec![pipe.id];
        key.extend(bufs.iter().map(|b| b.1));
        self.pool.bind_group(key, || {
            let layout = pipe.pipeline.get_bind_group_layout(0);
            let entries: Vec<_> = bufs
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.0.as_entire_binding() })
                .collect();
            self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries })
        })
    }

    /// Records one pass of `kernel` into `enc`: `bufs` at bindings 0.., then a uniform holding
    /// `params` (a pooled buffer, reused only after the submit: see `pool.rs`).
    fn pass(
        &self,
        enc: &mut wgpu::CommandEncoder,
        kernel: Kernel,
        bufs: &[(&wgpu::Buffer, u64)],
        params: &[u8],
        grid: [usize; 3],
    ) -> Result<()> {
        let max = self.ctx.max_dispatch as usize;
        if grid.iter().any(|&d| d > max) {
            return Err(Error::shape(format!("{kernel:?}: grid {grid:?} exceeds one GPU dispatch ({max} workgroups)")));
        }
        let uniform = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        let pbuf = self.pool.acquire(&self.ctx.device, params.len() as u64, uniform);
        self.ctx.queue.write_buffer(&pbuf.buf, 0, params);
        let pipe = self.pipes.get(&self.ctx.device, kernel, || self.pool.new_id());
        let mut all = bufs.to_vec();
        all.push((&pbuf.buf, pbuf.id));
        let bg = self.bind(&pipe, &all);
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipe.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(grid[0] as u32, grid[1] as u32, grid[2] as u32);
        Ok(())
    }

    /// Records work into the open encoder (opening one if needed).
    fn record<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<R>) -> Result<R> {
        self.ctx.check()?;
        let r = {
            let mut slot = self.enc.borrow_mut();
            let enc = slot.get_or_insert_with(|| self.ctx.device.create_command_encoder(&Default::default()));
            f(enc)?
        };
        if self.pool.deferred_bytes() > MAX_DEFERRED_BYTES {
            self.flush();
        }
        Ok(r)
    }

    /// Submits what was recorded; buffers dropped meanwhile become reusable.
    fn flush(&self) {
        if let Some(enc) = self.enc.borrow_mut().take() {
            self.ctx.submit(enc.finish());
        }
        self.pool.recycle();
    }

    /// One pass of `kernel`, recorded.
    fn run(&self, kernel: Kernel, bufs: &[(&wgpu::Buffer, u64)], params: &[u8], grid: [usize; 3]) -> Result<()> {
        self.record(|enc| self.pass(enc, kernel, bufs, params, grid))
    }

    /// A 2-D grid of 256-thread workgroups covering `len` elements (kernels index
    /// `gid.x + gid.y · num_workgroups.x · 256`).
    fn grid_1d(&self, len: usize) -> [usize; 3] {
        let groups = len.div_ceil(256).max(1);
        let x = groups.min(self.ctx.max_dispatch as usize);
        [x, groups.div_ceil(x), 1]
    }
}

impl Backend for GpuBackend {
    type Tensor = GpuTensor;
    type Weight = GpuWeight;
    type Arena = GpuArena;

    fn kind(&self) -> BackendKind {
        BackendKind::Gpu
    }

    fn describe(&self) -> String {
        self.0.ctx.adapter_name.clone()
    }

    fn tensor(&self, data: &[f32], rows: usize, cols: usize) -> Result<GpuTensor> {
        if data.len() != checked_len("tensor", &[rows, cols])? {
            return Err(Error::shape(format!("tensor data has {} values for [{rows}, {cols}]", data.len())));
        }
        let t = self.empty(rows, cols)?;
        self.0.ctx.queue.write_buffer(&t.buf.buf, 0, bytemuck::cast_slice(data));
        Ok(t)
    }

    fn empty(&self, rows: usize, cols: usize) -> Result<GpuTensor> {
        let bytes = checked_len("tensor", &[rows, cols, 4])? as u64;
        if bytes > self.0.ctx.max_binding {
            return Err(Error::shape(format!(
                "tensor [{rows}, {cols}] needs {bytes} bytes, over the GPU's storage binding limit of {}",
                self.0.ctx.max_binding
            )));
        }
        let usage = STORAGE | wgpu::BufferUsages::COPY_SRC;
        Ok(GpuTensor { buf: self.0.pool.acquire(&self.0.ctx.device, bytes, usage), rows, cols })
    }

    async fn read(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        let ctx = &self.0.ctx;
        ctx.check()?;
        let bytes = (t.rows * t.cols * 4) as u64;
        let mut st = ctx.stats.get();
        st.read_bytes += bytes;
        ctx.stats.set(st);
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let staging = self.0.pool.acquire(&ctx.device, bytes, usage);
        self.0.record(|enc| {
            enc.copy_buffer_to_buffer(&t.buf.buf, 0, &staging.buf, 0, bytes);
            Ok(())
        })?;
        self.0.flush();
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.buf.slice(..bytes).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::backend(format!("GPU poll failed: {e}")))?;
        let mapped = rx.await.map_err(|_| Error::backend("GPU readback was cancelled"));
        ctx.check()?;
        mapped?.map_err(|e| Error::backend(format!("GPU readback failed: {e}")))?;
        let out = {
            let view = staging
                .buf
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| Error::backend(format!("GPU readback failed: {e:?}")))?;
            view.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        };
        staging.buf.unmap();
        Ok(out)
    }

    fn weight(&self, w: HostWeight) -> Result<GpuWeight> {
        let format = w.format();
        let (block, _) = format.block();
        if w.cols % block != 0 {
            return Err(Error::shape(format!("{} rows of {} weights are not whole blocks of {block}", format.name(), w.cols)));
        }
        let row_bytes = format.bytes_for(w.cols) as u64;
        let mut per_chunk = (self.0.ctx.max_binding / row_bytes) as usize;
        if matches!(format, WeightFormat::F16 | WeightFormat::BF16) && w.cols % 2 == 1 {
            per_chunk -= per_chunk % 2; // chunks must start on a whole u32 of halves
        }
        if per_chunk == 0 {
            return Err(Error::shape(format!(
                "one weight row ({row_bytes} bytes) exceeds the GPU's storage binding limit of {}",
                self.0.ctx.max_binding
            )));
        }
        let bytes = w.bytes();
        let mut chunks = Vec::new();
        for row0 in (0..w.rows).step_by(per_chunk) {
            let rows = per_chunk.min(w.rows - row0);
            let range = format.bytes_for(row0 * w.cols)..format.bytes_for((row0 + rows) * w.cols);
            let buf = self.buffer("weight", range.len() as u64, STORAGE)?;
            self.write_padded(&buf, &bytes[range]);
            chunks.push(WeightChunk { id: self.0.pool.new_id(), buf, row0, rows });
        }
        Ok(GpuWeight { format, rows: w.rows, cols: w.cols, chunks, owner: self.0.clone() })
    }

    /// On the GPU, from the weight as stored: the magnitude goes into the gain slot and one
    /// pass per weight chunk turns it into the gain.
    fn dora_gain(&self, w: &GpuWeight, arena: &mut GpuArena, d: &DoraGain<'_>) -> Result<()> {
        self.arena_write_words(arena, d.g_off, bytemuck::cast_slice(d.magnitude))?;
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct Params([u32; 7], f32, [u32; 4]);
        self.0.record(|enc| {
            for c in &w.chunks {
                let words = [w.cols, c.rows, c.row0, d.rank, d.a_off, d.b_off, d.g_off].map(|v| v as u32);
                let bufs = [(&c.buf, c.id), (&arena.buf, arena.id)];
                let tail = [w.rows as u32, d.format.code(), 0, 0];
                self.0.pass(enc, Kernel::DoraGain(w.format), &bufs, bytemuck::bytes_of(&Params(words, d.scale, tail)), [c.rows, 1, 1])?;
            }
            Ok(())
        })?;
        self.0.flush();
        self.0.ctx.check()
    }

    fn arena(&self) -> GpuArena {
        let buf = self.0.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lora arena"),
            size: 16,
            usage: STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        GpuArena { id: self.0.pool.new_id(), buf, cap: 4, owner: self.0.clone() }
    }

    fn factor_format(&self) -> FactorFormat {
        self.0.factors
    }

    /// Grows to exactly `words` (a device-side copy of what is there): GPU memory is the
    /// scarce kind in a browser, so the arena holds what its adapters take and no headroom.
    fn arena_reserve(&self, arena: &mut GpuArena, words: usize) -> Result<()> {
        // Passes already recorded must read the arena as it was: submit them first.
        self.0.flush();
        if words <= arena.cap {
            return Ok(());
        }
        let all = ArenaMove { from: 0, to: 0, len: arena.cap };
        self.rebuild_arena(arena, words, &[all])
    }

    /// A `[rank, in]`: rank j is row j (B's ranks are its columns).
    fn arena_write_a(&self, arena: &mut GpuArena, offset: usize, a: &[f32], rank: usize, format: FactorFormat) -> Result<()> {
        self.write_factors(arena, offset, a, rank, RankAxis::Rows, format)
    }

    fn arena_write(&self, arena: &mut GpuArena, offset: usize, data: &[f32], rank: usize, format: FactorFormat) -> Result<()> {
        self.write_factors(arena, offset, data, rank, RankAxis::Columns, format)
    }

    /// A new buffer of exactly `len` words receives the kept ranges (GPU-side copies), and
    /// the old one is destroyed: an unload gives back its adapter's words even from the
    /// middle. Nothing is done when the kept ranges already sit in place and fill the buffer.
    fn arena_repack(&self, arena: &mut GpuArena, keep: &[ArenaMove], len: usize) -> Result<()> {
        let cap = len.max(4);
        if cap == arena.cap && keep.iter().all(|m| m.from == m.to) {
            return Ok(());
        }
        self.rebuild_arena(arena, cap, keep)
    }

    fn arena_capacity(&self, arena: &GpuArena) -> usize {
        arena.cap
    }

    fn lora_linear(
        &self,
        x: &GpuTensor,
        w: &GpuWeight,
        arena: &GpuArena,
        routes: &Routes,
        y: &mut GpuTensor,
    ) -> Result<()> {
        linear::encode(&self.0, x, w, arena, routes, y)
    }
}

impl Drop for GpuWeight {
    fn drop(&mut self) {
        self.owner.flush(); // recorded passes may still read it
        for c in &self.chunks {
            self.owner.pool.forget(c.id);
            c.buf.destroy();
        }
    }
}

impl Drop for GpuArena {
    fn drop(&mut self) {
        self.owner.flush();
        self.owner.pool.forget(self.id);
        self.buf.destroy();
    }
}
