//! The whole model on wgpu (Mesa lavapipe in CI): the tiny fixture models and PEFT adapters
//! against the same PyTorch/PEFT references and tolerances as the CPU path, a mixed per-row
//! batch against the CPU path, and typed refusals for what the GPU path does not run yet.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::{exact, f16_rounded, i16_rounded, max_rel, Rounding};
use lorafuse::FactorFormat;
use lorafuse::model::adapters::{peft_from_files, AdapterChoice};
use lorafuse::model::llama::Logits;
use lorafuse::model::load::Loader;
use lorafuse::model::ops::{ModelOps, SelectRow};
use lorafuse::model::Model;
use lorafuse::{CpuBackend, ErrorKind, GpuOptions, Mix};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f32s(p: &Path) -> Vec<f32> {
    std::fs::read(p).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn files(p: &Path) -> Vec<(String, Vec<u8>)> {
    let paths: Vec<PathBuf> = if p.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
        v.sort();
        v
    } else {
        vec![p.to_path_buf()]
    };
    paths.iter().map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(p).unwrap())).collect()
}

fn load<B: ModelOps>(b: &B, files: &[(String, Vec<u8>)]) -> lorafuse::Result<Model<B>> {
    let mut l = Loader::new();
    for (n, bytes) in files {
        l.begin(n)?;
        l.push(bytes)?;
    }
    l.finish(b)
}

