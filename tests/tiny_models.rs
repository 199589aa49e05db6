//! Tiny random llama / qwen2 / mistral models in every weight format, from GGUF files and
//! Hugging Face folders, against PyTorch on the same (dequantized) weights
//! (tests/fixtures/tiny, made by tests/fixtures/make_fixtures.py tiny).
#![cfg(not(target_arch = "wasm32"))]

use lorafuse::model::llama::Logits;
use lorafuse::formats::files::Loader;
use lorafuse::model::Model;
use lorafuse::{CpuBackend, ErrorKind, Mix};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("reference.json")).unwrap()).unwrap()
}

/// Loads files through the streaming loader in uneven chunks.
fn load(paths: &[PathBuf], chunk: usize) -> lorafuse::Result<Model<CpuBackend>> {
    let mut l = Loader::new();
    for p in paths {
        l.begin(&p.file_name().unwrap().to_string_lossy())?;
        for c in std::fs::read(p).unwrap().chunks(chunk) {
            l.push(c)?;
        }
    }
    l.finish().and_then(|f| Model::load(&CpuBackend, f))
}

fn hf_files(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |b, (i, &x)| if x > v[b] { i } else { b })
}

fn check(label: &str, model: &Model<CpuBackend>, r: &serde_json::Value, prompt: &[u32]) {
    let want: Vec<f32> = std::fs::read(dir().join(r["logits"].as_str().unwrap()))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let vocab = model.info.vocab_size;
    let mut s = model.llama.session();
    let got = model.llama.forward(&mut s, prompt, Logits::All, &Mix::Base).unwrap().data;
    assert_eq!(got.len(), want.len(), "{label}");
    for (p, (g, w)) in got.chunks(vocab).zip(want.chunks(vocab)).enumerate() {
        let num: f64 = g.iter().zip(w).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
        let den: f64 = w.iter().map(|b| (*b as f64).powi(2)).sum();
        let rel = (num / den).sqrt();
        assert!(rel <= 1e-4, "{label} position {p}: rel err {rel:.2e}");
        assert_eq!(argmax(g) as u64, r["argmax"][p].as_u64().unwrap(), "{label} argmax at {p}");
    }
    // Greedy continuation, token by token through the KV cache.
    let mut s = model.llama.session();
    let mut next = argmax(&model.llama.forward(&mut s, prompt, Logits::Last, &Mix::Base).unwrap().data) as u32;
    let mut out = vec![next];
    while out.len() < 8 {
        next = argmax(&model.llama.forward(&mut s, &[next], Logits::Last, &Mix::Base).unwrap().data) as u32;
        out.push(next);
    }
    let want: Vec<u32> = r["greedy_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    assert_eq!(out, want, "{label} greedy tokens");
}

#[test]
fn every_arch_and_format_matches_pytorch() {
    // On the worker pool, every op split however small (results do not depend on it).
    lorafuse::cpu::pool::start_native(2);
    lorafuse::cpu::pool::set_min_work(0);
    let r = reference();
    let prompt: Vec<u32> = r["prompt_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let mut checked = 0;
    for (arch, entry) in r["models"].as_object().unwrap() {
        for (variant, e) in entry.as_object().unwrap() {
            let label = format!("{arch}/{variant}");
            let model = if variant.starts_with("hf") {
                load(&hf_files(&dir().join(e["dir"].as_str().unwrap())), 4093).unwrap()
            } else {
                load(&[dir().join(e["file"].as_str().unwrap())], 1000 + checked * 77).unwrap()
            };
            assert_eq!(model.info.architecture, if arch == "mistral" && !variant.starts_with("hf") { "llama" } else { arch }, "{label}");
            // The tokenizer (GGUF metadata or tokenizer.json) agrees with Hugging Face's.
            assert_eq!(model.tokenizer.encode(r["prompt"].as_str().unwrap(), true), prompt, "{label} prompt ids");
            check(&label, &model, e, &prompt);
            checked += 1;
        }
    }
    assert_eq!(checked, 35, "3 architectures × (6 GGUF formats + HF), sharded HF, llama with rope_freqs; qwen3, phi3, gemma2, gemma3 × (2 GGUF formats + HF)");
}

#[test]
fn bad_files_give_typed_errors_naming_the_tensor() {
    let f32_file = std::fs::read(dir().join("llama-f32.gguf")).unwrap();
    let run = |bytes: &[u8]| {
        let mut l = Loader::new();
        l.begin("bad.gguf").and_then(|_| l.push(bytes)).and_then(|_| l.finish().and_then(|f| Model::load(&CpuBackend, f)).map(|_| ()))
    };
    let e = run(&f32_file[..f32_file.len() - 100]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format);
    assert!(e.message.contains("bad.gguf: truncated") && e.message.contains("tensor"), "{e}");
    // A tensor renamed away: the error names what is missing.
    let mut renamed = f32_file.clone();
    let at = renamed.windows(21).position(|w| w == b"blk.1.ffn_down.weight").unwrap();
    renamed[at..at + 5].copy_from_slice(b"blk.9");
    let e = run(&renamed).unwrap_err();
    assert!(e.message.contains("tensor blk.1.ffn_down.weight is missing"), "{e}");
    // A tensor in a quant type we do not read (IQ4_XS): the error names it and the type.
    let mut k_quant = f32_file.clone();
    let name = b"blk.0.attn_q.weight";
    let at = k_quant.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    // name, then n_dims (u32 = 2), two u64 dims, then the type id.
    assert_eq!(u32::from_le_bytes(k_quant[at..at + 4].try_into().unwrap()), 2);
    k_quant[at + 20..at + 24].copy_from_slice(&23u32.to_le_bytes());
    let e = run(&k_quant).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("tensor blk.0.attn_q.weight is IQ4_XS"), "{e}");
    // HF folder whose config disagrees with the weights: the first mismatching tensor and both shapes.
    let hf = dir().join("llama-hf");
    let mut l = Loader::new();
    for p in hf_files(&hf) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let mut bytes = std::fs::read(&p).unwrap();
        if name == "config.json" {
            bytes = String::from_utf8(bytes).unwrap().replace("\"intermediate_size\": 96", "\"intermediate_size\": 128").into_bytes();
        }
        l.begin(&name).unwrap();
        l.push(&bytes).unwrap();
    }
    let e = l.finish().and_then(|f| Model::load(&CpuBackend, f)).err().expect("must fail");
    assert_eq!(e.kind, ErrorKind::Shape);
    assert!(e.message.contains("tensor model.layers.0.mlp.gate_proj.weight has shape [96, 64], expected [128, 64]"), "{e}");
    // Unsupported architecture.
    let mut l = Loader::new();
    l.begin("config.json").unwrap();
    l.push(br#"{"architectures": ["GPTNeoXForCausalLM"], "hidden_size": 8}"#).unwrap();
    l.begin("model.safetensors").unwrap();
    l.push(&std::fs::read(hf.join("model.safetensors")).unwrap()).unwrap();
    let e = l.finish().and_then(|f| Model::load(&CpuBackend, f)).err().expect("must fail");
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("GPTNeoXForCausalLM"), "{e}");
}
