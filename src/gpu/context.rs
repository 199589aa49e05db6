//! Finding an adapter and opening a device with the limits our kernels need.

use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Cap on bytes per storage binding, below the device's own limit. Tests use it to force
    /// the splitting of large weights; real callers leave it `None`.
    pub max_binding_bytes: Option<u64>,
    /// How adapter factors (A, B) are stored: f32 (exact), or 16 bits (f16, or int16 codes
    /// with a step per rank), half the bytes a decode step reads for its adapters (see
    /// bench/RESULTS.md for the measured effect on logits). DoRA gains stay f32.
    pub factors: crate::backend::factors::FactorFormat,
    /// Prefill matmuls multiply in f16 (tiles and a K step's sums in f16, the accumulator
    /// f32) where the adapter offers `shader-f16`: compute-bound work at twice the rate on
    /// GPUs with fast f16, at a measured cost in accuracy (bench/RESULTS.md), and only for
    /// models whose activations stay within f16's range (±65504; beyond it they become
    /// infinite). Decode stays f32: it is bandwidth-bound, so f16 math would cost accuracy
    /// for nothing.
    pub f16_math: bool,
    /// Do not use subgroup operations even where the adapter has them (tests of the
    /// fallback, which devices without `subgroups` run).
    pub no_subgroups: bool,
    /// Ask for GPU timestamps (`timestamp-query`) where the adapter has them, so that
    /// `GpuBackend::profile` can time every dispatch (benchmarks).
    pub timestamps: bool,
}

pub struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_name: String,
    /// Bytes one storage binding may span (device limit, or the test cap).
    pub max_binding: u64,
    pub max_dispatch: u32,
    /// Offsets of uniform bindings are multiples of this (`encoder.rs`'s parameter ring).
    pub uniform_align: u64,
    /// The device features the kernels use (asked for, and the adapter has them).
    pub flags: ShaderFlags,
    /// GPU timestamps were asked for and granted.
    pub timestamps: bool,
    /// The adapter is a CPU emulating a GPU (lavapipe, SwiftShader): its speed means nothing.
    pub cpu_emulated: bool,
    /// First asynchronous GPU error (validation, out of memory, device lost), if any.
    pub fault: Arc<Mutex<Option<String>>>,
    /// Work submitted and bytes read back so far (the benchmark reports them per token).
    pub stats: std::cell::Cell<GpuStats>,
}

/// What a device offers that the kernels use (`pipelines.rs` composes their WGSL by it).
#[derive(Clone, Copy, Debug, Default)]
pub struct ShaderFlags {
    /// Prefill matmuls multiply in f16 (`GpuOptions::f16_math`, and `shader-f16`).
    pub f16_math: bool,
    /// Workgroup reductions use subgroup operations (`subgroups`, not opted out).
    pub subgroups: bool,
}

/// What the backend has done so far (benchmarks report it per token; none of it needs a GPU
/// to be meaningful except the times, which on a CPU-emulated device are the host's).
#[derive(Clone, Copy, Debug, Default)]
pub struct GpuStats {
    pub submits: u64,
    pub read_bytes: u64,
    /// Dispatches recorded, their workgroups, and the bytes they were sized to read and
    /// write (weights, adapters, activations, cache).
    pub dispatches: u64,
    pub workgroups: u64,
    pub bytes: u64,
    /// Host time spent recording (pipelines, bind groups, passes, dispatches, copies) and
    /// submitting (finishing encoders, the parameter upload, `submit`), in ns.
    pub record_ns: u64,
    pub submit_ns: u64,
}

/// A monotonic clock in ns (performance.now() in browsers), for the host-side counters.
pub fn now_ns() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        (super::web::now_ms() * 1e6) as u64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static T0: OnceLock<std::time::Instant> = OnceLock::new();
        T0.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
    }
}

impl Context {
    /// Submits one command buffer, counting it.
    pub fn submit(&self, cmd: wgpu::CommandBuffer) {
        let mut st = self.stats.get();
        st.submits += 1;
        self.stats.set(st);
        self.queue.submit([cmd]);
    }

