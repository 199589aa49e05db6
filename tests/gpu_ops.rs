//! Every model op on wgpu (lavapipe in CI) against the CPU path on random inputs and odd
//! sizes: embedding gather in every weight format (quantized blocks with random scales), the
//! fused linear's prologues and epilogues over groups of weights with adapters, row gathers,
//! and attention (RoPE, the cache append) with GQA, sliding windows, batches of sequences,
//! cache growth and contexts split over several chunks.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::Rng;
use lorafuse::backend::linear::{Act, Epilogue};
use lorafuse::backend::ops::{self, Attend, Heads, Map, ModelOps, QkNorm, Span};
use lorafuse::lora::LoraGroup;
use lorafuse::{CpuBackend, FactorFormat, GpuOptions, HostWeight, Mix, WeightData, WeightFormat};

fn read<B: ModelOps>(b: &B, t: &B::Tensor) -> Vec<f32> {
    pollster::block_on(b.read(t)).unwrap()
}

fn close(label: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{label}: lengths");
    let num: f64 = got.iter().zip(want).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum::<f64>().max(1e-30);
    let rel = (num / den).sqrt();
    assert!(rel <= tol, "{label}: relative L2 {rel:.2e}");
    assert!(got.iter().all(|v| v.is_finite()), "{label}: non-finite output");
}

/// A random table in `format`: f32 values, or blocks with random (finite) scales and quants.
fn table(rng: &mut Rng, format: WeightFormat, rows: usize, cols: usize) -> HostWeight {
    let vals = rng.vec(rows * cols, 1.0);
    let half = |v: f32| half::f16::from_f32(v).to_bits();
    let data = match format {
        WeightFormat::F32 => WeightData::F32(vals),
        WeightFormat::F16 => WeightData::F16(vals.iter().map(|&v| half(v)).collect()),
        WeightFormat::BF16 => WeightData::BF16(vals.iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect()),
        f => {
            // Random bits, then finite f16 scales (and mins) where the format keeps them.
            let (n, bytes) = f.block();
            let mut out = Vec::new();
            for _ in 0..rows * cols / n {
                let mut b: Vec<u8> = (0..bytes).map(|_| rng.below(256) as u8).collect();
                for (j, &at) in f.halves().iter().enumerate() {
                    let v = if j == 0 { 0.01 + rng.uniform().abs() * 0.1 } else { rng.uniform() * 0.5 };
                    b[at..at + 2].copy_from_slice(&half(v / (n / 32) as f32).to_le_bytes());
                }
                out.extend(b);
            }
            WeightData::Blocks(f, out)
        }
    };
    HostWeight::new(rows, cols, data).unwrap()
}

/// A group of weights sharing an input, with adapters on some of them (ranks 3 and 8, one
/// DoRA), as a model's q/k/v or gate/up.
fn group<B: ModelOps>(b: &B, rng: &mut Rng, formats: &[WeightFormat], outs: &[usize], inp: usize) -> LoraGroup<B> {
    let ws = formats.iter().zip(outs).map(|(&f, &o)| table(&mut Rng::new(rng.below(1000) as u64), f, o, inp)).collect();
    let mut g = LoraGroup::new(b, ws).unwrap();
    for (m, &out) in outs.iter().enumerate() {
        if m == 1 {
            continue; // the middle weight has none: its rows add nothing
        }
        for (id, rank) in [(0, 3), (1, 8)] {
            let mag: Vec<f32> = (0..out).map(|_| 0.5 + rng.uniform().abs()).collect();
            let dora = (id == 1 && m == 0).then_some(&mag[..]);
            g.add_adapter(m, id, &rng.vec(rank * inp, 0.1), &rng.vec(out * rank, 0.1), rank, 0.9, dora, FactorFormat::F32).unwrap();
        }
    }
    g
}

