//! npm run bench, part 3: SmolLM2-135M (GGUF Q4_1) natively, end to end: the CPU path and the
//! whole model on wgpu (lavapipe here: a CPU emulating a GPU, so its rates are correctness-only,
//! never GPU speed). Prefill and decode tok/s, and per decoded token the GPU submits and the
//! bytes read back; then decode with LoRA adapters (none, one all-linear r16, four stacked)
//! on each backend in the same run, the GPU storing adapter factors as f32, f16 and int16.
//! `cargo bench --bench model -- [cpu|gpu|steps|sampling|adapters]` (`steps`: the GPU's counts
//! and per-kernel profile only).

use lorafuse::lora::peft::{ModuleLora, AdapterFile, Proj, Target};
use lorafuse::FactorFormat;
use lorafuse::model::adapters::AdapterChoice;
use lorafuse::model::llama::Logits;
use lorafuse::formats::files::Loader;
use lorafuse::backend::ops::ModelOps;
use lorafuse::backend::select::Choice;
use lorafuse::generate::sample::{SampleOptions, Sampler, P_CANDIDATES};
use lorafuse::model::Model;
use lorafuse::formats::gguf::parse_header;
use lorafuse::{Backend, CpuBackend, GpuBackend, GpuOptions, Mix, WeightData};
use std::time::Instant;

const PROMPT: usize = 64;
const DECODE: usize = 16;

fn load<B: ModelOps>(b: &B, bytes: &[u8]) -> Model<B> {
    let mut l = Loader::new();
    l.begin("SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
    l.push(bytes).unwrap();
    l.finish().and_then(|f| Model::load(b, f)).unwrap()
}

/// (prefill tok/s, decode tok/s): a PROMPT-token prefill, then DECODE greedy single-token
/// steps, the token picked as generation picks it (the backend's top-k selection, k = 1, and
/// on the GPU its pick).
fn run<B: ModelOps>(m: &Model<B>) -> (f64, f64) {
    run_with(m, &Mix::Base, PROMPT, DECODE)
}

fn run_with<B: ModelOps>(m: &Model<B>, mix: &Mix, prompt: usize, decode: usize) -> (f64, f64) {
    let ids: Vec<u32> = (0..prompt as u32).map(|i| 100 + i * 37 % 4000).collect();
    let b = m.llama.backend();
    let mut s = m.llama.session();
    let t0 = Instant::now();
    let t = m.llama.forward(&mut s, &ids, Logits::Last, mix).unwrap();
    let greedy = Sampler::new(SampleOptions::default()).unwrap().select_row(&[], 0, 1, m.info.vocab_size);
    let pick = |mut t| match pollster::block_on(lorafuse::backend::ops::top_k(b, &mut t, 1, std::slice::from_ref(&greedy))).unwrap().remove(0) {
        Choice::Token(t) => t,
        Choice::Select(s) => s.cands[0].0,
    };
    let mut next = pick(t);
    let prefill = prompt as f64 / t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for _ in 0..decode {
        let t = m.llama.forward(&mut s, &[next], Logits::Last, mix).unwrap();
        next = pick(t);
    }
    (prefill, decode as f64 / t1.elapsed().as_secs_f64())
}

/// A random rank-`r` adapter on all 7 projections of every layer (seeded, PEFT-like scale).
fn random_adapter<B: ModelOps>(m: &Model<B>, r: usize, seed: u64) -> AdapterFile {
    let mut state = seed;
    let mut rand = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
            })
            .collect()
    };
    let cfg = &m.llama.cfg;
    let modules = (0..cfg.layers)
        .flat_map(|l| Proj::of(cfg.arch).iter().map(move |&p| (l, p)))
        .flat_map(|(l, p)| {
            let (out, inp) = p.shape(cfg);
            ModuleLora { target: Target::Layer(l, p), a: rand(r * inp, 0.1), b: rand(out * r, 0.02), rank: r, scale: 2.0, magnitude: None }.split_fused(cfg)
        })
        .collect();
    AdapterFile { modules, r, alpha: 2.0 * r as f64, dora: false, targets: vec!["all-linear".into()] }
}

