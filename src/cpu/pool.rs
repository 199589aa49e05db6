//! Worker threads for the CPU kernels. One job at a time: `for_each(chunks, f)` runs
//! `f(0..chunks)` on the caller and the workers, each taking the next chunk index from a
//! shared counter, and returns when every chunk is done.
//!
//! Workers are wasm threads (Web Workers or Node worker_threads instantiating the threaded
//! build on the same shared memory, each parked in `worker_loop`) or, natively, std threads
//! (`start_native`, for tests and benches). Without workers, or where the module was built
//! without atomics, everything runs on the caller.
//!
//! Between jobs a worker spins: a decode step issues a few hundred jobs tens of µs apart, and
//! waking a sleeping thread costs about as much. After `SPIN` idle rounds it sleeps on the
//! job word (`memory.atomic.wait32`); the caller wakes sleepers. The caller itself only
//! spins: a browser's main thread may not wait.
//!
//! The protocol: the caller owns the pool while `BUSY` is set (a second caller, e.g. another
//! native test thread, runs its job inline). It writes the job, opens `ENTER`, then
//! publishes `STATE` = generation << 8 | workers asked to help. A worker that sees a new
//! state enters (counts itself in `ENTER`), runs chunks, and counts itself in `DONE`. When
//! the caller has no chunks left to take it closes `ENTER` and waits only for the workers
//! that entered: one that was descheduled (more threads than cores) is not waited for, and
//! finds the job closed when it wakes. A worker that enters late, after the next job opened,
//! simply helps with that one: whoever enters reads the job written before `ENTER` opened.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::*};

/// Most threads a job uses (the caller included): `STATE` keeps the worker count in 8 bits.
pub const MAX_THREADS: usize = 64;
const SPIN: u32 = 1 << 20;

struct Job(UnsafeCell<(*const (dyn Fn(usize) + Sync), usize)>);
// SAFETY: written only by the caller that holds BUSY, read by workers of that job (see above).
unsafe impl Sync for Job {}

fn nothing(_: usize) {}
static JOB: Job = Job(UnsafeCell::new((&nothing as &(dyn Fn(usize) + Sync) as *const _, 0)));
static STATE: AtomicU32 = AtomicU32::new(0);
static BUSY: AtomicU32 = AtomicU32::new(0);
static NEXT: AtomicUsize = AtomicUsize::new(0);
static DONE: AtomicUsize = AtomicUsize::new(0);
/// Workers that entered the current job, and `CLOSED` once the caller stopped admitting.
static ENTER: AtomicUsize = AtomicUsize::new(CLOSED);
const CLOSED: usize = 1 << (usize::BITS - 1);
static WORKERS: AtomicUsize = AtomicUsize::new(0);
static SLEEPERS: AtomicU32 = AtomicU32::new(0);
static POISONED: AtomicU32 = AtomicU32::new(0);
/// Jobs some worker helped with (for tests: the split really happened).
static SHARED_JOBS: AtomicUsize = AtomicUsize::new(0);
/// Threads a job may use, the caller included (`set_threads`).
static THREADS: AtomicUsize = AtomicUsize::new(MAX_THREADS);

/// Multiply-adds below which a job stays on the caller (waking the pool costs ~µs).
static MIN_WORK: AtomicUsize = AtomicUsize::new(1 << 16);

/// Whether this build can run workers (wasm: built with atomics and shared memory).
pub const SUPPORTED: bool = cfg!(any(not(target_arch = "wasm32"), target_feature = "atomics"));

/// Caps the threads a job uses (the caller included; at least 1).
pub fn set_threads(n: usize) {
    THREADS.store(n.clamp(1, MAX_THREADS), Relaxed);
}

/// Threads a job runs on now: the cap, or the caller plus every worker, whichever is fewer.
pub fn threads() -> usize {
    THREADS.load(Relaxed).min(WORKERS.load(Acquire) + 1)
}

/// Sets the work below which jobs stay on one thread (tests set 0 to split even tiny ones).
pub fn set_min_work(mul_adds: usize) {
    MIN_WORK.store(mul_adds, Relaxed);
}

/// How many parts a job of `mul_adds` should be cut into: 1 (stay on the caller) for small
/// ones, else a few per thread, so a slow thread's share is picked up by the others.
fn parts(mul_adds: usize) -> usize {
    if mul_adds < MIN_WORK.load(Relaxed) { 1 } else { 4 * threads() }
}

