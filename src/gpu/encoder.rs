//! Recording GPU work. A step's dispatches all go into one open compute pass of one open
//! encoder (WebGPU synchronizes dependent dispatches within a pass; a copy ends the pass),
//! each dispatch's parameters into a slot of one uniform ring that is uploaded once, just
//! before the submit, and bind groups are cached by what they bind (the same buffers at the
//! same ring offset on every step of a decode). With profiling on, each dispatch gets its own
//! pass with GPU timestamps at its start and end (`profile.rs`).

use super::context::{now_ns, GpuStats};
use super::pipelines::Kernel;
use super::profile::Profile;
use super::Inner;
use crate::error::{Error, Result};

/// One dispatch to record.
pub(super) struct Dispatch<'a> {
    pub kernel: Kernel,
    /// Bound at bindings 0.., then the parameters at the next binding.
    pub bufs: &'a [(&'a wgpu::Buffer, u64)],
    pub params: &'a [u8],
    pub grid: [usize; 3],
    /// Bytes it is sized to read and write (for the counts and the profile's GB/s).
    pub bytes: u64,
}

/// The open encoder and its open pass.
pub(super) struct Open {
    enc: wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
}

/// The uniform buffer whose slots hold this submit's dispatch parameters.
pub(super) struct Ring {
    buf: wgpu::Buffer,
    id: u64,
    /// Bytes recorded for the next submit (slots `align` apart).
    staged: Vec<u8>,
    /// This submit needed more than the ring holds: it grows at the next submit.
    overflowed: bool,
}

/// Past this many bytes of dropped-but-not-yet-reusable buffers, recording submits early
/// (a long prefill would otherwise keep every intermediate alive until its read).
const MAX_DEFERRED_BYTES: u64 = 64 << 20;
/// The parameter ring's first size: a decode step of a 30-layer model fits.
const RING_BYTES: u64 = 256 << 10;

impl Ring {
    pub fn new(inner_device: &wgpu::Device, id: u64, size: u64) -> Ring {
        let buf = inner_device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lorafuse params"),
            size,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ring { buf, id, staged: Vec::new(), overflowed: false }
    }

    pub fn initial(device: &wgpu::Device, id: u64) -> Ring {
        Ring::new(device, id, RING_BYTES)
    }
}

impl Inner {
    fn stat(&self, f: impl FnOnce(&mut GpuStats)) {
        let mut s = self.ctx.stats.get();
        f(&mut s);
        self.ctx.stats.set(s);
    }