fn prompt() -> Vec<u32> {
    json(&dir().join("reference.json"))["prompt_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

fn forward<B: ModelOps>(m: &Model<B>, s: &mut lorafuse::model::llama::Session<B>, ids: &[u32], logits: Logits, mix: &Mix) -> Vec<f32> {
    let t = m.llama.forward(s, ids, logits, mix).unwrap();
    pollster::block_on(m.llama.backend().read(&t)).unwrap()
}

fn argmax(v: &[f32]) -> u32 {
    v.iter().enumerate().fold(0, |b, (i, &x)| if x > v[b] { i } else { b }) as u32
}

#[test]
fn tiny_models_match_pytorch_on_the_gpu() {
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    let r = json(&dir().join("reference.json"));
    let ids = prompt();
    let mut checked = 0;
    for (arch, entry) in r["models"].as_object().unwrap() {
        for (variant, e) in entry.as_object().unwrap() {
            let label = format!("{arch}/{variant}");
            let src = dir().join(e["dir"].as_str().or(e["file"].as_str()).unwrap());
            // Every format stays as stored (Q4_0/Q4_1/Q8_0 blocks, f16, bf16) and is decoded in WGSL.
            let m = load(&g, &files(&src)).unwrap_or_else(|e| panic!("{label}: {e}"));
            let vocab = m.info.vocab_size;
            let mut s = m.llama.session();
            let got = forward(&m, &mut s, &ids, Logits::All, &Mix::Base);
            let rel = max_rel(&got, &f32s(&dir().join(e["logits"].as_str().unwrap())), vocab);
            assert!(rel <= 1e-4, "{label}: relative L2 {rel:.2e}");
            let am: Vec<u32> = got.chunks(vocab).map(argmax).collect();
            let want: Vec<u32> = e["argmax"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            assert_eq!(am, want, "{label} argmax");
            // Greedy, token by token through the GPU-resident KV cache.
            let mut s = m.llama.session();
            let mut out = vec![argmax(&forward(&m, &mut s, &ids, Logits::Last, &Mix::Base))];
            while out.len() < 8 {
                let next = forward(&m, &mut s, &[*out.last().unwrap()], Logits::Last, &Mix::Base);
                out.push(argmax(&next));
            }
            let want: Vec<u32> = e["greedy_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            assert_eq!(out, want, "{label} greedy tokens");
            eprintln!("{label}: relative L2 {rel:.1e}");
            checked += 1;
        }
    }
    assert_eq!(checked, 22, "3 architectures × (6 GGUF formats + HF), plus sharded HF");
}

/// The PEFT fixture variants: (name, base model files, adapter files, PEFT's logits).
fn peft_variants() -> Vec<(String, Vec<(String, Vec<u8>)>, Vec<(String, Vec<u8>)>, Vec<f32>)> {
    let r = json(&dir().join("adapters/reference.json"));
    let v: Vec<_> = r
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, e)| {
            let base = files(&dir().join(format!("{}-hf", e["base"].as_str().unwrap())));
            let adapter = files(&dir().join(e["dir"].as_str().unwrap()));
            (name.clone(), base, adapter, f32s(&dir().join("adapters").join(name).join("expected_logits.f32")))
        })
        .collect();
    assert_eq!(v.len(), 8, "every PEFT variant, DoRA included");
    v
}

/// All logits of the prompt with adapter `name` on `b`, its factors first passed through
/// `stored` (`exact`, or a rounding).
fn adapter_logits<B: ModelOps>(b: &B, name: &str, base: &[(String, Vec<u8>)], adapter: &[(String, Vec<u8>)], stored: Rounding) -> (Vec<f32>, usize) {
    let mut m = load(b, base).unwrap();
    let mut a = peft_from_files(adapter, &m.llama.cfg).unwrap();
    for module in &mut a.modules {
        (module.a, module.b) = stored(&module.a, &module.b, module.rank);
    }
    m.add_adapter(name, a, false).unwrap();
    let mix = m.adapters.mix(&AdapterChoice::Stack(vec![(name.into(), 1.0)])).unwrap();
    (forward(&m, &mut m.llama.session(), &prompt(), Logits::All, &mix), m.info.vocab_size)
}

/// Adapter factors stored in 16 bits (int16 with per-rank scales on both backends, f16 on
/// the GPU): the f32 CPU's result on the same factors rounded the same way within f32
/// tolerance (the kernels, DoRA's gains included, are right), and the distance to PEFT's f32
/// logits measured and bounded (what the rounding itself costs; on these tiny random models
/// f16's is large: see bench/RESULTS.md for SmolLM2).
#[test]
fn sixteen_bit_adapters_compute_exactly_on_rounded_factors() {
    fn check<B: ModelOps>(b: &B, label: &str, stored: Rounding, peft_tol: f64) {
        for (name, base, adapter, want) in peft_variants() {
            let (got, vocab) = adapter_logits(b, &name, &base, &adapter, exact);
            let (cpu, _) = adapter_logits(&CpuBackend, &name, &base, &adapter, stored);
            let rel = max_rel(&got, &cpu, vocab);
            assert!(rel <= 5e-5, "{name}: {label} vs the f32 CPU on rounded factors: relative L2 {rel:.2e}");
            let vs_peft = max_rel(&got, &want, vocab);
            assert!(vs_peft <= peft_tol, "{name}: {label} vs PEFT relative L2 {vs_peft:.2e}");
            eprintln!("adapter {name}, {label}: vs the f32 CPU on rounded factors {rel:.1e}, vs PEFT f32 {vs_peft:.1e}");
        }
    }
    check(&CpuBackend { factors: FactorFormat::I16, ..CpuBackend }, "int16 factors on the CPU", i16_rounded, 5e-3);
    if let Some(g) = common::gpu(GpuOptions { factors: FactorFormat::F16, ..Default::default() }) {
        check(&g, "f16 factors on the GPU", f16_rounded, 5e-2);
    }
    if let Some(g) = common::gpu(GpuOptions { factors: FactorFormat::I16, ..Default::default() }) {
        check(&g, "int16 factors on the GPU", i16_rounded, 5e-3);
    }
}

#[test]
fn peft_adapters_match_peft_on_the_gpu_with_a_mixed_batch() {
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    for (name, base, adapter, want) in peft_variants() {
        let (got, vocab) = adapter_logits(&g, &name, &base, &adapter, exact);
        let rel = max_rel(&got, &want, vocab);
        assert!(rel <= 1e-4, "{name}: relative L2 {rel:.2e} vs PEFT");
        eprintln!("adapter {name}: relative L2 {rel:.1e}");
    }
    let ids = prompt();

    // One batched pass, three sequences, three choices (one of them the base): the GPU gives
    // the CPU path's logits at prefill and at a batched decode step.
    let base = files(&dir().join("llama-hf"));
    let (mut mg, mut mc) = (load(&g, &base).unwrap(), load(&CpuBackend, &base).unwrap());
    for n in ["qv-r4", "all-linear-r8"] {
        let f = files(&dir().join("adapters").join(n));
        mg.add_adapter(n, peft_from_files(&f, &mg.llama.cfg).unwrap(), false).unwrap();
        mc.add_adapter(n, peft_from_files(&f, &mc.llama.cfg).unwrap(), false).unwrap();
    }
    let choices = [AdapterChoice::Stack(vec![("qv-r4".into(), 1.0)]), AdapterChoice::Base, AdapterChoice::Stack(vec![("all-linear-r8".into(), 0.6)])];
    let prompts: [&[u32]; 3] = [&ids, &ids[..7], &ids[3..]];
    fn batch<B: ModelOps>(m: &Model<B>, choices: &[AdapterChoice], steps: &[Vec<&[u32]>]) -> Vec<Vec<f32>> {
        let mut sessions: Vec<_> = (0..choices.len()).map(|_| m.llama.session()).collect();
        let mut outs = Vec::new();
        for step in steps {
            let mut rows = Vec::new();
            for (p, ch) in step.iter().zip(choices) {
                rows.extend(std::iter::repeat(m.adapters.stack(ch).unwrap()).take(p.len()));
            }
            let mut seqs: Vec<_> = sessions.iter_mut().zip(step).map(|(s, p)| (s, *p)).collect();
            let t = m.llama.forward_batch(&mut seqs, Logits::Last, &Mix::PerRow(rows)).unwrap();
            outs.push(pollster::block_on(m.llama.backend().read(&t)).unwrap());
        }
        outs
    }
    let steps = vec![prompts.to_vec(), vec![&[5u32][..], &[9], &[11]]];
    let (og, oc) = (batch(&mg, &choices, &steps), batch(&mc, &choices, &steps));
    let vocab = mg.info.vocab_size;
    for (s, (a, b)) in og.iter().zip(&oc).enumerate() {
        let rel = max_rel(a, b, vocab);
        assert!(rel <= 1e-5, "mixed batch step {s}: GPU vs CPU relative L2 {rel:.2e}");
    }
    assert!(max_rel(&og[0][..vocab], &og[0][vocab..2 * vocab], vocab) > 1e-2, "rows differ");
}

#[test]
fn gpu_model_refuses_bad_input_with_typed_errors() {
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    let m = load(&g, &files(&dir().join("llama-hf"))).unwrap();
    let mut s = m.llama.session();
    let vocab = m.info.vocab_size as u32;
    let e = m.llama.forward(&mut s, &[1, vocab + 3], Logits::Last, &Mix::Base).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Shape);
    assert!(e.message.contains(&format!("token id {}", vocab + 3)), "{e}");
    // Nothing was cached by the failed pass; the session still works.
    assert_eq!(s.len(m.llama.backend()), 0);
    let ok = forward(&m, &mut s, &[1, 2, 3], Logits::Last, &Mix::Base);
    assert!(ok.iter().all(|v| v.is_finite()));
    // A KV cache past the storage binding limit is a typed limit error, not a device loss.
    let small = common::gpu(GpuOptions { max_binding_bytes: Some(4096), ..Default::default() }).unwrap();
    let m = load(&small, &files(&dir().join("llama-hf"))).unwrap();
    let fits = 4096 / (m.llama.cfg.kv_heads * m.llama.cfg.head_dim * 4);
    let mut s = m.llama.session();
    let mut pos = 0;
    let e = loop {
        match m.llama.forward(&mut s, &[7], Logits::Last, &Mix::Base) {
            Ok(_) => pos += 1,
            Err(e) => break e,
        }
        assert!(pos <= fits, "{pos} positions cached in a cache that holds {fits}");
    };
    assert_eq!((e.kind, pos), (ErrorKind::Limit, fits), "{e}");
    assert!(e.message.contains("KV cache"), "{e}");
}

/// The sampler's selection on the GPU (repetition penalty, then the k best logits, ties to
/// the lower id, and the row's mass at a per-row temperature) equals the CPU's on random
/// logits with odd sizes: scattered ties, and rounded logits whose ties straddle the k-th
/// (the radix select's ordered tie pass), with -inf entries. k covers the per-pick passes
/// (k <= 4, k > 256) and the radix select between.
#[test]
fn top_k_on_the_gpu_matches_the_cpu() {
    use lorafuse::Backend;
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    let mut rng = common::Rng::new(11);
    let (rows, vocab) = (3, 1013);
    let mut scattered = rng.vec(rows * vocab, 8.0);
    for i in 0..40 {
        let n = scattered.len();
        scattered[(i * 97) % n] = scattered[(i * 31) % n];
    }
    let mut rounded: Vec<f32> = rng.vec(rows * vocab, 6.0).iter().map(|v| v.round()).collect();
    for i in (0..rounded.len()).step_by(7) {
        rounded[i] = f32::NEG_INFINITY;
    }
    let mut checks = 0;
    for (logits, ks) in [(&scattered, &[1, 5, 40, 256, 300][..]), (&rounded, &[3, 5, 64, 200][..])] {
        let asks: Vec<SelectRow> = (0..rows)
            .map(|r| SelectRow {
                penalty: 1.0 + 0.3 * r as f32,
                penalized: (0..20).map(|_| rng.below(vocab) as u32).collect::<std::collections::BTreeSet<_>>().into_iter().collect(),
                inv_temp: [0.0, 1.0 / 0.7, 1.5][r],
            })
            .collect();
        for &k in ks {
            let mut tc = CpuBackend::default().tensor(logits, rows, vocab).unwrap();
            let cpu = pollster::block_on(CpuBackend::default().top_k(&mut tc, k, &asks)).unwrap();
            let mut tg = g.tensor(logits, rows, vocab).unwrap();
            let gpu = pollster::block_on(g.top_k(&mut tg, k, &asks)).unwrap();
            // Both penalized the logits in place, alike.
            let (pc, pg) = (pollster::block_on(CpuBackend::default().read(&tc)).unwrap(), pollster::block_on(g.read(&tg)).unwrap());
            assert_eq!(pc, pg, "penalized logits");
            assert_ne!(&pc, logits, "the penalty was applied");
            assert_eq!(gpu.len(), rows);
            for (r, (sc, sg)) in cpu.iter().zip(&gpu).enumerate() {
                match (sc.mass, sg.mass) {
                    (None, None) => assert_eq!(asks[r].inv_temp, 0.0),
                    (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-5 * a, "row {r} mass: {a} vs {b}"),
                    other => panic!("row {r}: masses {other:?}"),
                }
                let (c, gp) = (&sc.cands, &sg.cands);
                assert_eq!(c.len(), k);
                assert_eq!(c.iter().map(|p| p.0).collect::<Vec<_>>(), gp.iter().map(|p| p.0).collect::<Vec<_>>(), "k = {k}");
                assert!(c.iter().zip(gp).all(|(a, b)| a.1.to_bits() == b.1.to_bits()), "k = {k}: logits differ");
                checks += 1;
            }
        }
    }
    // The rounded rows do cut through ties: the k-th logit also appears after the k.
    let row = &rounded[..vocab];
    let mut sorted = row.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(sorted[63], sorted[64], "ties at the cut");
    assert_eq!(checks, 3 * 9);
}

/// A whole SmolLM2-sized row (49,152 + 5 logits) through the radix select: more chunks than
/// threads, ties at the cut.
#[test]
fn top_k_on_the_gpu_over_a_large_vocabulary() {
    use lorafuse::Backend;
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    let mut rng = common::Rng::new(12);
    let vocab = 49157;
    let logits: Vec<f32> = rng.vec(vocab, 4.0).iter().map(|v| (v * 64.0).round() / 64.0).collect();
    let asks = [SelectRow { penalty: 1.0, penalized: vec![], inv_temp: 1.0 }];
    for k in [64, 256] {
        let cpu = pollster::block_on(CpuBackend::default().top_k(&mut CpuBackend::default().tensor(&logits, 1, vocab).unwrap(), k, &asks)).unwrap();
        let gpu = pollster::block_on(g.top_k(&mut g.tensor(&logits, 1, vocab).unwrap(), k, &asks)).unwrap();
        assert_eq!(cpu[0].cands, gpu[0].cands, "k = {k}");
        let (a, b) = (cpu[0].mass.unwrap(), gpu[0].mass.unwrap());
        assert!((a - b).abs() <= 1e-5 * a, "mass {a} vs {b}");
    }
}

/// Generation steps on the GPU (selection on the GPU, a few pairs read back) give the CPU
/// path's tokens, greedy and sampled (seeded top-k, top-p, temperature, repetition penalty).
#[test]
fn generation_on_the_gpu_matches_the_cpu() {
    use lorafuse::model::generate::{GenerateOptions, Generator, Sequence};
    use lorafuse::model::sample::{SampleOptions, P_CANDIDATES};
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    let base = files(&dir().join("llama-hf"));
    let (mg, mc) = (load(&g, &base).unwrap(), load(&CpuBackend::default(), &base).unwrap());
    fn run<B: ModelOps>(m: &Model<B>, sample: &SampleOptions) -> Vec<u32> {
        let opts = GenerateOptions { max_tokens: 12, sample: sample.clone(), stop_strings: vec![], stop_tokens: vec![], ignore_eos: true };
        let mut gen = Generator { seqs: vec![Sequence::new(&m.llama, prompt(), opts, vec![]).unwrap()] };
        while !gen.seqs[0].done {
            pollster::block_on(gen.step(&m.llama, &m.tokenizer)).unwrap();
        }
        gen.seqs[0].tokens().to_vec()
    }
    // Every pipeline was compiled at load, none at the first token.
    let compiled = g.pipelines_compiled();
    let greedy = SampleOptions::default();
    let sampled = SampleOptions { temperature: 0.8, top_k: 20, top_p: 0.9, repetition_penalty: 1.3, seed: 7, ..SampleOptions::default() };
    // Without top-k (temperature, top-p, min-p): the best P_CANDIDATES and the row's mass
    // decide, or every logit is read (a flat distribution at temperature 3 needs more for
    // top-p 0.95).
    let top_p = SampleOptions { temperature: 0.9, top_p: 0.8, repetition_penalty: 1.2, seed: 3, ..SampleOptions::default() };
    let min_p = SampleOptions { temperature: 1.1, min_p: 0.1, seed: 5, ..SampleOptions::default() };
    let flat = SampleOptions { temperature: 3.0, top_p: 0.95, seed: 9, ..SampleOptions::default() };
    let temp = SampleOptions { temperature: 0.6, seed: 2, ..SampleOptions::default() };
    for s in [&greedy, &sampled, &top_p, &min_p, &flat, &temp] {
        let (a, b) = (run(&mg, s), run(&mc, s));
        assert_eq!(a.len(), 12);
        assert_eq!(a, b, "{s:?}");
    }
    assert_eq!(g.pipelines_compiled(), compiled, "pipelines compiled after load");
    // Bytes read back per step: k (token, logit) pairs, not the vocabulary.
    let before = g.context().stats.get();
    run(&mg, &SampleOptions::default());
    let after = g.context().stats.get();
    assert_eq!(after.read_bytes - before.read_bytes, 12 * 8, "one (token, logit) pair per greedy step");
    // Top-p/min-p: P_CANDIDATES pairs and the mass per step, plus the whole row (4·vocab)
    // on the steps they cannot decide: min-p decides most here, the flat case none.
    let (cand, full) = (8 * (P_CANDIDATES as u64 + 1), 4 * mg.info.vocab_size as u64);
    let read = |s: &SampleOptions| {
        let before = g.context().stats.get().read_bytes;
        run(&mg, s);
        g.context().stats.get().read_bytes - before
    };
    let (mp, fl) = (read(&min_p), read(&flat));
    assert!(mp < 12 * cand + 6 * full, "min_p: {mp} bytes");
    assert_eq!(fl, 12 * (cand + full), "flat: every step reads the row");
}
