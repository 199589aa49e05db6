//! GPU backend on wgpu: WebGPU in the browser, Vulkan or GL natively. Weights (`weights.rs`)
//! and adapter arenas (`arena.rs`) stay resident; activations are pooled buffers
//! (`pool.rs`); every op is a dispatch in the step's one open pass (`encoder.rs`), the fused
//! linear's in `linear.rs`, attention's in `attention.rs`, the rest in `model_ops.rs`.

mod arena;
mod attention;
pub mod context;
mod encoder;
pub mod layout;
mod linear;
mod model_ops;
pub mod pipelines;
pub mod pool;
pub mod profile;
#[cfg(target_arch = "wasm32")]
mod web;
mod weights;

use crate::backend::factors::FactorFormat;
use crate::backend::linear::Linear;
use crate::backend::{Backend, BackendKind, DoraGain, Shaped};
use crate::error::{checked_len, Error, Result};
use crate::formats::weights::HostWeight;
pub use arena::GpuArena;
pub use context::{Context, GpuOptions, GpuStats, ShaderFlags};
use encoder::{Dispatch, Open, Ring};
use layout::DoraParams;
pub use model_ops::GpuKv;
use pipelines::{Kernel, Pipelines};
use pool::{Pool, PoolBuf};
use std::cell::RefCell;
use std::rc::Rc;
pub use weights::GpuWeight;

#[derive(Clone)]
pub struct GpuBackend(Rc<Inner>);

pub(crate) struct Inner {
    ctx: Context,
    pool: Rc<Pool>,
    pipes: Pipelines,
    /// How adapter factors are stored unless an adapter asks otherwise.
    factors: FactorFormat,
    /// The open encoder and pass: a step's work, submitted once by `flush` (at a read, before
    /// host writes to live buffers, or when too much memory waits for reuse).
    open: RefCell<Option<Open>>,
    /// The dispatches' parameters (`encoder.rs`).
    ring: RefCell<Ring>,
    profile: RefCell<Option<profile::Profile>>,
    /// A 16-byte buffer bound where a kernel's optional input is unused.
    unused: (wgpu::Buffer, u64),
    /// Zeros (grown on demand): the route table of a call without adapters, uploaded never.
    zeros: RefCell<(wgpu::Buffer, u64)>,
    /// The last RoPE tables uploaded (at most `attention::ROPE_TABLES`): every layer of a step
    /// attends at the same positions, with one table per kind of layer.
    rope: RefCell<Vec<(Vec<[f32; 2]>, PoolBuf)>>,
    /// Per group (by its arena's id), the last route table uploaded, with room for its T:
    /// decode steps with the same adapters reuse it instead of uploading it again.
    routes: RefCell<std::collections::HashMap<u64, (Vec<u32>, PoolBuf)>>,
}

pub struct GpuTensor {
    buf: PoolBuf,
    pub rows: usize,
    pub cols: usize,
}

impl Shaped for GpuTensor {
    fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
}

impl GpuTensor {
    fn bind(&self) -> (&wgpu::Buffer, u64) {
        (&self.buf.buf, self.buf.id)
    }
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST);

impl GpuBackend {
    pub async fn new(opts: &GpuOptions) -> Result<GpuBackend> {
        let ctx = Context::new(opts).await?;
        let factors = opts.factors;
        let (pool, pipes) = (Rc::new(Pool::default()), Pipelines::new(ctx.flags));
        let ring = RefCell::new(Ring::initial(&ctx.device, pool.new_id()));
        let unused = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("unused"), size: 16, usage: STORAGE, mapped_at_creation: false });
        let unused = (unused, pool.new_id());
        let zeros = RefCell::new((ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("zeros"), size: 1024, usage: STORAGE, mapped_at_creation: false }), pool.new_id()));
        Ok(GpuBackend(Rc::new(Inner { ctx, pool, pipes, factors, open: Default::default(), ring, profile: Default::default(), unused, zeros, rope: Default::default(), routes: Default::default() })))
    }

    pub fn context(&self) -> &Context {
        &self.0.ctx
    }

    /// Submits what was recorded and, natively, waits until the GPU has run it: how a
    /// benchmark times work (a read does this itself; recording alone runs nothing).
    pub fn finish(&self) -> Result<()> {
        self.0.flush();
        #[cfg(not(target_arch = "wasm32"))]
        self.0.ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::backend(format!("GPU poll failed: {e}")))?;
        self.0.ctx.check()
    }

    /// Starts timing every dispatch with GPU timestamps (`GpuOptions::timestamps`).
    pub fn profile_start(&self) -> Result<()> {
        self.0.profile_start()
    }

    /// Stops timing: one entry per dispatch since `profile_start`.
    pub async fn profile_finish(&self) -> Result<Vec<profile::Timed>> {
        self.0.profile_finish().await
    }

    /// Pipelines compiled so far (a model compiles its own at load).
    pub fn pipelines_compiled(&self) -> usize {
        self.0.pipes.len()
    }

    /// Number of weight chunks (storage bindings) a weight's rows span.
    pub fn weight_chunks(w: &GpuWeight) -> usize {
        w.chunks()
    }

    /// A storage buffer holding `bytes` (pooled; token ids, route tables, RoPE tables).
    fn upload(&self, bytes: &[u8]) -> PoolBuf {
        let b = self.0.pool.acquire(&self.0.ctx.device, bytes.len() as u64, STORAGE);
        self.0.ctx.queue.write_buffer(&b.buf, 0, bytes);
        b
    }
}