    /// Records one dispatch into the open pass.
    pub(super) fn dispatch(&self, d: Dispatch<'_>) -> Result<()> {
        self.ctx.check()?;
        let t0 = now_ns();
        let max = self.ctx.max_dispatch as usize;
        if d.grid.iter().any(|&g| g > max) {
            return Err(Error::shape(format!("{:?}: grid {:?} exceeds one GPU dispatch ({max} workgroups)", d.kernel, d.grid)));
        }
        if d.grid.contains(&0) {
            return Ok(());
        }
        let pipe = self.pipes.get(&self.ctx.device, d.kernel, || self.pool.new_id());
        let offset = self.stage_params(d.params);
        let bg = {
            let ring = self.ring.borrow();
            let mut key = vec![pipe.id];
            key.extend(d.bufs.iter().map(|b| b.1));
            key.extend([ring.id, offset]);
            self.pool.bind_group(key, || {
                let layout = pipe.pipeline.get_bind_group_layout(0);
                let size = wgpu::BufferSize::new(d.params.len() as u64);
                let params = wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &ring.buf, offset, size });
                let entries: Vec<_> = (d.bufs.iter().map(|b| b.0.as_entire_binding()).chain([params]).enumerate())
                    .map(|(i, resource)| wgpu::BindGroupEntry { binding: i as u32, resource })
                    .collect();
                self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries })
            })
        };
        let grid = d.grid.map(|g| g as u32);
        {
            let mut open = self.open.borrow_mut();
            let o = open.get_or_insert_with(|| Open { enc: self.ctx.device.create_command_encoder(&Default::default()), pass: None });
            let mut profile = self.profile.borrow_mut();
            let timed = profile.as_mut().and_then(|p| p.next(&format!("{:?}", d.kernel), d.bytes, grid.iter().map(|&g| g as u64).product()));
            if let Some(writes) = timed {
                o.pass = None;
                let mut pass = o.enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: Some(writes) });
                pass.set_pipeline(&pipe.pipeline);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
            } else {
                let pass = o.pass.get_or_insert_with(|| o.enc.begin_compute_pass(&Default::default()).forget_lifetime());
                pass.set_pipeline(&pipe.pipeline);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
            }
        }
        let wgs = grid.iter().map(|&g| g as u64).product::<u64>();
        self.stat(|s| {
            s.dispatches += 1;
            s.workgroups += wgs;
            s.bytes += d.bytes;
            s.record_ns += now_ns() - t0;
        });
        self.flush_if_full();
        Ok(())
    }

    /// The ring offset of `params` for this submit (submitting first when the ring is full).
    fn stage_params(&self, params: &[u8]) -> u64 {
        let align = self.ctx.uniform_align.max(16);
        let fits = |r: &Ring| (r.staged.len() as u64).next_multiple_of(align) + params.len() as u64 <= r.buf.size();
        if !fits(&self.ring.borrow()) {
            self.ring.borrow_mut().overflowed = true;
            self.flush();
        }
        let mut ring = self.ring.borrow_mut();
        let offset = (ring.staged.len() as u64).next_multiple_of(align);
        ring.staged.resize(offset as usize, 0);
        ring.staged.extend_from_slice(params);
        offset
    }

    /// Records a buffer copy (it ends the open pass).
    pub(super) fn copy(&self, src: &wgpu::Buffer, src_off: u64, dst: &wgpu::Buffer, dst_off: u64, bytes: u64) -> Result<()> {
        self.ctx.check()?;
        if bytes == 0 {
            return Ok(());
        }
        let t0 = now_ns();
        {
            let mut open = self.open.borrow_mut();
            let o = open.get_or_insert_with(|| Open { enc: self.ctx.device.create_command_encoder(&Default::default()), pass: None });
            o.pass = None;
            o.enc.copy_buffer_to_buffer(src, src_off, dst, dst_off, bytes);
        }
        self.stat(|s| s.record_ns += now_ns() - t0);
        self.flush_if_full();
        Ok(())
    }

    fn flush_if_full(&self) {
        if self.pool.deferred_bytes() > MAX_DEFERRED_BYTES {
            self.flush();
        }
    }

    /// Submits what was recorded (the parameters uploaded first); buffers dropped meanwhile
    /// become reusable.
    pub(super) fn flush(&self) {
        let t0 = now_ns();
        let open = self.open.borrow_mut().take();
        if let Some(mut o) = open {
            o.pass = None;
            let mut ring = self.ring.borrow_mut();
            if !ring.staged.is_empty() {
                self.ctx.queue.write_buffer(&ring.buf, 0, &ring.staged);
                ring.staged.clear();
            }
            if let Some(p) = self.profile.borrow_mut().as_mut() {
                p.resolve(&mut o.enc);
            }
            self.ctx.submit(o.enc.finish());
            if ring.overflowed {
                // Grow for the next step; bind groups of the old ring are forgotten.
                self.pool.forget(ring.id);
                *ring = Ring::new(&self.ctx.device, self.pool.new_id(), ring.buf.size() * 2);
            }
        }
        self.pool.recycle();
        self.stat(|s| s.submit_ns += now_ns() - t0);
    }

    /// Starts timing every dispatch (`GpuOptions::timestamps` must have been granted).
    pub(super) fn profile_start(&self) -> Result<()> {
        if !self.ctx.timestamps {
            return Err(Error::unsupported("GPU timestamps were not granted (GpuOptions::timestamps, and an adapter with timestamp-query)"));
        }
        self.flush();
        *self.profile.borrow_mut() = Some(Profile::new(&self.ctx.device, &self.ctx.queue));
        Ok(())
    }

    /// Stops timing; the dispatches timed since `profile_start`, once the GPU ran them.
    pub(super) async fn profile_finish(&self) -> Result<Vec<super::profile::Timed>> {
        self.flush();
        let p = self.profile.borrow_mut().take().ok_or_else(|| Error::config("no profile was started"))?;
        p.read(&self.ctx).await
    }
}