/// Decode tok/s (`steps` steps after a 4-token prompt) with no adapter, one all-linear r16
/// and four stacked, interleaved over rounds (the best of each kept) so that machine noise
/// hits every case alike.
fn adapter_rows<B: ModelOps>(label: &str, mut m: Model<B>, steps: usize) {
    let mut bytes = 0;
    for i in 0..4 {
        bytes = m.add_adapter(&format!("r16-{i}"), random_adapter(&m, 16, 11 + i as u64), false).unwrap().bytes;
    }
    let one = m.adapters.mix(&AdapterChoice::Stack(vec![("r16-0".into(), 1.0)])).unwrap();
    let four = m.adapters.mix(&AdapterChoice::Stack((0..4).map(|i| (format!("r16-{i}"), 0.25)).collect())).unwrap();
    let mut best = [0f64; 3];
    for _ in 0..3 {
        for (b, mix) in best.iter_mut().zip([&Mix::Base, &one, &four]) {
            *b = b.max(run_with(&m, mix, 4, steps).1);
        }
    }
    let share = bytes as f64 / m.info.weight_bytes as f64;
    println!(
        "| {label} | {:.2} | {:.2} ({:.1}%) | {:.2} ({:.1}%) | {:.1} MiB = {:.1}% of the base's {:.1} MiB |",
        best[0],
        best[1],
        100.0 * (best[0] / best[1] - 1.0),
        best[2],
        100.0 * (best[0] / best[2] - 1.0),
        bytes as f64 / (1 << 20) as f64,
        100.0 * share,
        m.info.weight_bytes as f64 / (1 << 20) as f64
    );
}

/// The SmolLM2 file, or (`LORAFUSE_MODEL_HEADER`: its header alone, as `header` writes it)
/// a file of the same shapes and formats with random weights: the same kernels run, at the
/// same speed, without carrying 98 MB to a GPU machine.
fn model_bytes() -> Vec<u8> {
    let Ok(header) = std::env::var("LORAFUSE_MODEL_HEADER") else {
        let dir = std::env::var("LORAFUSE_MODEL_DIR").unwrap_or(".cache/models".into());
        return std::fs::read(format!("{dir}/SmolLM2-135M-Instruct.Q4_1.gguf")).expect("run scripts/fetch-model.sh");
    };
    let mut bytes = std::fs::read(&header).expect("the header file");
    let h = parse_header(&bytes, &header).unwrap().expect("a whole GGUF header");
    let end = h.tensors.iter().map(|t| t.offset + t.size).max().unwrap_or(0);
    bytes.resize((h.data_start + end) as usize, 0);
    let mut seed = 5u64;
    for t in &h.tensors {
        let n: usize = t.dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
                if t.dims.len() == 1 { 1.0 + r } else { r }
            })
            .collect();
        let data = WeightData::quantize(t.format, &v);
        let src: &[u8] = match &data {
            WeightData::F32(v) => bytemuck::cast_slice(v),
            WeightData::F16(v) | WeightData::BF16(v) => bytemuck::cast_slice(v),
            WeightData::Blocks(_, b) => b,
        };
        let at = (h.data_start + t.offset) as usize;
        bytes[at..at + src.len()].copy_from_slice(src);
    }
    bytes
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if let [cmd, out] = &args[..] {
        if cmd == "header" {
            // What `model_bytes` needs to rebuild the file elsewhere: bytes up to the data section.
            let bytes = model_bytes();
            let h = parse_header(&bytes, "model").unwrap().expect("a GGUF header");
            std::fs::write(out, &bytes[..h.data_start as usize]).expect("write the header");
            return;
        }
    }
    let want = |what: &str| args.is_empty() || args.iter().any(|a| a == what);
    let bytes = model_bytes();
    let weights = if std::env::var("LORAFUSE_MODEL_HEADER").is_ok() { "random weights in its shapes and formats" } else { "the real file" };
    println!("### SmolLM2-135M Q4_1 ({weights}), natively: prefill {PROMPT} tokens, then {DECODE} decode steps\n");
    println!("| backend | prefill tok/s | decode tok/s | submits / token | bytes read / token |");
    println!("|---|---|---|---|---|");
    if want("cpu") {
        let (p, d) = run(&load(&CpuBackend::default(), &bytes));
        println!("| {} | {p:.1} | {d:.1} | – | – |", CpuBackend::default().describe());
    }
    if want("gpu") {
        for f16_math in [false, true] {
            match pollster::block_on(GpuBackend::new(&GpuOptions { f16_math, ..Default::default() })) {
                Ok(g) if f16_math && !g.context().flags.f16_math => println!("| GPU, f16 prefill math: no shader-f16 | | | | |"),
                Ok(g) => {
                    let m = load(&g, &bytes);
                    run(&m); // pipelines compiled, pools filled
                    let before = g.context().stats.get();
                    let (p, d) = run(&m);
                    let after = g.context().stats.get();
                    // Per token over the whole run (prefill + decode steps), as generation sees it.
                    let steps = (1 + DECODE) as f64;
                    println!(
                        "| GPU{}: {}{} | {p:.1} | {d:.1} | {:.0} | {:.0} |",
                        if f16_math { ", f16 prefill math" } else { "" },
                        g.describe(),
                        emulated(&g),
                        (after.submits - before.submits) as f64 / steps,
                        (after.read_bytes - before.read_bytes) as f64 / steps
                    );
                }
                Err(e) => println!("| GPU: none ({e}) | | | | |"),
            }
        }
    }
    if want("gpu") || want("steps") {
        gpu_steps(&bytes);
    }
    if want("sampling") {
        sampling_rows(&bytes);
    }
    if want("adapters") {
        println!("\n### Decode with adapters (SmolLM2-135M Q4_1, best of 3 interleaved rounds; CPU 32 steps, GPU 8)\n");
        println!("| backend | base tok/s | one r16 all-linear (slowdown) | 4 stacked r16 (slowdown) | bytes one r16 adds per token |");
        println!("|---|---|---|---|---|");
        for factors in [FactorFormat::F32, FactorFormat::I16] {
            let cpu = CpuBackend { factors, ..CpuBackend };
            adapter_rows(&cpu.describe(), load(&cpu, &bytes), 32);
        }
        for factors in [FactorFormat::F32, FactorFormat::F16, FactorFormat::I16] {
            match pollster::block_on(GpuBackend::new(&GpuOptions { factors, ..Default::default() })) {
                Ok(g) => {
                    let label = format!("GPU: {}, {} factors{}", g.describe(), factors.name(), emulated(&g));
                    adapter_rows(&label, load(&g, &bytes), 8);
                }
                Err(e) => println!("| GPU: none ({e}) | | | | |"),
            }
        }
    }
}