/// Runs a sequence of ops on backend `b`; returns every intermediate result, read back.
fn ops<B: ModelOps>(b: &B, seed: u64) -> Vec<(String, Vec<f32>)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    // Embedding gather, every format, ids spread over a table split into several chunks.
    for f in WeightFormat::ALL {
        let cols = match f.block().0 {
            1 => 77,
            32 => 96,
            per => 2 * per,
        };
        let w = b.weight(table(&mut Rng::new(seed + 1), f, 2001, cols)).unwrap();
        let ids: Vec<u32> = (0..13).map(|_| rng.below(2001) as u32).chain([0, 2000]).collect();
        out.push((format!("embed {f:?}"), read(b, &ops::embed(b, &w, &ids).unwrap())));
    }
    // The fused linear: RMSNorm or none in the prologue; store (with a bias), residual add
    // and silu·mul epilogues; decode (matvec) and prefill (matmul) rows; weights stacked in
    // one binding, split over several (500 rows of 96 f32 exceed the test's 128 KiB), or of
    // mixed formats (no stacking: one pass per weight, then the epilogue); rows with adapters
    // on some weights, stacked, DoRA, or none.
    use WeightFormat::*;
    for (n, inp, formats, outs) in [
        (1, 96, &[Q4_1, Q4_1, Q4_1][..], &[48, 16, 16][..]),
        (3, 64, &[Q8_0, Q8_0, Q8_0], &[40, 24, 24]),
        (2, 77, &[F16, F16, F16], &[37, 11, 11]),
        (5, 96, &[F32, F32, F32], &[300, 100, 100]),
        (3, 128, &[F32, F32, F32], &[300, 100, 100]),
        (4, 64, &[Q4_0, F16, Q8_0], &[33, 17, 17]),
        (1, 256, &[Q4_K, Q4_K, Q4_K], &[48, 16, 16]),
        (3, 512, &[Q6_K, Q5_0, Q5_K], &[33, 17, 17]),
        (2, 256, &[Q2_K, Q3_K, IQ4_NL], &[21, 9, 9]),
        (18, 256, &[Q5_1, Q5_1, Q5_1], &[40, 8, 8]),
        (19, 256, &[Q6_K, Q6_K, Q6_K], &[33, 17, 17]),
        (17, 96, &[Q4_1, Q4_1, Q4_1], &[48, 16, 16]),
        (20, 40, &[BF16, BF16, BF16], &[37, 11, 11]),
        (21, 96, &[F32, F32, F32], &[300, 100, 100]),
    ] {
        let label = format!("{n}x{inp} {formats:?} {outs:?}");
        let qkv = group(b, &mut rng, formats, outs, inp);
        let gate_up = group(b, &mut rng, &formats[..2], &[outs[0], outs[0]], inp);
        let down_format = if outs[0] % formats[0].block().0 == 0 { formats[0] } else { F16 };
        let down = group(b, &mut rng, &[down_format], &[inp], outs[0]);
        let x = b.tensor(&rng.vec(n * inp, 2.0), n, inp).unwrap();
        let gain = b.tensor(&rng.vec(inp, 1.0), 1, inp).unwrap();
        let total: usize = outs.iter().sum();
        let bias = b.tensor(&rng.vec(total, 1.0), 1, total).unwrap();
        let rows: Vec<Vec<(usize, f32)>> = (0..n).map(|i| [vec![(0, 1.0)], vec![], vec![(1, 1.0)], vec![(0, 0.5), (1, 0.7)]][i % 4].clone()).collect();
        let mix = Mix::PerRow(rows);
        for norm in [None, Some((&gain, 1e-5))] {
            let mut y = b.empty(n, total).unwrap();
            qkv.forward(&x, norm, &mix, true, Epilogue::Store { out: &mut y, bias: Some(&bias) }).unwrap();
            out.push((format!("linear {label}, norm {}, store + bias", norm.is_some()), read(b, &y)));
            let mut h = b.empty(n, outs[0]).unwrap();
            for act in [Act::Silu, Act::GeluTanh] {
                gate_up.forward(&x, norm, &mix, true, Epilogue::Glu(&mut h, act)).unwrap();
                out.push((format!("linear {label}, norm {}, {act:?}·mul", norm.is_some()), read(b, &h)));
            }
            let mut res = b.tensor(&rng.vec(n * inp, 1.0), n, inp).unwrap();
            down.forward(&h, None, &mix, true, Epilogue::Add(&mut res)).unwrap();
            out.push((format!("linear {label}, add"), read(b, &res)));
        }
    }
    // Row gathers.
    let x = b.tensor(&rng.vec(7 * 33, 1.0), 7, 33).unwrap();
    out.push(("gather_rows".into(), read(b, &ops::gather_rows(b, &x, &[6, 0, 3, 3]).unwrap())));
    // Element-wise maps (values past the cap included), and the normed residual add over
    // rows of 37 and of 300 (several lanes' strides).
    for f in [Map::Scale(1.7), Map::Softcap(2.5)] {
        let mut x = b.tensor(&rng.vec(5 * 37, 8.0), 5, 37).unwrap();
        ops::map(b, &mut x, f).unwrap();
        out.push((format!("map {f:?}"), read(b, &x)));
    }
    for (n, cols) in [(1, 37), (6, 300)] {
        let mut x = b.tensor(&rng.vec(n * cols, 1.0), n, cols).unwrap();
        let (y, gain) = (b.tensor(&rng.vec(n * cols, 3.0), n, cols).unwrap(), b.tensor(&rng.vec(cols, 1.0), 1, cols).unwrap());
        ops::add_normed(b, &mut x, &y, &gain, 1e-6).unwrap();
        out.push((format!("add_normed [{n}, {cols}]"), read(b, &x)));
    }
    // Attention (RoPE, the cache append, causal attention): GQA, with and without a window,
    // a batch of sequences in one call, prefills then decode steps past the cache's first
    // capacity and past one split chunk (256 positions). 16 rows and more take the tiled
    // prefill kernel (16-row workgroups, the last one partial); head dim 80 gives lanes of 10
    // dims, 36 lanes of 4 or 5, 256 (the largest) K/V tiles of 4 positions and lanes of 32.
    // Every other case RMSNorms queries and keys per head first (Qwen3).
    for (case, (heads, kvh, hd, window, steps)) in [
        (6, 2, 16, None, &[&[11, 3][..], &[1, 1], &[1, 9], &[70, 1], &[20, 1]][..]),
        (6, 2, 16, Some(5), &[&[11][..], &[1], &[9], &[70], &[20]]),
        (2, 1, 80, None, &[&[33, 7][..], &[70, 1], &[1, 1]]),
        (2, 1, 80, Some(50), &[&[70][..], &[1], &[33]]),
        // 300 rows in one prefill, then decode over 2 chunks (and a window of 280 over 2).
        (2, 1, 16, None, &[&[300, 2][..], &[1, 260], &[1, 1]]),
        (2, 1, 16, Some(280), &[&[300][..], &[1], &[3]]),
        (3, 3, 36, Some(40), &[&[17][..], &[1], &[50]]),
        (2, 1, 256, None, &[&[20][..], &[1], &[17]]),
    ]
    .into_iter()
    .enumerate()
    {
        // Every third case with Gemma's score scale and soft-capping instead.
        let h = match case % 3 {
            2 => Heads { scale: 0.3, softcap: Some(1.5), ..Heads::new(heads, kvh, hd, window) },
            _ => Heads::new(heads, kvh, hd, window),
        };
        let inv: Vec<f64> = (0..hd / 2).map(|i| 10000f64.powf(-2.0 * i as f64 / hd as f64)).collect();
        let gains = [b.tensor(&rng.vec(hd, 1.0), 1, hd).unwrap(), b.tensor(&rng.vec(hd, 1.0), 1, hd).unwrap()];
        let qk_norm = || (case % 2 == 1).then(|| QkNorm { q: &gains[0], k: &gains[1], eps: 1e-6 });
        let mut kvs: Vec<_> = (0..steps[0].len()).map(|_| b.kv_new(kvh * hd)).collect();
        for step in steps {
            let n: usize = step.iter().sum();
            let mut spans = Vec::new();
            for (s, &rows) in step.iter().enumerate() {
                spans.push(Span { row0: spans.iter().map(|s: &Span| s.rows).sum(), rows, pos0: b.kv_len(&kvs[s]) });
            }
            let mut qkv = b.tensor(&rng.vec(n * (h.q_width() + 2 * h.kv_width()), 1.0), n, h.q_width() + 2 * h.kv_width()).unwrap();
            let mut a = b.empty(n, h.q_width()).unwrap();
            b.attend(Attend::new(b, &mut qkv, kvs.iter_mut().collect(), &spans, h, &inv, qk_norm(), &mut a).unwrap()).unwrap();
            out.push((format!("attention hd {hd}, rows {step:?} at {spans:?}, window {window:?}, q/k norm {}, {h:?}", case % 2), read(b, &a)));
        }
        let want: Vec<usize> = (0..kvs.len()).map(|s| steps.iter().map(|st| st[s]).sum()).collect();
        assert_eq!(kvs.iter().map(|kv| b.kv_len(kv)).collect::<Vec<_>>(), want);
    }
    out
}

