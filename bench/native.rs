//! npm run bench, part 2: natively, the portable CPU path and wgpu (lavapipe here: a CPU
//! emulating a GPU, so its figures are correctness-only rates, not GPU speed). Same table
//! as bench/wasm.mjs, and the GPU top-k selection.
//! `cargo bench --bench linear -- [cpu|gpu|topk] [f32,f16,q4_1,...] [large]` (`large` adds
//! larger models' shapes: Qwen2.5-0.5B's MLP and Llama-3.2-1B's).

use lorafuse::dev::bench::{linear, read_ceiling, LinearBench, LinearCase};
use lorafuse::{Backend, CpuBackend, GpuBackend, GpuOptions, WeightFormat};
use std::time::Instant;

/// SmolLM2-135M's projections and lm_head, (out, in).
const SHAPES: [(usize, usize); 5] = [(576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576)];
/// Qwen2.5-0.5B's MLP (896 ↔ 4864) and Llama-3.2-1B's (2048 ↔ 8192).
const LARGE: [(usize, usize); 4] = [(4864, 896), (896, 4864), (8192, 2048), (2048, 8192)];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |what: &str| args.iter().all(|a| a == "large" || a.contains(',') || WeightFormat::parse(a).is_ok()) || args.iter().any(|a| a == what);
    let shapes: Vec<(usize, usize)> = SHAPES.iter().chain(if args.iter().any(|a| a == "large") { &LARGE[..] } else { &[] }).copied().collect();
    let formats: Vec<WeightFormat> = args
        .iter()
        .find(|a| a.split(',').all(|f| WeightFormat::parse(f).is_ok()))
        .map(|a| a.split(',').map(|f| WeightFormat::parse(f).unwrap()).collect())
        .unwrap_or(vec![WeightFormat::F32, WeightFormat::F16]);
    let min_ms: f64 = std::env::var("BENCH_MIN_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(300.0);
    let cold_mib: usize = std::env::var("BENCH_COLD_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let t0 = Instant::now();
    let now = move || t0.elapsed().as_secs_f64() * 1e3;

    let ceiling = read_ceiling(256, 5, now);
    println!("native read ceiling {ceiling:.1} GB/s (SIMD sum over 256 MiB, 1 thread)\n");
    if want("cpu") {
        println!("### native CPU ({})", CpuBackend.describe());
        table(&CpuBackend, &shapes, &formats, min_ms, cold_mib, ceiling, now, || ());
    }
    if want("gpu") {
        match pollster::block_on(GpuBackend::new(&GpuOptions::default())) {
            Ok(g) => {
                let ctx = g.context();
                println!("### native GPU: {} (subgroups {}; on lavapipe CPU-emulated: correctness-only rates)", g.describe(), ctx.flags.subgroups);
                // Submit what the timed forwards recorded, and wait for it.
                let sync = || g.finish().expect("GPU");
                let gpu_ceiling = lorafuse::dev::gpu_profile::copy_ceiling(ctx, 256, 5);
                println!("GPU memory ceiling {gpu_ceiling:.1} GB/s (a 256 MiB buffer copy, read + write bytes): % ceiling below is of this\n");
                table(&g, &shapes, &formats, min_ms, cold_mib, gpu_ceiling, now, sync);
            }
            Err(e) => println!("### native GPU: none ({e})"),
        }
    }
    if want("topk") {
        top_k_rows(now);
    }
}

/// The sampler's selection on the GPU over one SmolLM2-sized row (49,152 logits): k pairs
/// plus the row's mass, read back. Per-call time, best of a few.
fn top_k_rows(now: impl Fn() -> f64) {
    use lorafuse::backend::select::SelectRow;
    let Ok(g) = pollster::block_on(GpuBackend::new(&GpuOptions::default())) else { return };
    println!("### top-k selection on the GPU: {} (correctness-only rates)\n", g.describe());
    println!("| vocab | k | with mass | ms per call |");
    println!("|---|---|---|---|");
    let vocab = 49152;
    let mut s = 7u32;
    let logits: Vec<f32> = (0..vocab)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1 << 24) as f32 * 20.0
        })
        .collect();
    for (k, mass) in [(1, false), (4, false), (64, true), (256, true)] {
        let asks = [SelectRow { inv_temp: if mass { 1.0 } else { 0.0 }, ..SelectRow::plain() }];
        let mut best = f64::MAX;
        for _ in 0..5 {
            let mut t = g.tensor(&logits, 1, vocab).unwrap();
            let t0 = now();
            pollster::block_on(lorafuse::backend::ops::top_k(&g, &mut t, k, &asks)).unwrap();
            best = best.min(now() - t0);
        }
        println!("| {vocab} | {k} | {mass} | {best:.2} |");
    }
    println!();
}

#[allow(clippy::too_many_arguments)]
fn table<B: Backend>(
    b: &B,
    shapes: &[(usize, usize)],
    formats: &[WeightFormat],
    min_ms: f64,
    cold_mib: usize,
    ceiling: f64,
    now: impl Fn() -> f64 + Copy,
    sync: impl Fn() + Copy,
) {
    println!("| in→out | n | dtype | base ms | GFLOP/s | weight GB/s | % ceiling | r16 overhead | physical share | overhead / share |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &format in formats {
        for n in [1, 64] {
            for &(out, inp) in shapes {
                if inp % format.block().0 != 0 {
                    continue; // rows of whole blocks only (a K-quant's 256: SmolLM2's 1536-wide down)
                }
                let case = LinearCase {
                    out,
                    inp,
                    n,
                    format,
                    ranks: vec![16],
                    cold_bytes: if n == 1 { cold_mib << 20 } else { 0 },
                    min_ms,
                };
                match linear(b, &case, now, sync) {
                    Ok(r) => println!("{}", row(&r, ceiling)),
                    Err(e) => println!("| {inp}→{out} | {n} | {} | error: {e} |", format.name()),
                }
            }
        }
    }
    println!();
}

fn row(r: &LinearBench, ceiling: f64) -> String {
    // Decode is bandwidth-bound (bytes added), prefill compute-bound (FLOPs added).
    let (share, unit) = if r.n == 1 { (r.byte_share(), "bytes") } else { (r.flop_share(), "FLOPs") };
    format!(
        "| {}→{} | {} | {} | {:.3} | {:.2} | {:.2} | {:.0}% | {:.1}% | {:.1}% ({unit}) | {:.2} |",
        r.inp,
        r.out,
        r.n,
        r.dtype,
        r.base_ms,
        r.base_gflops(),
        r.base_gbps(),
        100.0 * r.base_gbps() / ceiling,
        100.0 * r.overhead(),
        100.0 * share,
        r.overhead() / share
    )
}