/// Bytes read back per generated token on the GPU when sampling: the pick on the GPU
/// returns one token; the selection (2 KiB) or the whole row (196 KiB) come back only on
/// the steps it leaves to the CPU. 24 tokens per sampler, from a short prompt.
fn sampling_rows(bytes: &[u8]) {
    use lorafuse::generate::{GenerateOptions, Generator, Sequence};
    let Ok(g) = pollster::block_on(GpuBackend::new(&GpuOptions::default())) else { return };
    let m = load(&g, bytes);
    println!("\n### Sampling on the GPU: bytes read back per token (SmolLM2-135M Q4_1, {}, 24 tokens each)\n", g.describe());
    println!("| sampler | bytes read / token | steps reading the selection | steps reading the row |");
    println!("|---|---|---|---|");
    let prompt: Vec<u32> = m.tokenizer.encode("Once upon a time, in a small village by the sea,", false);
    let samplers = [
        ("greedy", SampleOptions::default()),
        ("temperature 0.8, top-k 40", SampleOptions { temperature: 0.8, top_k: 40, seed: 1, ..Default::default() }),
        ("temperature 0.8, top-p 0.9", SampleOptions { temperature: 0.8, top_p: 0.9, seed: 2, ..Default::default() }),
        ("temperature 1.0, min-p 0.05", SampleOptions { temperature: 1.0, min_p: 0.05, seed: 3, ..Default::default() }),
        ("temperature 0.7", SampleOptions { temperature: 0.7, seed: 4, ..Default::default() }),
    ];
    let row = 4 * m.info.vocab_size as u64;
    for (name, sample) in samplers {
        // A selection: k (token, logit) pairs, plus the mass without top-k.
        let cand = 8 * if sample.top_k > 0 { sample.top_k as u64 } else { P_CANDIDATES as u64 + 1 };
        let opts = GenerateOptions { max_tokens: 24, sample, ignore_eos: true, ..Default::default() };
        let mut gen = Generator { seqs: vec![Sequence::new(&m.llama, prompt.clone(), opts, vec![]).unwrap()] };
        let before = g.context().stats.get().read_bytes;
        while !gen.seqs[0].done {
            pollster::block_on(gen.step(&m.llama, &m.tokenizer)).unwrap();
        }
        let read = g.context().stats.get().read_bytes - before;
        let steps = gen.seqs[0].tokens().len() as u64;
        let rows = gen.seqs[0].whole_rows as u64;
        // Each step reads 4 bytes; a step left to the CPU adds its selection, and its row
        // when the selection could not decide either.
        let selections = (read - 4 * steps - rows * row) / cand;
        println!("| {name} | {:.0} | {selections} | {rows} |", read as f64 / steps as f64);
    }
}

