//! PEFT LoRA adapters on the tiny fixture models against PEFT's own (unmerged) logits
//! (tests/fixtures/tiny/adapters, made by make_fixtures.py peft_adapters): loading, every
//! config feature, hot-swapping, unloading, and bad adapters.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::max_rel;

use lorafuse::model::adapters::{peft_from_files, AdapterChoice};
use lorafuse::model::llama::Logits;
use lorafuse::formats::files::Loader;
use lorafuse::model::Model;
use lorafuse::{CpuBackend, ErrorKind, Mix};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

fn files_in(d: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

fn base(arch: &str) -> Model<CpuBackend> {
    let mut l = Loader::new();
    for (n, b) in files_in(&dir().join(format!("{arch}-hf"))) {
        l.begin(&n).unwrap();
        l.push(&b).unwrap();
    }
    l.finish().and_then(|f| Model::load(&CpuBackend, f)).unwrap()
}

fn prompt() -> Vec<u32> {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir().join("reference.json")).unwrap()).unwrap();
    r["prompt_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

fn logits(m: &Model<CpuBackend>, ids: &[u32], choice: &AdapterChoice) -> Vec<f32> {
    let mix = m.adapters.mix(choice).unwrap();
    let mut s = m.llama.session();
    m.llama.forward(&mut s, ids, Logits::All, &mix).unwrap().data
}

fn one(name: &str) -> AdapterChoice {
    AdapterChoice::Stack(vec![(name.into(), 1.0)])
}

fn expected(name: &str) -> Vec<f32> {
    std::fs::read(dir().join("adapters").join(name).join("expected_logits.f32"))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn every_peft_variant_matches_peft() {
    lorafuse::cpu::pool::start_native(2);
    lorafuse::cpu::pool::set_min_work(0);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("adapters/reference.json")).unwrap()).unwrap();
    let ids = prompt();
    let mut checked = 0;
    for (name, e) in r.as_object().unwrap() {
        let mut m = base(e["base"].as_str().unwrap());
        let a = peft_from_files(&files_in(&dir().join(e["dir"].as_str().unwrap())), &m.llama.cfg).unwrap();
        m.add_adapter(name, a, false).unwrap();
        let vocab = m.info.vocab_size;
        let got = logits(&m, &ids, &one(name));
        let err = max_rel(&got, &expected(name), vocab);
        assert!(err <= 1e-4, "{name}: rel err {err:.2e}");
        for (p, row) in got.chunks(vocab).enumerate() {
            let am = row.iter().enumerate().fold(0, |b, (i, &x)| if x > row[b] { i } else { b });
            assert_eq!(am as u64, e["argmax"][p].as_u64().unwrap(), "{name} argmax at {p}");
        }
        checked += 1;
    }
    assert_eq!(checked, 13);
}

#[test]
fn hot_swap_scale_stack_and_unload() {
    let ids = prompt();
    let mut m = base("llama");
    let vocab = m.info.vocab_size;
    let base_logits = logits(&m, &ids, &AdapterChoice::Base);
    for n in ["qv-r4", "all-linear-r8"] {
        let a = peft_from_files(&files_in(&dir().join("adapters").join(n)), &m.llama.cfg).unwrap();
        m.add_adapter(n, a, false).unwrap();
    }
    // a → b → base → a: each time exactly the single-adapter result.
    let a1 = logits(&m, &ids, &one("qv-r4"));
    let b1 = logits(&m, &ids, &one("all-linear-r8"));
    assert_eq!(logits(&m, &ids, &AdapterChoice::Base), base_logits);
    assert_eq!(logits(&m, &ids, &one("qv-r4")), a1);
    assert!(max_rel(&a1, &expected("qv-r4"), vocab) <= 1e-4);
    assert!(max_rel(&b1, &expected("all-linear-r8"), vocab) <= 1e-4);
    // Scale 0 is the base; stacking with weights equals weighting each adapter's delta
    // (the model is not linear in the adapters, so compare against the weights' effect on a
    // single layer via scale: a stack of one at weight w equals scale w).
    m.set_adapter_scale("qv-r4", 0.0).unwrap();
    assert_eq!(logits(&m, &ids, &one("qv-r4")), base_logits);
    m.set_adapter_scale("qv-r4", 0.5).unwrap();
    let half = logits(&m, &ids, &one("qv-r4"));
    m.set_adapter_scale("qv-r4", 1.0).unwrap();
    let half_by_weight = logits(&m, &ids, &AdapterChoice::Stack(vec![("qv-r4".into(), 0.5)]));
    assert_eq!(half, half_by_weight);
    assert!(max_rel(&half, &a1, vocab) > 1e-3 && max_rel(&half, &base_logits, vocab) > 1e-3);
    // Unloading frees the slots; the other adapter still works; the name is gone.
    m.remove_adapter("qv-r4").unwrap();
    assert_eq!(logits(&m, &ids, &one("all-linear-r8")), b1);
    assert_eq!(m.adapters.mix(&one("qv-r4")).unwrap_err().kind, ErrorKind::Adapter);
    let _ = Mix::Base;
}

