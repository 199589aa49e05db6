//! npm run bench, part 3: SmolLM2-135M (GGUF Q4_1) natively, end to end: the CPU path and the
//! whole model on wgpu (lavapipe here: a CPU emulating a GPU, so its rates are correctness-only,
//! never GPU speed). Prefill and decode tok/s, and per decoded token the GPU submits and the
//! bytes read back. `cargo bench --bench model -- [cpu|gpu]`.

use lorafuse::model::llama::Logits;
use lorafuse::model::load::Loader;
use lorafuse::model::ops::ModelOps;
use lorafuse::model::Model;
use lorafuse::{Backend, CpuBackend, GpuBackend, GpuOptions, Mix};
use std::time::Instant;

const PROMPT: usize = 64;
const DECODE: usize = 16;

fn load<B: ModelOps>(b: &B, bytes: &[u8]) -> Model<B> {
    let mut l = Loader::new();
    l.begin("SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
    l.push(bytes).unwrap();
    l.finish(b).unwrap()
}

/// (prefill tok/s, decode tok/s): a PROMPT-token prefill, then DECODE greedy single-token
/// steps, the token picked as generation picks it (the backend's top-k selection, k = 1).
fn run<B: ModelOps>(m: &Model<B>) -> (f64, f64) {
    let ids: Vec<u32> = (0..PROMPT as u32).map(|i| 100 + i * 37 % 4000).collect();
    let b = m.llama.backend();
    let mut s = m.llama.session();
    let t0 = Instant::now();
    let t = m.llama.forward(&mut s, &ids, Logits::Last, &Mix::Base).unwrap();
    let pick = |t| pollster::block_on(b.top_k(t, 1, &[(1.0, vec![])])).unwrap()[0][0].0;
    let mut next = pick(t);
    let prefill = PROMPT as f64 / t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for _ in 0..DECODE {
        let t = m.llama.forward(&mut s, &[next], Logits::Last, &Mix::Base).unwrap();
        next = pick(t);
    }
    (prefill, DECODE as f64 / t1.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |what: &str| args.is_empty() || args.iter().any(|a| a == what);
    let dir = std::env::var("LORAFUSE_MODEL_DIR").unwrap_or(".cache/models".into());
    let bytes = std::fs::read(format!("{dir}/SmolLM2-135M-Instruct.Q4_1.gguf")).expect("run scripts/fetch-model.sh");
    println!("### SmolLM2-135M Q4_1, natively: prefill {PROMPT} tokens, then {DECODE} decode steps\n");
    println!("| backend | prefill tok/s | decode tok/s | submits / token | bytes read / token |");
    println!("|---|---|---|---|---|");
    if want("cpu") {
        let (p, d) = run(&load(&CpuBackend::default(), &bytes));
        println!("| {} | {p:.1} | {d:.1} | – | – |", CpuBackend::default().describe());
    }
    if want("gpu") {
        match pollster::block_on(GpuBackend::new(&GpuOptions::default())) {
            Ok(g) => {
                let m = load(&g, &bytes);
                run(&m); // pipelines compiled, pools filled
                let before = g.context().stats.get();
                let (p, d) = run(&m);
                let after = g.context().stats.get();
                // Per token over the whole run (prefill + decode steps), as generation sees it.
                let steps = (1 + DECODE) as f64;
                println!(
                    "| GPU: {} (correctness-only rate) | {p:.1} | {d:.1} | {:.0} | {:.0} |",
                    g.describe(),
                    (after.submits - before.submits) as f64 / steps,
                    (after.read_bytes - before.read_bytes) as f64 / steps
                );
            }
            Err(e) => println!("| GPU: none ({e}) | | | | |"),
        }
    }
}
