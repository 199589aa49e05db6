#![cfg(not(target_arch = "wasm32"))]
//! The CPU kernels on the worker pool: every case and routing of the f64-reference suite
//! gives bit-identical outputs on 1 and 4 threads (threads take whole weight rows, so each
//! value is computed the same way), and stays within the reference's tolerance.

mod common;
use common::*;
use lorafuse::cpu::pool;
use lorafuse::{Backend, CpuBackend, LoraLinear};

fn run(case: &Case, layer: &LoraLinear<CpuBackend>, mix: &lorafuse::Mix, threads: usize) -> Vec<f32> {
    pool::set_threads(threads);
    let b = CpuBackend;
    let x = b.tensor(&case.x, case.n, case.inp).unwrap();
    let mut y = b.tensor(&vec![f32::NAN; case.n * case.out], case.n, case.out).unwrap();
    layer.forward(&x, mix, &mut y).unwrap();
    pollster::block_on(b.read(&y)).unwrap()
}

/// The pool is one per process: its tests take turns (each counts what ran where).
fn pool_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn outputs_do_not_depend_on_the_thread_count() {
    let _turn = pool_turn();
    pool::start_native(3);
    pool::set_min_work(0);
    let before = pool::shared_jobs();
    let mut checks = 0;
    for (i, case) in standard_cases().iter().chain(&quant_cases()).enumerate() {
        let mut layer = LoraLinear::new(&CpuBackend, case.host_weight()).unwrap();
        for ad in &case.adapters {
            layer.add_adapter(&ad.a, &ad.b, ad.rank, ad.scale).unwrap();
        }
        for (name, mix) in case.mixes(i as u64) {
            let one = run(case, &layer, &mix, 1);
            let four = run(case, &layer, &mix, 4);
            assert!(four.iter().all(|v| v.is_finite()), "case {i} {name}: unwritten outputs");
            assert_eq!(one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), four.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "case {i} {name}");
            checks += 1;
        }
        // And against the f64 reference on 4 threads.
        pool::set_threads(4);
        pollster::block_on(check_case(&CpuBackend, case, i as u64)).unwrap();
    }
    eprintln!("{checks} (case, routing) pairs; {} jobs shared", pool::shared_jobs() - before);
    assert!(checks >= 100);
    assert!(pool::shared_jobs() - before >= checks, "the jobs ran on one thread");
}

/// A job that panics, on a worker or on the caller, is re-raised on the caller once every
/// thread has left it, and the pool is free again: a later job runs on several threads.
#[test]
fn a_panicking_job_is_reraised_and_the_pool_recovers() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let _turn = pool_turn();
    pool::start_native(3);
    pool::set_threads(4);
    // A few µs per chunk, so that workers join before the caller has taken every chunk.
    let work = || (0..5_000u32).fold(0u32, |a, i| std::hint::black_box(a ^ i));
    for bad in [0, 37, 63] {
        let r = std::panic::catch_unwind(|| {
            pool::for_each(64, &|c| {
                work();
                assert_ne!(c, bad, "chunk {c} fails on purpose");
            })
        });
        assert!(r.is_err(), "chunk {bad}'s panic was lost");
    }
    let caller = std::thread::current().id();
    let shared = (0..1000).any(|_| {
        let other = AtomicBool::new(false);
        pool::for_each(64, &|_| {
            work();
            if std::thread::current().id() != caller {
                other.store(true, Relaxed);
            }
        });
        other.load(Relaxed)
    });
    assert!(shared, "no job ran on a worker after the panics");
}
