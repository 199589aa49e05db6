//! A group's adapter factors on the GPU: one buffer (one storage binding covers every adapter
//! a batch may route to), holding exactly what its adapters take. A load grows it by that
//! adapter (a device-side copy of what is there), and an unload packs the adapters left to
//! the front (device-side copies into a buffer of the new size), so a hole in the middle goes
//! back too.

use super::{Inner, STORAGE};
use crate::backend::factors::{i16_codes, i16_scales, FactorFormat, RankAxis};
use crate::backend::{ArenaMove, ArenaStore};
use crate::error::Result;
use std::rc::Rc;

pub struct GpuArena {
    pub(super) id: u64,
    pub(super) buf: wgpu::Buffer,
    /// Capacity in 32-bit words.
    cap: usize,
    owner: Rc<Inner>,
}

impl GpuArena {
    pub(super) fn new(owner: &Rc<Inner>) -> GpuArena {
        let buf = owner.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lora arena"),
            size: 16,
            usage: STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        GpuArena { id: owner.pool.new_id(), buf, cap: 4, owner: owner.clone() }
    }

    /// Writes 32-bit words at word `offset`, growing the arena as needed.
    pub(super) fn write_words(&mut self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.reserve(offset + bytes.len() / 4)?;
        self.owner.ctx.queue.write_buffer(&self.buf, (offset * 4) as u64, bytes);
        self.owner.ctx.check()
    }

    /// Writes a factor matrix in `format` (arena.wgsl's `lora_at` reads it back).
    fn write_factors(&mut self, offset: usize, data: &[f32], rank: usize, axis: RankAxis, format: FactorFormat) -> Result<()> {
        // 16-bit formats: the halves (padded to a word), then int16's steps per rank.
        let (mut halves, steps): (Vec<u16>, Vec<f32>) = match format {
            FactorFormat::F32 => return self.write_words(offset, bytemuck::cast_slice(data)),
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
        self.write_words(offset, &bytes)
    }

    /// Replaces the buffer with one of `cap` words holding the `keep` ranges (copied on the
    /// device), then destroys the old one. Growing and packing both come here.
    fn rebuild(&mut self, cap: usize, keep: &[ArenaMove]) -> Result<()> {
        let g = &self.owner;
        let buf = g.buffer("lora arena", (cap * 4) as u64, STORAGE | wgpu::BufferUsages::COPY_SRC)?;
        for m in keep {
            g.copy(&self.buf, (m.from * 4) as u64, &buf, (m.to * 4) as u64, (m.len * 4) as u64)?;
        }
        g.flush();
        g.ctx.check()?;
        g.pool.forget(self.id);
        g.routes.borrow_mut().remove(&self.id);
        self.buf.destroy();
        self.buf = buf;
        self.cap = cap;
        self.id = g.pool.new_id();
        Ok(())
    }
}

impl ArenaStore for GpuArena {
    /// Grows to exactly `words` (a device-side copy of what is there): GPU memory is the
    /// scarce kind in a browser, so the arena holds what its adapters take and no headroom.
    fn reserve(&mut self, words: usize) -> Result<()> {
        // Passes already recorded must read the arena as it was: submit them first.
        self.owner.flush();
        if words <= self.cap {
            return Ok(());
        }
        let all = ArenaMove { from: 0, to: 0, len: self.cap };
        self.rebuild(words, &[all])
    }

    /// A `[rank, in]`: rank j is row j (B's ranks are its columns).
    fn write_a(&mut self, offset: usize, a: &[f32], rank: usize, format: FactorFormat) -> Result<()> {
        self.write_factors(offset, a, rank, RankAxis::Rows, format)
    }

    fn write(&mut self, offset: usize, data: &[f32], rank: usize, format: FactorFormat) -> Result<()> {
        self.write_factors(offset, data, rank, RankAxis::Columns, format)
    }

    /// A new buffer of exactly `len` words receives the kept ranges (GPU-side copies), and
    /// the old one is destroyed. Nothing is done when the kept ranges already sit in place
    /// and fill the buffer.
    fn repack(&mut self, keep: &[ArenaMove], len: usize) -> Result<()> {
        let cap = len.max(4);
        if cap == self.cap && keep.iter().all(|m| m.from == m.to) {
            return Ok(());
        }
        self.rebuild(cap, keep)
    }

    fn capacity(&self) -> usize {
        self.cap
    }
}

impl Drop for GpuArena {
    fn drop(&mut self) {
        self.owner.flush();
        self.owner.pool.forget(self.id);
        self.owner.routes.borrow_mut().remove(&self.id);
        self.buf.destroy();
    }
}