impl Inner {
    fn buffer(&self, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        if bytes > self.ctx.max_binding {
            return Err(Error::shape(format!("{label}: {bytes} bytes exceed the GPU's storage binding limit of {} bytes", self.ctx.max_binding)));
        }
        Ok(self.ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: bytes.max(16).next_multiple_of(4), usage, mapped_at_creation: false }))
    }

    fn write_padded(&self, buf: &wgpu::Buffer, bytes: &[u8]) {
        // write_buffer wants a multiple of 4 bytes: send the tail zero-padded.
        let main = bytes.len() / 4 * 4;
        if main > 0 {
            self.ctx.queue.write_buffer(buf, 0, &bytes[..main]);
        }
        if main < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - main].copy_from_slice(&bytes[main..]);
            self.ctx.queue.write_buffer(buf, main as u64, &tail);
        }
    }

    /// A buffer of at least `bytes` zeros (WebGPU zeroes new buffers; nothing writes this one).
    fn zeros(&self, bytes: u64) -> (wgpu::Buffer, u64) {
        let mut z = self.zeros.borrow_mut();
        if z.0.size() < bytes {
            let size = bytes.next_power_of_two();
            *z = (self.ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("zeros"), size, usage: STORAGE, mapped_at_creation: false }), self.pool.new_id());
        }
        z.clone()
    }

    /// A scratch storage buffer from the pool, reusable after the next submit once dropped.
    fn scratch(&self, bytes: u64) -> PoolBuf {
        self.pool.acquire(&self.ctx.device, bytes.max(4), STORAGE | wgpu::BufferUsages::COPY_SRC)
    }

    /// A 2-D grid of workgroups covering `groups` (kernels index `wid.x + wid.y · wg_x`):
    /// (wg_x, [x, y]).
    fn fold(&self, groups: usize) -> (usize, [usize; 2]) {
        let x = groups.clamp(1, self.ctx.max_dispatch as usize);
        (x, [x, groups.div_ceil(x)])
    }

    /// A 2-D grid of 256-thread workgroups covering `len` elements (kernels index
    /// `gid.x + gid.y · num_workgroups.x · 256`).
    fn grid_1d(&self, len: usize) -> [usize; 3] {
        let (_, [x, y]) = self.fold(len.div_ceil(256));
        [x, y, 1]
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
            return Err(Error::shape(format!("tensor [{rows}, {cols}] needs {bytes} bytes, over the GPU's storage binding limit of {}", self.0.ctx.max_binding)));
        }
        Ok(GpuTensor { buf: self.0.scratch(bytes), rows, cols })
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
        self.0.copy(&t.buf.buf, 0, &staging.buf, 0, bytes)?;
        self.0.flush();
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.buf.slice(..bytes).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::backend(format!("GPU poll failed: {e}")))?;
        let mapped = rx.await.map_err(|_| Error::backend("GPU readback was cancelled"));
        ctx.check()?;
        mapped?.map_err(|e| Error::backend(format!("GPU readback failed: {e}")))?;
        let out = {
            let view = staging.buf.slice(..bytes).get_mapped_range().map_err(|e| Error::backend(format!("GPU readback failed: {e:?}")))?;
            view.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        };
        staging.buf.unmap();
        Ok(out)
    }

    fn weights(&self, ws: Vec<HostWeight>) -> Result<Vec<GpuWeight>> {
        self.upload_weights(ws)
    }

    /// On the GPU, from the weight as stored: the magnitude goes into the gain slot and one
    /// pass per weight chunk turns it into the gain.
    fn dora_gain(&self, w: &GpuWeight, arena: &mut GpuArena, d: &DoraGain<'_>) -> Result<()> {
        arena.write_words(d.g_off, bytemuck::cast_slice(d.magnitude))?;
        for piece in w.pieces(0..w.rows) {
            let rows = piece.rows.len();
            let params = DoraParams {
                cols: w.cols as u32,
                rows: rows as u32,
                out_base: piece.rows.start as u32,
                rank: d.rank as u32,
                a_off: d.a_off as u32,
                b_off: d.b_off as u32,
                g_off: d.g_off as u32,
                scale: d.scale,
                out_rows: w.rows as u32,
                fmt: d.format.code(),
                w_row0: piece.chunk_row as u32,
                pad: 0,
            };
            let bufs = [(&piece.chunk.buf, piece.chunk.id), (&arena.buf, arena.id)];
            let bytes = (w.format.bytes_for(rows * w.cols) + 4 * (d.a.len() + d.b.len())) as u64;
            self.0.dispatch(Dispatch { kernel: Kernel::DoraGain(w.format), bufs: &bufs, params: bytemuck::bytes_of(&params), grid: [rows, 1, 1], bytes })?;
        }
        self.0.flush();
        self.0.ctx.check()
    }

    fn arena(&self) -> GpuArena {
        GpuArena::new(&self.0)
    }

    fn factor_format(&self) -> FactorFormat {
        self.0.factors
    }

    fn linear(&self, op: Linear<'_, Self>) -> Result<()> {
        linear::encode(&self.0, op)
    }
}