/// Every op, with the workgroup reductions through subgroup operations where the adapter has
/// them (lavapipe does: subgroups of 8) and through the workgroup-memory tree (the fallback
/// devices without them run).
#[test]
fn every_model_op_on_the_gpu_matches_the_cpu() {
    for no_subgroups in [false, true] {
        let Some(g) = common::gpu(GpuOptions { max_binding_bytes: Some(128 << 10), no_subgroups, ..Default::default() }) else { return };
        if std::env::var("LORAFUSE_REQUIRE_GPU").as_deref() == Ok("1") {
            assert_eq!(g.context().flags.subgroups, !no_subgroups, "lavapipe offers subgroups");
        }
        for seed in [1, 2] {
            let (want, got) = (ops(&CpuBackend::default(), seed), ops(&g, seed));
            assert_eq!(want.len(), got.len());
            for ((label, w), (_, gv)) in want.iter().zip(&got) {
                close(label, gv, w, 1e-5);
            }
            eprintln!("subgroups {}, seed {seed}: {} op results match", g.context().flags.subgroups, want.len());
        }
    }
}

/// DoRA through the fused linear on both paths: gains computed on the GPU from the weight as
/// stored (f16 and Q4_1, split over several bindings), decode (matvec) and prefill (matmul)
/// shapes, rows mixing a DoRA adapter, a plain one, a weighted stack of both, and none.
#[test]
fn dora_linear_on_the_gpu_matches_the_cpu() {
    use lorafuse::{LoraLinear, Mix};
    let Some(g) = common::gpu(GpuOptions { max_binding_bytes: Some(16384), ..Default::default() }) else { return };
    fn run<B: ModelOps>(b: &B, w: HostWeight, n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let (out, inp) = (w.rows, w.cols);
        let mut l = LoraLinear::new(b, w).unwrap();
        let (r1, r2) = (5, 3);
        let m: Vec<f32> = (0..out).map(|_| 0.5 + rng.uniform().abs()).collect();
        l.add_adapter_as(0, &rng.vec(r1 * inp, 0.2), &rng.vec(out * r1, 0.2), r1, 0.8, Some(&m), lorafuse::FactorFormat::F32).unwrap();
        l.add_adapter_as(1, &rng.vec(r2 * inp, 0.2), &rng.vec(out * r2, 0.2), r2, 1.5, None, lorafuse::FactorFormat::F32).unwrap();
        let x = rng.vec(n * inp, 1.0);
        let rows: Vec<Vec<(usize, f32)>> = (0..n).map(|i| match i % 4 {
            0 => vec![(0, 1.0)],
            1 => vec![(1, 1.0)],
            2 => vec![(0, 0.6), (1, 0.3)],
            _ => vec![],
        }).collect();
        pollster::block_on(l.run(&x, n, &Mix::PerRow(rows))).unwrap()
    }
    for f in [WeightFormat::F16, WeightFormat::Q4_1] {
        for n in [3, 20] {
            let w = table(&mut Rng::new(5), f, 203, 96);
            let (want, got) = (run(&CpuBackend::default(), w.clone(), n, 9), run(&g, w, n, 9));
            close(&format!("DoRA {f:?} n={n}"), &got, &want, 1e-5);
        }
    }
}