/// Runs `f` over `0..len` cut into ranges (bounds multiples of `align`) spread over the
/// pool's threads: one range on the caller when the job's `mul_adds` are few.
pub fn for_ranges(len: usize, mul_adds: usize, align: usize, f: &(dyn Fn(core::ops::Range<usize>) + Sync)) {
    let ranges: Vec<_> = split(len, parts(mul_adds), align).collect();
    for_each(ranges.len(), &|p| f(ranges[p].clone()));
}

/// How many jobs so far ran on more than one thread.
pub fn shared_jobs() -> usize {
    SHARED_JOBS.load(Relaxed)
}

/// Runs `f(c)` for every `c` in `0..chunks`, spread over the pool's threads. `f` should not
/// panic: a worker's panic aborts the module in wasm; natively it is re-raised here, once
/// every thread has left the job (as is a panic on the caller), and the pool stays usable.
pub fn for_each(chunks: usize, f: &(dyn Fn(usize) + Sync)) {
    let k = threads().min(chunks);
    if k <= 1 || BUSY.compare_exchange(0, 1, Acquire, Relaxed).is_err() {
        (0..chunks).for_each(f);
        return;
    }
    // SAFETY: BUSY is ours and ENTER is closed: no worker reads the job now. The lifetime
    // is erased: this function does not return before every worker that entered is done.
    unsafe { *JOB.0.get() = (core::mem::transmute::<&(dyn Fn(usize) + Sync), *const (dyn Fn(usize) + Sync)>(f), chunks) };
    NEXT.store(0, Relaxed);
    DONE.store(0, Relaxed);
    ENTER.store(0, Release);
    let generation = (STATE.load(Relaxed) >> 8).wrapping_add(1);
    STATE.store(generation << 8 | (k - 1) as u32, SeqCst);
    if SLEEPERS.load(SeqCst) > 0 {
        wake_all();
    }
    let close = Close;
    run_chunks(f, chunks);
    drop(close);
    if POISONED.swap(0, Relaxed) != 0 {
        panic!("a CPU worker thread panicked");
    }
}

/// Closes the current job and waits for the workers that entered it, then frees the pool;
/// on drop, so also when `f` panics on the caller: no thread may run `f` once `for_each`'s
/// frame (which `f` borrows from) is gone.
struct Close;

impl Drop for Close {
    fn drop(&mut self) {
        let entered = ENTER.fetch_or(CLOSED, AcqRel) & !CLOSED;
        SHARED_JOBS.fetch_add((entered > 0) as usize, Relaxed);
        // Natively a worker that panicked still counts itself done (`run_job`); in wasm it
        // trapped and never will.
        while DONE.load(Acquire) < entered && !(cfg!(target_arch = "wasm32") && POISONED.load(Relaxed) != 0) {
            core::hint::spin_loop();
        }
        BUSY.store(0, Release);
    }
}

fn run_chunks(f: &(dyn Fn(usize) + Sync), chunks: usize) {
    loop {
        let c = NEXT.fetch_add(1, Relaxed);
        if c >= chunks {
            return;
        }
        f(c);
    }
}

/// A worker's life: joins the pool, then runs its share of every job it takes part in.
/// Never returns.
pub fn worker_loop() -> ! {
    let (id, mut seen) = loop {
        if BUSY.compare_exchange(0, 1, Acquire, Relaxed).is_ok() {
            let joined = (WORKERS.fetch_add(1, AcqRel), STATE.load(Relaxed));
            BUSY.store(0, Release);
            break joined;
        }
        core::hint::spin_loop();
    };
    loop {
        seen = wait_for_change(seen);
        if id >= (seen & 0xff) as usize || ENTER.fetch_add(1, Acquire) & CLOSED != 0 {
            continue;
        }
        // SAFETY: entered an open job: it stays in place until this worker is counted in
        // DONE (it may be a newer job than `seen`; it is then that one's turn to help).
        let (f, chunks) = unsafe { *JOB.0.get() };
        run_job(unsafe { &*f }, chunks);
        DONE.fetch_add(1, Release);
    }
}

#[cfg(target_arch = "wasm32")]
fn run_job(f: &(dyn Fn(usize) + Sync), chunks: usize) {
    run_chunks(f, chunks)
}