    pub async fn new(opts: &GpuOptions) -> Result<Context> {
        #[cfg(target_arch = "wasm32")]
        if !super::web::gpu_present() {
            return Err(Error::backend("WebGPU is not available here (navigator.gpu is missing)"));
        }
        #[allow(unused_mut)]
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        // Natively, Vulkan/Metal/DX12 unless WGPU_BACKEND says otherwise (e.g. "gl"): probing
        // GL without a display only produces noise.
        #[cfg(not(target_arch = "wasm32"))]
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::PRIMARY;
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::backend(format!("no WebGPU adapter: {e}")))?;
        let have = adapter.limits();
        // WebGPU's defaults, raised to what the adapter offers where big layers need it.
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: have.max_storage_buffer_binding_size,
            max_buffer_size: have.max_buffer_size,
            max_storage_buffers_per_shader_stage: have.max_storage_buffers_per_shader_stage.min(10),
            max_compute_workgroup_storage_size: have.max_compute_workgroup_storage_size,
            ..wgpu::Limits::default()
        };
        let offered = adapter.features();
        let f16_math = opts.f16_math && offered.contains(wgpu::Features::SHADER_F16);
        let timestamps = opts.timestamps && offered.contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut features = wgpu::Features::empty();
        features.set(wgpu::Features::SHADER_F16, f16_math);
        features.set(wgpu::Features::TIMESTAMP_QUERY, timestamps);
        features.set(wgpu::Features::SUBGROUP, !opts.no_subgroups && offered.contains(wgpu::Features::SUBGROUP));
        // In browsers wgpu cannot ask for subgroups itself (see web.rs).
        #[cfg(target_arch = "wasm32")]
        let undo = (!opts.no_subgroups).then(super::web::ask_subgroups_once);
        let device = adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("lorafuse"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        });
        #[cfg(target_arch = "wasm32")]
        if let Some(undo) = undo {
            let _ = undo.call0(&wasm_bindgen::JsValue::UNDEFINED);
        }
        let (device, queue) = device.await.map_err(|e| Error::backend(format!("could not open the GPU device: {e}")))?;
        // What the device has (other code on the page may have asked for it too), and only
        // if not opted out.
        #[cfg(target_arch = "wasm32")]
        let subgroups = !opts.no_subgroups && super::web::device_has_subgroups(&device);
        #[cfg(not(target_arch = "wasm32"))]
        let subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        let flags = ShaderFlags { f16_math, subgroups };

        let fault = Arc::new(Mutex::new(None::<String>));
        let f = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = f.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| format!("GPU error: {e}"));
        }));
        let f = fault.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let mut slot = f.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| format!("GPU device lost ({reason:?}): {msg}"));
        });

        #[cfg(target_arch = "wasm32")]
        let name = super::web::adapter_name(&device).unwrap_or_else(|| "WebGPU adapter".into());
        #[cfg(not(target_arch = "wasm32"))]
        let name = {
            let info = adapter.get_info();
            format!("{} ({:?})", if info.name.is_empty() { "GPU adapter" } else { &info.name }, info.backend)
        };
        let cpu_emulated = adapter.get_info().device_type == wgpu::DeviceType::Cpu || name.contains("swiftshader");
        let max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            .min(opts.max_binding_bytes.unwrap_or(u64::MAX));
        Ok(Context {
            device,
            queue,
            adapter_name: name,
            max_binding: max_binding / 256 * 256,
            max_dispatch: limits.max_compute_workgroups_per_dimension,
            uniform_align: limits.min_uniform_buffer_offset_alignment as u64,
            flags,
            timestamps,
            cpu_emulated,
            fault,
            stats: Default::default(),
        })
    }

    /// The first GPU fault seen so far, as a `Backend` error.
    pub fn check(&self) -> Result<()> {
        match self.fault.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(m) => Err(Error::backend(m.clone())),
            None => Ok(()),
        }
    }
}