#[test]
fn bad_adapters_are_refused_and_change_nothing() {
    let ids = prompt();
    let mut m = base("llama");
    let good = peft_from_files(&files_in(&dir().join("adapters/qv-r4")), &m.llama.cfg).unwrap();
    m.add_adapter("good", good, false).unwrap();
    let before = logits(&m, &ids, &one("good"));
    let files = files_in(&dir().join("adapters/qv-r4"));
    let with_config = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = files.clone();
        let (_, cfg) = v.iter_mut().find(|(n, _)| n == "adapter_config.json").unwrap();
        let mut j: serde_json::Value = serde_json::from_slice(cfg).unwrap();
        f(&mut j);
        *cfg = j.to_string().into_bytes();
        v
    };
    let cfg = m.llama.cfg.clone();
    let err = |files: Vec<(String, Vec<u8>)>| peft_from_files(&files, &cfg).err().expect("must fail");
    // An adapter made for another model (llama's v_proj is [32, 64], mistral's [16, 64]):
    // the first mismatching tensor and both shapes.
    let mistral = base("mistral");
    let e = peft_from_files(&files, &mistral.llama.cfg).err().expect("must fail");
    assert_eq!(e.kind, ErrorKind::Shape);
    assert!(
        e.message.contains("layers.0.self_attn.v_proj.lora_B.weight [32, 4]") && e.message.contains("needs [r, 64] and [16, r]"),
        "{e}"
    );
    // A failure half-way through adding (a damaged factor in a late module) rolls back.
    let mut broken = peft_from_files(&files_in(&dir().join("adapters/all-linear-r8")), &cfg).unwrap();
    let last = broken.modules.len() - 1;
    broken.modules[last].a[3] = f32::NAN;
    let e = m.add_adapter("broken", broken, false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("broken") && e.message.contains("mlp.down_proj"), "{e}");
    // Config fields that change the math and are not supported: refused by name.
    let e = err(with_config(&|j| j["modules_to_save"] = serde_json::json!(["lm_head"])));
    assert!(e.kind == ErrorKind::Unsupported && e.message.contains("modules_to_save"), "{e}");
    let e = err(with_config(&|j| j["layer_replication"] = serde_json::json!([[0, 1]])));
    assert!(e.message.contains("layer_replication"), "{e}");
    let e = err(with_config(&|j| j["fan_in_fan_out"] = serde_json::json!(true)));
    assert!(e.message.contains("fan_in_fan_out"), "{e}");
    let e = err(with_config(&|j| j["bias"] = serde_json::json!("all")));
    assert!(e.message.contains("bias"), "{e}");
    // The config targets more than the file holds; or the rank disagrees.
    let e = err(with_config(&|j| j["target_modules"] = serde_json::json!(["q_proj", "v_proj", "o_proj"])));
    assert!(e.message.contains("o_proj is targeted but its lora_A/lora_B are missing"), "{e}");
    let e = err(with_config(&|j| j["r"] = serde_json::json!(8)));
    assert!(e.message.contains("rank 4, but the config says 8"), "{e}");
    // Truncated weights; NaN in a factor.
    let mut cut = files.clone();
    cut.iter_mut().find(|(n, _)| n == "adapter_model.safetensors").unwrap().1.truncate(300);
    assert_eq!(err(cut).kind, ErrorKind::Format);
    let mut nan = files.clone();
    let st = &mut nan.iter_mut().find(|(n, _)| n == "adapter_model.safetensors").unwrap().1;
    let end = st.len();
    st[end - 4..].copy_from_slice(&f32::NAN.to_le_bytes()); // the last element of the last tensor
    let e = err(nan);
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains(".weight: element") && e.message.contains("NaN"), "{e}");
    // Name collisions need replace.
    let again = peft_from_files(&files, &cfg).unwrap();
    assert_eq!(m.add_adapter("good", again, false).unwrap_err().kind, ErrorKind::Adapter);
    // Nothing changed.
    assert_eq!(logits(&m, &ids, &one("good")), before);
    assert_eq!(m.adapters.list().len(), 1);
}

