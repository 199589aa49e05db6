//! GPU timestamps around every dispatch (benchmarks): with profiling on, `encoder.rs` gives
//! each dispatch its own compute pass whose start and end write a timestamp (WebGPU's
//! `timestamp-query`, natively and in browsers alike); each submit resolves the timestamps
//! written so far, and `read` turns them into one `Timed` per dispatch.

use super::context::Context;
use crate::error::{Error, Result};

/// Dispatches one profile can time (2 queries each: WebGPU allows 4096 per query set).
const MAX_TIMED: u32 = 2048;

/// One timed dispatch.
#[derive(Clone, Debug)]
pub struct Timed {
    /// The kernel and its variant (`Kernel`'s Debug form).
    pub kernel: String,
    pub ns: f64,
    pub bytes: u64,
    pub workgroups: u64,
}

pub(super) struct Profile {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f32,
    labels: Vec<(String, u64, u64)>,
    /// Queries resolved so far.
    done: u32,
}

impl Profile {
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Profile {
        let count = 2 * MAX_TIMED;
        let queries = device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("lorafuse profile"), ty: wgpu::QueryType::Timestamp, count });
        let buf = |usage| device.create_buffer(&wgpu::BufferDescriptor { label: Some("lorafuse profile"), size: 8 * count as u64, usage, mapped_at_creation: false });
        Profile {
            queries,
            resolved: buf(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            readback: buf(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            period_ns: queue.get_timestamp_period(),
            labels: Vec::new(),
            done: 0,
        }
    }

    /// The timestamp writes of the next dispatch, or None once the profile is full.
    pub fn next(&mut self, kernel: &str, bytes: u64, workgroups: u64) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let i = self.labels.len() as u32;
        if i >= MAX_TIMED {
            return None;
        }
        self.labels.push((kernel.to_string(), bytes, workgroups));
        Some(wgpu::ComputePassTimestampWrites { query_set: &self.queries, beginning_of_pass_write_index: Some(2 * i), end_of_pass_write_index: Some(2 * i + 1) })
    }

    /// Resolves the timestamps written since the last submit (in the encoder about to be).
    pub fn resolve(&mut self, enc: &mut wgpu::CommandEncoder) {
        let end = 2 * self.labels.len() as u32;
        if end > self.done {
            enc.resolve_query_set(&self.queries, self.done..end, &self.resolved, 8 * self.done as u64);
            self.done = end;
        }
    }

    /// Every timed dispatch, once the GPU has run them (all were submitted).
    pub async fn read(self, ctx: &Context) -> Result<Vec<Timed>> {
        let bytes = 8 * self.done as u64;
        if bytes == 0 {
            return Ok(vec![]);
        }
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&self.resolved, 0, &self.readback, 0, bytes);
        ctx.submit(enc.finish());
        let (tx, rx) = futures_channel::oneshot::channel();
        self.readback.slice(..bytes).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::backend(format!("GPU poll failed: {e}")))?;
        rx.await.map_err(|_| Error::backend("profile readback was cancelled"))?.map_err(|e| Error::backend(format!("profile readback failed: {e}")))?;
        let ticks: Vec<u64> = {
            let view = self.readback.slice(..bytes).get_mapped_range().map_err(|e| Error::backend(format!("profile readback failed: {e:?}")))?;
            view.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect()
        };
        Ok(self
            .labels
            .into_iter()
            .zip(ticks.chunks_exact(2))
            .map(|((kernel, bytes, workgroups), t)| Timed { kernel, ns: t[1].saturating_sub(t[0]) as f64 * self.period_ns as f64, bytes, workgroups })
            .collect())
    }
}
