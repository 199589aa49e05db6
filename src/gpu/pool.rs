//! Buffer reuse and bind-group reuse. Buffers are pooled by (usage, size class) and go back
//! to the pool when their handle drops; every buffer gets an id so that bind groups can be
//! cached by the ids they bind.
//!
//! Passes are recorded into one open encoder per step (see `Inner::record`), and
//! `queue.write_buffer` lands before everything in that encoder. So a buffer dropped while
//! recording may still be read by a recorded pass: it waits in `deferred` and becomes
//! reusable only after the encoder is submitted (`recycle`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Size classes: powers of two up to 1 MiB, then whole MiBs (bounded waste for big outputs).
pub fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(256);
    if b <= 1 << 20 {
        b.next_power_of_two()
    } else {
        b.div_ceil(1 << 20) << 20
    }
}

#[derive(Default)]
pub struct Pool {
    free: RefCell<HashMap<(u32, u64), Vec<(u64, wgpu::Buffer)>>>,
    deferred: RefCell<Vec<(u64, wgpu::Buffer)>>,
    deferred_bytes: Cell<u64>,
    next_id: Cell<u64>,
    bind_groups: RefCell<HashMap<Vec<u64>, wgpu::BindGroup>>,
}

/// A pooled buffer; returns to its pool on drop.
pub struct PoolBuf {
    pub id: u64,
    pub buf: wgpu::Buffer,
    pool: Rc<Pool>,
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        self.pool.deferred_bytes.set(self.pool.deferred_bytes.get() + self.buf.size());
        self.pool.deferred.borrow_mut().push((self.id, self.buf.clone()));
    }
}

/// Bind-group cache bound: past this many entries the cache starts over.
const MAX_BIND_GROUPS: usize = 1024;

impl Pool {
    /// Makes the buffers dropped since the last submit reusable (call after submitting).
    pub fn recycle(&self) {
        let mut free = self.free.borrow_mut();
        for (id, buf) in self.deferred.borrow_mut().drain(..) {
            free.entry((buf.usage().bits(), buf.size())).or_default().push((id, buf));
        }
        self.deferred_bytes.set(0);
    }

    /// Bytes waiting for the next submit before they can be reused.
    pub fn deferred_bytes(&self) -> u64 {
        self.deferred_bytes.get()
    }

    pub fn new_id(&self) -> u64 {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        id
    }

    pub fn acquire(self: &Rc<Self>, device: &wgpu::Device, bytes: u64, usage: wgpu::BufferUsages) -> PoolBuf {
        let size = size_class(bytes);
        let reused = self.free.borrow_mut().get_mut(&(usage.bits(), size)).and_then(|v| v.pop());
        let (id, buf) = reused.unwrap_or_else(|| {
            let buf = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("lorafuse pooled"),
                size,
                usage,
                mapped_at_creation: false,
            });
            (self.new_id(), buf)
        });
        PoolBuf { id, buf, pool: self.clone() }
    }

    /// A bind group for `pipeline_id` binding buffers whose ids are `ids`, made by `make` on a miss.
    pub fn bind_group(&self, key: Vec<u64>, make: impl FnOnce() -> wgpu::BindGroup) -> wgpu::BindGroup {
        let mut cache = self.bind_groups.borrow_mut();
        if let Some(bg) = cache.get(&key) {
            return bg.clone();
        }
        if cache.len() >= MAX_BIND_GROUPS {
            cache.clear();
        }
        let bg = make();
        cache.insert(key, bg.clone());
        bg
    }

    /// Drops cached bind groups that reference buffer `id` (it is being freed or replaced).
    pub fn forget(&self, id: u64) {
        self.bind_groups.borrow_mut().retain(|k, _| !k[1..].contains(&id));
    }
}