/// GGUF LoRA files made by llama.cpp's converter from the same PEFT adapters give PEFT's
/// logits (q/k lora_b rows un-permuted like the base's).
#[test]
fn gguf_lora_adapters_match_peft() {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir().join("adapters/gguf.json")).unwrap()).unwrap();
    let ids = prompt();
    assert_eq!(r.as_object().unwrap().len(), 5, "llama ×2, qwen2, qwen3, phi3 (fused projections)");
    for (name, e) in r.as_object().unwrap() {
        let mut m = base(e["base"].as_str().unwrap());
        let path = dir().join(e["file"].as_str().unwrap());
        let files = vec![(format!("{name}.gguf"), std::fs::read(&path).unwrap())];
        let a = peft_from_files(&files, &m.llama.cfg).unwrap();
        m.add_adapter(name, a, false).unwrap();
        let got = logits(&m, &ids, &one(name));
        let err = max_rel(&got, &expected(name), m.info.vocab_size);
        assert!(err <= 1e-4, "{name}.gguf: rel err {err:.2e}");
    }
    // A base model file offered as an adapter is refused.
    let m = base("llama");
    let model_file = std::fs::read(dir().join("llama-f32.gguf")).unwrap();
    let e = peft_from_files(&[("llama-f32.gguf".into(), model_file)], &m.llama.cfg).err().unwrap();
    assert!(e.message.contains("not a GGUF LoRA adapter"), "{e}");
    // An adapter for another architecture is refused.
    let qwen_lora = std::fs::read(dir().join("adapters/regex.gguf")).unwrap();
    let e = peft_from_files(&[("regex.gguf".into(), qwen_lora)], &m.llama.cfg).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Adapter);
}

/// Three sequences of different lengths in one batched pass, each with its own adapter (or
/// none): the same logits as running each alone, at prefill and at a batched decode step.
#[test]
fn batched_sequences_with_per_row_adapters_match_single_runs() {
    lorafuse::cpu::pool::start_native(2);
    lorafuse::cpu::pool::set_min_work(0);
    let mut m = base("llama");
    for n in ["qv-r4", "all-linear-r8"] {
        let a = peft_from_files(&files_in(&dir().join("adapters").join(n)), &m.llama.cfg).unwrap();
        m.add_adapter(n, a, false).unwrap();
    }
    let ids = prompt();
    let prompts: [&[u32]; 3] = [&ids, &ids[..7], &ids[3..]];
    let choices = [one("qv-r4"), AdapterChoice::Base, one("all-linear-r8")];
    let vocab = m.info.vocab_size;
    // Alone.
    let mut alone = Vec::new();
    for (p, ch) in prompts.iter().zip(&choices) {
        let mix = m.adapters.mix(ch).unwrap();
        let mut s = m.llama.session();
        let first = m.llama.forward(&mut s, p, Logits::Last, &mix).unwrap().data;
        let next = m.llama.forward(&mut s, &[5], Logits::Last, &mix).unwrap().data;
        alone.push((first, next));
    }
    // Together: per-row adapter stacks, rows of each sequence share its stack.
    let per_row = |lens: &[usize]| {
        let mut rows = Vec::new();
        for (len, ch) in lens.iter().zip(&choices) {
            let stack = m.adapters.stack(ch).unwrap();
            rows.extend(std::iter::repeat(stack).take(*len));
        }
        Mix::PerRow(rows)
    };
    let mut sessions: Vec<_> = (0..3).map(|_| m.llama.session()).collect();
    let mix = per_row(&prompts.map(|p| p.len()));
    let first = {
        let mut seqs: Vec<_> = sessions.iter_mut().zip(prompts).map(|(s, p)| (s, p)).collect();
        m.llama.forward_batch(&mut seqs, Logits::Last, &mix).unwrap().data
    };
    let step: [&[u32]; 3] = [&[5], &[5], &[5]];
    let next = {
        let mut seqs: Vec<_> = sessions.iter_mut().zip(step).map(|(s, p)| (s, p)).collect();
        m.llama.forward_batch(&mut seqs, Logits::Last, &per_row(&[1, 1, 1])).unwrap().data
    };
    for (i, (f, n)) in alone.iter().enumerate() {
        assert!(max_rel(&first[i * vocab..(i + 1) * vocab], f, vocab) <= 1e-5, "sequence {i} prefill");
        assert!(max_rel(&next[i * vocab..(i + 1) * vocab], n, vocab) <= 1e-5, "sequence {i} decode");
    }
    // The rows really differ (different adapters, different prompts).
    assert!(max_rel(&first[..vocab], &first[vocab..2 * vocab], vocab) > 1e-2);
}

/// Stacking at run time ({adapters: [{name, weight}]}) equals PEFT's exact weighted
/// combination (add_weighted_adapter, "cat": Σ w·s·B·A) of the same adapters.
#[test]
fn weighted_stack_matches_peft_combination() {
    let mut m = base("llama");
    for n in ["qv-r4", "all-linear-r8"] {
        let a = peft_from_files(&files_in(&dir().join("adapters").join(n)), &m.llama.cfg).unwrap();
        m.add_adapter(n, a, false).unwrap();
    }
    let stack = AdapterChoice::Stack(vec![("qv-r4".into(), 0.7), ("all-linear-r8".into(), 0.4)]);
    let got = logits(&m, &prompt(), &stack);
    let want: Vec<f32> = std::fs::read(dir().join("adapters/stack-0.7-0.4.logits.f32"))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let err = max_rel(&got, &want, m.info.vocab_size);
    assert!(err <= 1e-4, "rel err {err:.2e}");
}