/// Adapter storage is exactly what the loaded adapters take, on both backends: loading grows
/// by what it needs, unloading gives it back from the middle of the arena too (the adapters
/// left are packed), and what stays loaded computes as it did before.
#[test]
fn unloading_adapters_returns_their_storage() {
    use lorafuse::{LoraLinear, Mix};
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    let (out, inp) = (48, 40);
    let words = |rank: usize| rank * (out + inp);
    /// Storage after each step, and the outputs of the adapters left, before and after.
    fn run<B: ModelOps>(b: &B, out: usize, inp: usize) -> (Vec<usize>, Vec<Vec<f32>>) {
        let mut rng = Rng::new(3);
        let w = HostWeight::new(out, inp, WeightData::F32(rng.vec(out * inp, 0.2))).unwrap();
        let mut l = LoraLinear::new(b, w).unwrap();
        let x = rng.vec(3 * inp, 1.0);
        let mut add = |l: &mut LoraLinear<B>, r: usize| l.add_adapter(&rng.vec(r * inp, 0.2), &rng.vec(out * r, 0.2), r, 0.7).unwrap();
        let (a, big, c) = (add(&mut l, 4), add(&mut l, 32), add(&mut l, 8));
        let mixed = |l: &LoraLinear<B>, ids: &[usize]| {
            let rows = vec![vec![(ids[0], 1.0)], ids.iter().map(|&i| (i, 0.5)).collect(), vec![(ids[1], 1.0)]];
            pollster::block_on(l.run(&x, 3, &Mix::PerRow(rows))).unwrap()
        };
        let mut ys = vec![mixed(&l, &[a, c])];
        let mut sizes = vec![l.adapter_storage()];
        l.remove_adapter(big).unwrap(); // the middle one
        sizes.push(l.adapter_storage());
        ys.push(mixed(&l, &[a, c]));
        let d = add(&mut l, 16);
        ys.push(mixed(&l, &[c, d]));
        l.remove_adapter(a).unwrap(); // the first one: c and d move down
        sizes.push(l.adapter_storage());
        ys.push(mixed(&l, &[c, d]));
        l.remove_adapter(c).unwrap();
        l.remove_adapter(d).unwrap();
        sizes.push(l.adapter_storage());
        (sizes, ys)
    }
    let (cpu, want) = run(&CpuBackend::default(), out, inp);
    let (gpu, got) = run(&g, out, inp);
    let held = [words(4) + words(32) + words(8), words(4) + words(8), words(8) + words(16), 0];
    assert_eq!(cpu, held, "CPU storage (words) after each unload");
    assert_eq!(gpu, [held[0], held[1], held[2], 4], "GPU storage (words): exactly what is loaded (4: an empty buffer's minimum)");
    assert_eq!(want[0], want[1], "CPU: a and c compute the same after big's unload");
    assert_eq!(want[2], want[3], "CPU: c and d compute the same after a's unload");
    for (i, (g, c)) in got.iter().zip(&want).enumerate() {
        close(&format!("GPU vs CPU, step {i}"), g, c, 1e-5);
    }
    close("GPU before/after packing", &got[1], &got[0], 1e-6);
    close("GPU before/after packing", &got[3], &got[2], 1e-6);
}

