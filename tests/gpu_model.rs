//! The whole model on wgpu (Mesa lavapipe in CI): the tiny fixture models and PEFT adapters
//! against the same PyTorch/PEFT references and tolerances as the CPU path, a mixed per-row
//! batch against the CPU path, and typed refusals for what the GPU path does not run yet.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::{exact, f16_rounded, i16_rounded, max_rel, Rounding};
use lorafuse::FactorFormat;
use lorafuse::model::adapters::{peft_from_files, AdapterChoice};
use lorafuse::model::llama::Logits;
use lorafuse::formats::files::Loader;
use lorafuse::backend::ops::ModelOps;
use lorafuse::backend::select::{Choice, Penalty, SelectRow};
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
    l.finish().and_then(|f| Model::load(b, f))
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
    assert_eq!(checked, 35, "3 architectures × (6 GGUF formats + HF), sharded HF, llama with rope_freqs; qwen3, phi3, gemma2, gemma3 × (2 GGUF formats + HF)");
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
    assert_eq!(v.len(), 13, "every PEFT variant, DoRA and fused Phi-3 projections included");
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
                // Repetition (scale) and frequency/presence (minus) penalties on distinct tokens.
                penalties: (0..20)
                    .map(|_| rng.below(vocab) as u32)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .map(|token| Penalty { token, scale: 1.0 + 0.3 * r as f32, minus: [0.0, 0.5, -0.7][r] * rng.below(4) as f32 })
                    .collect(),
                inv_temp: [0.0, 1.0 / 0.7, 1.5][r],
                lse: r != 1,
                draw: None,
                // Structured output's mask on the last row: a random half of the vocabulary.
                allowed: (r == 2).then(|| (0..vocab.div_ceil(32)).map(|_| rng.below(1 << 16) as u32 * 0x10001).collect()),
            })
            .collect();
        for &k in ks {
            let mut tc = CpuBackend::default().tensor(logits, rows, vocab).unwrap();
            let cpu = pollster::block_on(lorafuse::backend::ops::top_k(&CpuBackend::default(), &mut tc, k, &asks)).unwrap();
            let mut tg = g.tensor(logits, rows, vocab).unwrap();
            let gpu = pollster::block_on(lorafuse::backend::ops::top_k(&g, &mut tg, k, &asks)).unwrap();
            let (cpu, gpu): (Vec<_>, Vec<_>) = (cpu.into_iter().flat_map(Choice::selection).collect(), gpu.into_iter().flat_map(Choice::selection).collect());
            // Both penalized the logits in place, alike.
            let (pc, pg) = (pollster::block_on(CpuBackend::default().read(&tc)).unwrap(), pollster::block_on(g.read(&tg)).unwrap());
            assert_eq!(pc, pg, "penalized logits");
            assert_ne!(&pc, logits, "the penalty was applied");
            let bits = asks[2].allowed.as_ref().unwrap();
            let masked = (0..vocab).filter(|&t| !lorafuse::backend::select::has(bits, t)).collect::<Vec<_>>();
            assert!(masked.len() > vocab / 4 && masked.iter().all(|&t| pc[2 * vocab + t] == lorafuse::backend::select::MASKED), "the mask was applied");
            assert_eq!(gpu.len(), rows);
            for (r, (sc, sg)) in cpu.iter().zip(&gpu).enumerate() {
                match (sc.mass, sg.mass) {
                    (None, None) => assert_eq!(asks[r].inv_temp, 0.0),
                    (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-5 * a, "row {r} mass: {a} vs {b}"),
                    other => panic!("row {r}: masses {other:?}"),
                }
                match (sc.lse, sg.lse) {
                    (None, None) => assert!(!asks[r].lse),
                    (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "row {r} log-sum-exp: {a} vs {b}"),
                    other => panic!("row {r}: log-sum-exps {other:?}"),
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
    let asks = [SelectRow { inv_temp: 1.0, ..SelectRow::plain() }];
    for k in [64, 256] {
        let cpu = pollster::block_on(lorafuse::backend::ops::top_k(&CpuBackend::default(), &mut CpuBackend::default().tensor(&logits, 1, vocab).unwrap(), k, &asks)).unwrap();
        let gpu = pollster::block_on(lorafuse::backend::ops::top_k(&g, &mut g.tensor(&logits, 1, vocab).unwrap(), k, &asks)).unwrap();
        let (cpu, gpu) = (cpu[0].clone().selection().unwrap(), gpu[0].clone().selection().unwrap());
        assert_eq!(cpu.cands, gpu.cands, "k = {k}");
        let (a, b) = (cpu.mass.unwrap(), gpu.mass.unwrap());
        assert!((a - b).abs() <= 1e-5 * a, "mass {a} vs {b}");
    }
}

/// The GPU's pick from its selection (pick.wgsl: one u32 per row back) is the token the CPU
/// sampler picks from the whole row, for every draw it answers, over batches mixing greedy,
/// top-k, top-p, min-p and plain temperature rows on LM-like, flat, tied (rounded) and
/// nearly tied (a few ulps apart, which dividing by the temperature would merge) logits. It
/// answers nearly every draw the selection decides; the rest come back as selections, from
/// which the sampler picks as before, its stream in step.
#[test]
fn picks_on_the_gpu_are_the_samplers() {
    use lorafuse::generate::sample::{SampleOptions, Sampler};
    use lorafuse::Backend;
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    let mut rng = common::Rng::new(13);
    let vocab = 3001;
    // Exponential tails like an LM's logits, at three spreads; rounded to 1/4 for ties.
    let mut lm = |spread: f32, round: bool| -> Vec<f32> {
        (0..vocab)
            .map(|_| {
                let v = -spread * (0.5 + 0.5 * rng.uniform()).max(1e-7).ln();
                if round { (v * 4.0).round() / 4.0 } else { v }
            })
            .collect()
    };
    let mut near = lm(1.5, true);
    for (i, v) in near.iter_mut().enumerate() {
        *v = f32::from_bits(v.to_bits() + (i % 3) as u32); // 0, 1 or 2 ulps up
    }
    let rows = [lm(0.7, false), lm(1.5, false), lm(3.0, false), lm(1.5, true), near, vec![0.25; vocab]];
    let opts = [
        SampleOptions::default(),
        SampleOptions { temperature: 0.8, top_k: 40, ..Default::default() },
        SampleOptions { temperature: 1.7, top_k: 200, top_p: 0.6, ..Default::default() },
        SampleOptions { temperature: 0.9, top_p: 0.9, ..Default::default() },
        SampleOptions { temperature: 1.2, min_p: 0.05, ..Default::default() },
        SampleOptions { temperature: 1.3, top_p: 0.95, min_p: 0.02, ..Default::default() },
        SampleOptions { temperature: 0.7, ..Default::default() },
        SampleOptions { temperature: 2.5, ..Default::default() },
    ];
    let (mut answered, mut from_selection, mut whole_row) = (0, 0, 0);
    for (b, row_opts) in opts.chunks(3).chain(opts.rchunks(3)).enumerate() {
        for (r, logits) in rows.iter().enumerate() {
            // One batch: the same logits in each row, each row its own options and seed.
            let make = |i: usize| Sampler::new(SampleOptions { seed: (b * 100 + r * 10 + i) as u64, ..row_opts[i].clone() }).unwrap();
            let (mut gpu_s, mut whole): (Vec<_>, Vec<_>) = (0..row_opts.len()).map(|i| (make(i), make(i))).unzip();
            let k = gpu_s.iter().map(Sampler::candidates_needed).max().unwrap().min(vocab);
            for step in 0..40 {
                let asks: Vec<SelectRow> = gpu_s.iter().map(|s| s.select_row(&[], 0, k, vocab)).collect();
                let batch: Vec<f32> = std::iter::repeat_n(logits.iter().copied(), asks.len()).flatten().collect();
                let mut t = g.tensor(&batch, asks.len(), vocab).unwrap();
                let choices = pollster::block_on(lorafuse::backend::ops::top_k(&g, &mut t, k, &asks)).unwrap();
                for (i, c) in choices.into_iter().enumerate() {
                    let want = whole[i].pick_all(logits);
                    let got = match c {
                        Choice::Token(t) => {
                            gpu_s[i].drawn();
                            answered += 1;
                            t
                        }
                        Choice::Select(sel) => match gpu_s[i].pick(sel.cands, sel.mass) {
                            Some(t) => (from_selection += 1, t).1,
                            None => (whole_row += 1, gpu_s[i].pick_all(logits)).1,
                        },
                    };
                    assert_eq!(got, want, "batch {b}, logits {r}, row {i} ({:?}), step {step}", row_opts[i]);
                }
            }
        }
    }
    // Of the draws the sampler decides from the selection, the GPU answers all but those
    // within DRAW_MARGIN of a boundary (on flat rows a sizeable share of each interval, and
    // every draw of the 120-of-200 top-p cut on the equal logits); flat rows need the whole
    // row either way.
    assert_eq!(answered + from_selection + whole_row, 16 * 6 * 40, "rows of the six batches, six logit sets, 40 steps");
    assert!(from_selection * 10 < answered && whole_row > 0, "{answered} answered, {from_selection} from the selection, {whole_row} from the row");
    eprintln!("picks: {answered} answered on the GPU, {from_selection} from the selection, {whole_row} from the whole row");
}

/// pick.wgsl leaves to the sampler every pick that f32 could get wrong: a draw within
/// DRAW_MARGIN of two candidates' boundary, a top-p level at a running sum, a min-p floor at
/// a probability, computed here in f64 from the candidates; and any non-finite logit. Just
/// outside the margin it answers, with the token on the right side.
#[test]
fn picks_near_a_boundary_are_left_to_the_sampler() {
    use lorafuse::backend::select::{top_k, Draw, DRAW_MARGIN};
    use lorafuse::Backend;
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    let mut rng = common::Rng::new(14);
    let (vocab, k, temperature) = (1013, 40, 0.9f32);
    let logits: Vec<f32> = rng.vec(vocab, 3.0);
    let cands = top_k(&logits, k);
    let w: Vec<f64> = cands.iter().map(|c| ((c.1 as f64 - cands[0].1 as f64) / temperature as f64).exp()).collect();
    let sum: f64 = w.iter().sum();
    let p: Vec<f64> = w.iter().map(|v| v / sum).collect();
    let below = |j: usize| p[..j].iter().sum::<f64>();
    // Each draw in its own row of one batch.
    let run = |draws: &[Draw]| -> Vec<Option<u32>> {
        let batch: Vec<f32> = std::iter::repeat_n(logits.iter().copied(), draws.len()).flatten().collect();
        let asks: Vec<SelectRow> = draws.iter().map(|&d| SelectRow { draw: Some(d), ..SelectRow::plain() }).collect();
        let choices = pollster::block_on(lorafuse::backend::ops::top_k(&g, &mut g.tensor(&batch, draws.len(), vocab).unwrap(), k, &asks)).unwrap();
        choices.into_iter().map(|c| if let Choice::Token(t) = c { Some(t) } else { None }).collect()
    };
    let draw = |uniform: f64, top_p: f32, min_p: f32| Draw { temperature, top_k: k, top_p, min_p, uniform };
    let m = DRAW_MARGIN as f64;
    let mut min_p_cases = 0;
    for j in [1, 2, 7, 20, 39] {
        let c = below(j);
        // Draws just either side of boundary j; then a margin and a half away.
        let near: Vec<Draw> = [c * (1.0 - 1e-6), c, c * (1.0 + 1e-6), c + 0.5 * m].map(|u| draw(u, 1.0, 0.0)).to_vec();
        assert_eq!(run(&near), vec![None; 4], "draws at boundary {j}");
        let far = run(&[draw(c - 1.5 * m, 1.0, 0.0), draw(c + 1.5 * m, 1.0, 0.0)]);
        assert_eq!(far, vec![Some(cands[j - 1].0), Some(cands[j].0)], "draws 1.5 margins from boundary {j}");
        // top-p at the running sum through candidate j - 1: undecided; a little above it
        // keeps j + 1 candidates, and a draw at the top lands in the last kept.
        let at = (c as f32).min(0.999_999);
        let tops = run(&[draw(0.5, at, 0.0), draw(0.999, (c + p[j] * 0.5) as f32, 0.0)]);
        assert_eq!(tops, vec![None, Some(cands[j].0)], "top-p at boundary {j}");
        // min-p at candidate j's probability relative to the best: undecided; a little
        // below it keeps candidates 0..=j.
        let ratio = p[j] / p[0];
        if j + 1 < k && p[j + 1] < ratio * 0.99 * p[0] {
            let mins = run(&[draw(0.5, 1.0, ratio as f32), draw(0.999, 1.0, (ratio * 0.99) as f32)]);
            assert_eq!(mins, vec![None, Some(cands[j].0)], "min-p at candidate {j}");
            min_p_cases += 1;
        }
    }
    assert!(min_p_cases >= 3, "{min_p_cases} min-p cases");
    // Non-finite logits among the candidates: left to the sampler (WGSL's float math may
    // not keep infinities and NaNs).
    for bad in [f32::INFINITY, f32::NAN] {
        let mut row = logits.clone();
        row[cands[3].0 as usize] = bad;
        let asks = [SelectRow { draw: Some(draw(0.5, 1.0, 0.0)), ..SelectRow::plain() }];
        let c = pollster::block_on(lorafuse::backend::ops::top_k(&g, &mut g.tensor(&row, 1, vocab).unwrap(), k, &asks)).unwrap();
        assert!(matches!(c[0], Choice::Select(_)), "{bad} among the candidates: {c:?}");
    }
}

/// Generation steps on the GPU (selection and pick on the GPU, one token read back) give the CPU
/// path's tokens, greedy and sampled (seeded top-k, top-p, temperature, repetition penalty).
#[test]
fn generation_on_the_gpu_matches_the_cpu() {
    use lorafuse::generate::{logprobs::TokenLogprob, GenerateOptions, Generator, Sequence};
    use lorafuse::generate::sample::{SampleOptions, P_CANDIDATES};
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    let base = files(&dir().join("llama-hf"));
    let (mg, mc) = (load(&g, &base).unwrap(), load(&CpuBackend::default(), &base).unwrap());
    fn run_with<B: ModelOps>(m: &Model<B>, sample: &SampleOptions, logprobs: Option<usize>) -> (Vec<u32>, Vec<TokenLogprob>) {
        let opts = GenerateOptions { max_tokens: 12, sample: sample.clone(), ignore_eos: true, logprobs, ..Default::default() };
        let mut gen = Generator { seqs: vec![Sequence::new(&m.llama, prompt(), opts, vec![]).unwrap()] };
        while !gen.seqs[0].done {
            pollster::block_on(gen.step(&m.llama, &m.tokenizer)).unwrap();
        }
        (gen.seqs[0].tokens().to_vec(), std::mem::take(&mut gen.seqs[0].logprobs))
    }
    fn run<B: ModelOps>(m: &Model<B>, s: &SampleOptions) -> Vec<u32> {
        run_with(m, s, None).0
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
    let penalties = SampleOptions { temperature: 0.7, frequency_penalty: 1.5, presence_penalty: 0.6, seed: 4, ..SampleOptions::default() };
    for s in [&greedy, &sampled, &top_p, &min_p, &flat, &temp, &penalties] {
        let (a, b) = (run_with(&mg, s, None).0, run_with(&mc, s, None).0);
        assert_eq!(a.len(), 12);
        assert_eq!(a, b, "{s:?}");
    }
    // Log-probabilities: the GPU's (its selection and f32 row sum) equal the CPU's (f64)
    // within 1e-4, and recording them changes no token.
    for (s, n) in [(&greedy, 0), (&sampled, 5), (&temp, 20)] {
        let ((tg, lg), (tc, lc)) = (run_with(&mg, s, Some(n)), run_with(&mc, s, Some(n)));
        assert_eq!((&tg, &tc), (&run(&mc, s), &run(&mc, s)), "{s:?}");
        assert_eq!(lg.len(), 12);
        for (a, b) in lg.iter().zip(&lc) {
            assert_eq!((a.token, a.top.len()), (b.token, n));
            assert!(a.top.iter().map(|t| t.0).eq(b.top.iter().map(|t| t.0)), "{s:?}: alternatives");
            for (x, y) in std::iter::once(&(a.token, a.logprob)).chain(&a.top).zip(std::iter::once(&(b.token, b.logprob)).chain(&b.top)) {
                assert!((x.1 - y.1).abs() <= 1e-4, "{s:?}: token {} logprob {} vs {}", x.0, x.1, y.1);
            }
        }
    }
    assert_eq!(g.pipelines_compiled(), compiled, "pipelines compiled after load");
    // Bytes read back per step: one token (u32), not the vocabulary nor the candidates.
    let before = g.context().stats.get();
    run(&mg, &SampleOptions::default());
    let after = g.context().stats.get();
    assert_eq!(after.read_bytes - before.read_bytes, 12 * 4, "one token per greedy step");
    // Top-p/min-p: the token where the GPU's pick decides; P_CANDIDATES pairs and the mass
    // where only the sampler's can; the whole row (4·vocab) where neither can: the GPU decides
    // min-p here (48 bytes on lavapipe), the flat case never.
    let (cand, full) = (8 * (P_CANDIDATES as u64 + 1), 4 * mg.info.vocab_size as u64);
    let read = |s: &SampleOptions| {
        let before = g.context().stats.get().read_bytes;
        run(&mg, s);
        g.context().stats.get().read_bytes - before
    };
    let (mp, fl) = (read(&min_p), read(&flat));
    assert!(mp <= 12 * 4 + cand + full, "min_p: {mp} bytes (the GPU picks all steps but one at most)");
    assert_eq!(fl, 12 * (4 + cand + full), "flat: every step reads the row");
}


/// The dispatch budget of a decode step (issue: ≤ 8 per layer): per layer one fused linear
/// for q/k/v, attention with RoPE and the cache append, o, gate/up and down (5), plus the
/// embedding and the lm_head; an adapter adds one shrink per group of weights sharing an
/// input (4 per layer, and one for an lm_head it targets), whatever the number stacked.
#[test]
fn a_decode_step_stays_within_its_dispatch_budget() {
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    let mut m = load(&g, &files(&dir().join("llama-hf"))).unwrap();
    let layers = m.info.layers;
    for n in ["all-linear-r8", "qv-r4"] {
        let f = files(&dir().join("adapters").join(n));
        m.add_adapter(n, peft_from_files(&f, &m.llama.cfg).unwrap(), false).unwrap();
    }
    let both = AdapterChoice::Stack(vec![("all-linear-r8".into(), 0.5), ("qv-r4".into(), 1.0)]);
    for (choice, per_layer) in [(AdapterChoice::Base, 5), (both, 9)] {
        let mix = m.adapters.mix(&choice).unwrap();
        let mut s = m.llama.session();
        forward(&m, &mut s, &prompt(), Logits::Last, &mix);
        let before = g.context().stats.get().dispatches;
        let t = m.llama.forward(&mut s, &[3], Logits::Last, &mix).unwrap();
        let dispatched = g.context().stats.get().dispatches - before;
        drop(t);
        assert_eq!(dispatched, (per_layer * layers + 2) as u64, "{choice:?}: dispatches of one decode step over {layers} layers");
    }
}

/// Prefix reuse (issue 19): a prompt that extends an earlier generation's history runs only
/// its new tokens on the cached KV and gets the logits and tokens of a full prefill, on the
/// CPU and the GPU. Caches are found only under the adapter stack that computed them;
/// unloading an adapter drops its caches, and the budget bounds what is kept.
#[test]
fn prompt_prefixes_are_reused_with_the_logits_of_a_full_prefill() {
    use lorafuse::generate::{GenerateOptions, Generator, Sequence};
    /// Six greedy tokens and the prompt tokens served from the model's prefix cache; with
    /// `reuse`, the sequence starts from and then leaves its KV to that cache.
    fn generate<B: ModelOps>(m: &Model<B>, prompt: &[u32], stack: &[(usize, f32)], reuse: bool) -> (Vec<u32>, usize) {
        let opts = GenerateOptions { max_tokens: 6, ignore_eos: true, ..Default::default() };
        let (p, s) = (prompt.to_vec(), stack.to_vec());
        let seq = match reuse {
            true => Sequence::resume(&m.llama, p, opts, s, &mut m.prefixes.borrow_mut()),
            false => Sequence::new(&m.llama, p, opts, s),
        };
        let mut gen = Generator { seqs: vec![seq.unwrap()] };
        while !gen.seqs[0].done {
            pollster::block_on(gen.step(&m.llama, &m.tokenizer)).unwrap();
        }
        if reuse {
            gen.retire_finished(&m.llama, &mut m.prefixes.borrow_mut());
        }
        (gen.seqs[0].tokens().to_vec(), gen.seqs[0].cached_tokens())
    }
    fn check<B: ModelOps>(mut m: Model<B>, label: &str) {
        let p1 = prompt();
        let f = files(&dir().join("adapters").join("qv-r4"));
        m.add_adapter("qv", peft_from_files(&f, &m.llama.cfg).unwrap(), false).unwrap();
        let qv = m.adapters.stack(&AdapterChoice::Stack(vec![("qv".into(), 1.0)])).unwrap();
        for stack in [vec![], qv.clone()] {
            m.prefixes.borrow_mut().clear();
            let (t1, cached) = generate(&m, &p1, &stack, true);
            assert_eq!(cached, 0, "{label}: nothing cached yet");
            // Turn 2: the history so far (its last token was sampled, not run) and new tokens.
            let p2: Vec<u32> = p1.iter().chain(&t1).chain(&[5, 17, 3]).copied().collect();
            let fresh = generate(&m, &p2, &stack, false);
            let reused = generate(&m, &p2, &stack, true);
            assert_eq!(reused.1, p1.len() + t1.len() - 1, "{label}: the first turn's positions are reused");
            assert_eq!(reused.0, fresh.0, "{label}: the same tokens as a full prefill");
            // The logits of the new rows on the cached KV are those of a full prefill.
            let mix = if stack.is_empty() { Mix::Base } else { Mix::All(stack.clone()) };
            let p3: Vec<u32> = p2.iter().chain(&reused.0).chain(&[9, 2]).copied().collect();
            let (mut s, n) = m.prefixes.borrow_mut().take(m.llama.backend(), &stack, &p3).unwrap();
            assert_eq!(n, p2.len() + reused.0.len() - 1, "{label}");
            let vocab = m.info.vocab_size;
            let read = |t| pollster::block_on(m.llama.backend().read(&t)).unwrap();
            let got = read(m.llama.forward(&mut s, &p3[n..], Logits::All, &mix).unwrap());
            let want = read(m.llama.forward(&mut m.llama.session(), &p3, Logits::All, &mix).unwrap());
            let e = max_rel(&got, &want[n * vocab..], vocab);
            assert!(e <= 1e-5, "{label}: relative L2 {e:.2e} against a full prefill");
        }
        // Under another stack (the base, after qv's run) nothing of qv's is reused.
        let p2: Vec<u32> = p1.iter().chain(&[1, 2]).copied().collect();
        m.prefixes.borrow_mut().clear();
        generate(&m, &p1, &qv, true);
        assert_eq!(generate(&m, &p2, &[], true).1, 0, "{label}: another stack");
        let stats = m.prefixes.borrow().stats();
        assert_eq!(stats.entries, 2, "{label}: {stats:?}");
        assert!(stats.bytes > 0 && stats.bytes <= stats.budget, "{label}: {stats:?}");
        // Unloading qv drops its cache; a budget of 0 drops the rest.
        m.remove_adapter("qv").unwrap();
        assert_eq!(m.prefixes.borrow().stats().entries, 1, "{label}");
        m.prefixes.borrow_mut().set_budget(0);
        assert_eq!(m.prefixes.borrow().stats().bytes, 0, "{label}");
        assert_eq!(generate(&m, &p2, &[], true).1, 0, "{label}: nothing kept");
    }
    let base = files(&dir().join("llama-hf"));
    check(load(&CpuBackend::default(), &base).unwrap(), "CPU");
    let Some(g) = common::gpu(GpuOptions::default()) else { return };
    check(load(&g, &base).unwrap(), "GPU");
}