/// One decode step and one 64-token prefill on the GPU, as the host sees them (dispatches,
/// workgroups and bytes per dispatch, recording and submit time: meaningful on any device)
/// and, where the adapter has timestamps, per kernel on the GPU.
fn gpu_steps(bytes: &[u8]) {
    use lorafuse::dev::gpu_profile::{copy_ceiling, counts, kernel_table, COUNTS_HEADER};
    let Ok(g) = pollster::block_on(GpuBackend::new(&GpuOptions { timestamps: true, ..Default::default() })) else { return };
    let mut m = load(&g, bytes);
    let one = random_adapter(&m, 16, 11);
    m.add_adapter("r16", one, false).unwrap();
    let r16 = m.adapters.mix(&AdapterChoice::Stack(vec![("r16".into(), 1.0)])).unwrap();
    let ceiling = copy_ceiling(g.context(), 256, 3);
    let layers = m.info.layers;
    println!("\n### GPU steps, SmolLM2-135M Q4_1 ({}{}; copy bandwidth {ceiling:.1} GB/s)\n", g.describe(), emulated(&g));
    println!("Counts per step ({layers} layers; a decode step after a 64-token prompt, greedy pick included):\n");
    println!("| step {COUNTS_HEADER}\n|---|---|---|---|---|---|---|---|");
    let ids: Vec<u32> = (0..PROMPT as u32).map(|i| 100 + i * 37 % 4000).collect();
    let greedy = Sampler::new(SampleOptions::default()).unwrap().select_row(&[], 0, 1, m.info.vocab_size);
    // One step; returns the host's recording time (forward and the pick's dispatches, before
    // the read submits).
    let host = std::cell::Cell::new(0f64);
    let step = |s: &mut lorafuse::model::llama::Session<GpuBackend>, ids: &[u32], mix: &Mix| {
        let t0 = Instant::now();
        let mut t = m.llama.forward(s, ids, Logits::Last, mix).unwrap();
        host.set(host.get() + t0.elapsed().as_nanos() as f64);
        pollster::block_on(lorafuse::backend::ops::top_k(&g, &mut t, 1, std::slice::from_ref(&greedy))).unwrap();
    };
    for (label, mix) in [("decode", &Mix::Base), ("decode, one r16 adapter", &r16)] {
        let mut s = m.llama.session();
        step(&mut s, &ids, mix);
        step(&mut s, &[7], mix); // pipelines, bind groups, pools warm
        let (before, reps) = (g.context().stats.get(), 8);
        host.set(0.0);
        for _ in 0..reps {
            step(&mut s, &[7], mix);
        }
        println!("| {label} {}", counts(before, g.context().stats.get(), reps, host.get()));
    }
    let before = g.context().stats.get();
    host.set(0.0);
    step(&mut m.llama.session(), &ids, &Mix::Base);
    println!("| prefill of {PROMPT} {}", counts(before, g.context().stats.get(), 1, host.get()));
    if !g.context().timestamps {
        println!("\n(no GPU timestamps on this adapter: no per-kernel times)\n");
        return;
    }
    for (label, mix, prompt) in [("a decode step", &Mix::Base, false), ("a decode step, one r16 adapter", &r16, false), ("a prefill of 64 tokens", &Mix::Base, true)] {
        let mut s = m.llama.session();
        if !prompt {
            step(&mut s, &ids, mix);
        }
        g.profile_start().unwrap();
        step(&mut s, if prompt { &ids } else { &[7] }, mix);
        let timed = pollster::block_on(g.profile_finish()).unwrap();
        println!("\nPer kernel, {label} (one pass per dispatch while timing):\n\n{}", kernel_table(&timed, ceiling));
    }
}

/// Said of a GPU whose rates mean nothing (a CPU emulating one: lavapipe, SwiftShader).
fn emulated(g: &GpuBackend) -> &'static str {
    if g.context().cpu_emulated { " (CPU-emulated: correctness-only rate)" } else { "" }
}