/// Adapters stored in different formats share one layer (an auto-precision model keeps an
/// outlier-heavy adapter in f32 beside int16 ones): a DoRA adapter in int16, a plain one in
/// f16 (int16 on the CPU, which has no f16) and one in f32, per row, stacked and alone, in
/// decode and prefill shapes, before and after unloading the middle one. The reference is the
/// CPU with every adapter in f32 on factors rounded as the format stores them.
#[test]
fn adapters_of_different_formats_share_a_layer() {
    use common::{exact, f16_rounded, i16_rounded, Rounding};
    use lorafuse::{FactorFormat, LoraLinear, Mix};
    /// Outputs with all three adapters, then with the middle one unloaded.
    fn run<B: ModelOps>(b: &B, w: HostWeight, n: usize, formats: [(FactorFormat, Rounding); 3]) -> [Vec<f32>; 2] {
        let mut rng = Rng::new(11);
        let (out, inp) = (w.rows, w.cols);
        let mut l = LoraLinear::new(b, w).unwrap();
        let m: Vec<f32> = (0..out).map(|_| 0.5 + rng.uniform().abs()).collect();
        for (id, ((format, round), rank)) in formats.into_iter().zip([5, 3, 4]).enumerate() {
            let (a, bb) = round(&rng.vec(rank * inp, 0.2), &rng.vec(out * rank, 0.2), rank);
            let gain = (id == 0).then_some(&m[..]);
            l.add_adapter_as(id, &a, &bb, rank, 0.7 + id as f32, gain, format).unwrap();
        }
        let x = rng.vec(n * inp, 1.0);
        let rows = |ids: &[usize]| -> Vec<Vec<(usize, f32)>> {
            (0..n).map(|i| match i % 4 {
                3 => vec![],
                2 => ids.iter().map(|&j| (j, 0.4)).collect(),
                k => vec![(ids[k % ids.len()], 1.0)],
            }).collect()
        };
        let all = pollster::block_on(l.run(&x, n, &Mix::PerRow(rows(&[0, 1, 2])))).unwrap();
        l.remove_adapter(1).unwrap();
        let left = pollster::block_on(l.run(&x, n, &Mix::PerRow(rows(&[0, 2])))).unwrap();
        [all, left]
    }
    use FactorFormat::*;
    let reference = [(F32, i16_rounded as Rounding), (F32, f16_rounded), (F32, exact)];
    let gpu = [(I16, exact as Rounding), (F16, exact), (F32, exact)];
    let cpu_ref = [(F32, i16_rounded as Rounding), (F32, i16_rounded), (F32, exact)];
    let cpu = [(I16, exact as Rounding), (I16, exact), (F32, exact)];
    let cases = ["all three", "after an unload"];
    let weights = || [WeightFormat::F16, WeightFormat::Q4_1].into_iter().flat_map(|f| [3, 20].map(|n| (f, n, table(&mut Rng::new(5), f, 203, 96))));
    for (f, n, w) in weights() {
        let want = run(&CpuBackend::default(), w.clone(), n, cpu_ref);
        for ((got, want), what) in run(&CpuBackend::default(), w, n, cpu).iter().zip(&want).zip(cases) {
            close(&format!("CPU, mixed formats, {f:?} n={n}, {what}"), got, want, 1e-5);
        }
    }
    let Some(g) = common::gpu(GpuOptions { max_binding_bytes: Some(16384), ..Default::default() }) else { return };
    for (f, n, w) in weights() {
        let want = run(&CpuBackend::default(), w.clone(), n, reference);
        for ((got, want), what) in run(&g, w, n, gpu).iter().zip(&want).zip(cases) {
            close(&format!("GPU, mixed formats, {f:?} n={n}, {what}"), got, want, 1e-5);
        }
    }
}