#[cfg(not(target_arch = "wasm32"))]
fn run_job(f: &(dyn Fn(usize) + Sync), chunks: usize) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_chunks(f, chunks))).is_err() {
        poison();
    }
}

/// Says a worker panicked: the caller re-raises it (and in wasm stops waiting for it).
pub fn poison() {
    POISONED.store(1, Relaxed);
}

/// Spins, then sleeps, until `STATE` differs from `seen`; returns the new state.
fn wait_for_change(seen: u32) -> u32 {
    for _ in 0..SPIN {
        let s = STATE.load(Acquire);
        if s != seen {
            return s;
        }
        core::hint::spin_loop();
    }
    loop {
        SLEEPERS.fetch_add(1, SeqCst);
        sleep_while(seen);
        SLEEPERS.fetch_sub(1, SeqCst);
        let s = STATE.load(Acquire);
        if s != seen {
            return s;
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
fn sleep_while(seen: u32) {
    // SAFETY: STATE is a valid, aligned i32 location in (shared) linear memory.
    unsafe { core::arch::wasm32::memory_atomic_wait32(STATE.as_ptr() as *mut i32, seen as i32, -1) };
}

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
fn wake_all() {
    // SAFETY: as in `sleep_while`.
    unsafe { core::arch::wasm32::memory_atomic_notify(STATE.as_ptr() as *mut i32, u32::MAX) };
}

/// Without atomics there are no workers to sleep or wake.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
fn sleep_while(_: u32) {}
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
fn wake_all() {}

/// Natively a sleeping worker polls (the native pool serves tests and benches).
#[cfg(not(target_arch = "wasm32"))]
fn sleep_while(seen: u32) {
    while STATE.load(SeqCst) == seen {
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}
#[cfg(not(target_arch = "wasm32"))]
fn wake_all() {}

/// Starts native worker threads until the pool has `workers` of them (tests and benches).
#[cfg(not(target_arch = "wasm32"))]
pub fn start_native(workers: usize) {
    static STARTED: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    while *started < workers.min(MAX_THREADS - 1) {
        std::thread::spawn(|| worker_loop());
        *started += 1;
    }
    drop(started);
    while WORKERS.load(Acquire) < workers.min(MAX_THREADS - 1) {
        std::thread::yield_now();
    }
}

/// An output that the threads of one job write in disjoint parts.
pub struct Disjoint<T>(*mut T);

// SAFETY: users write only their own parts (see `part`).
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T: Send> Disjoint<T> {
    pub fn new(v: &mut [T]) -> Self {
        Disjoint(v.as_mut_ptr())
    }

    /// `len` values from `off`.
    ///
    /// # Safety
    /// In bounds of the slice given to `new`, which outlives the job, and no other thread
    /// touches these values meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn part(&self, off: usize, len: usize) -> &mut [T] {
        core::slice::from_raw_parts_mut(self.0.add(off), len)
    }
}

/// Splits `0..len` into about `parts` ranges whose bounds are multiples of `align`
/// (the last range takes what is left).
fn split(len: usize, parts: usize, align: usize) -> impl Iterator<Item = core::ops::Range<usize>> + Clone {
    let step = len.div_ceil(parts.max(1)).next_multiple_of(align.max(1)).max(1);
    (0..len).step_by(step).map(move |s| s..(s + step).min(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_runs_once_across_threads() {
        start_native(3);
        for chunks in [1, 2, 5, 64, 1000] {
            let hits: Vec<AtomicU32> = (0..chunks).map(|_| AtomicU32::new(0)).collect();
            for_each(chunks, &|c| {
                hits[c].fetch_add(1, Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Relaxed) == 1), "{chunks} chunks");
        }
    }

    #[test]
    fn split_covers_the_range_on_aligned_bounds() {
        for (len, parts, align) in [(576, 8, 2), (7, 3, 2), (1, 4, 2), (49152, 16, 4), (0, 2, 2)] {
            let r: Vec<_> = split(len, parts, align).collect();
            assert_eq!(r.iter().map(|r| r.len()).sum::<usize>(), len);
            assert!(r.windows(2).all(|w| w[0].end == w[1].start && w[0].start % align == 0));
            assert!(r.len() <= parts.max(1));
        }
    }
}
