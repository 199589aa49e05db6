//! Structured output on SmolLM2 (CPU): sampled answers under JSON schemas parse (serde_json)
//! and keep the rules this test checks by hand; the mask's cost per token is printed beside
//! the decode step's. Independent schema validation (ajv) runs in tests/js/structured.test.mjs.
#![cfg(not(target_arch = "wasm32"))]

use lorafuse::formats::files::Loader;
use lorafuse::generate::sample::SampleOptions;
use lorafuse::generate::{GenerateOptions, Generator, Sequence};
use lorafuse::model::Model;
use lorafuse::tokenizer::chat::Message;
use lorafuse::CpuBackend;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn model() -> Option<Model<CpuBackend>> {
    let dir = std::env::var("LORAFUSE_MODEL_DIR").map(PathBuf::from).unwrap_or(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/models"));
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if std::env::var("LORAFUSE_REQUIRE_MODEL").as_deref() == Ok("1") => panic!("{FILE}: {e}"),
        Err(e) => {
            eprintln!("skipping: {FILE}: {e} (run scripts/fetch-model.sh)");
            return None;
        }
    };
    let mut l = Loader::new();
    l.begin(FILE).unwrap();
    l.push(&bytes).unwrap();
    Some(l.finish().and_then(|f| Model::load(&CpuBackend::default(), f)).unwrap())
}

#[test]
fn smollm2_answers_fit_their_schemas() {
    let Some(m) = model() else { return };
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "city": {"enum": ["Paris", "Berlin", "Tokyo"]},
            "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3}
        },
        "required": ["name", "age", "city", "hobbies"]
    });
    let prompt = m.template.render(&[Message { role: "user".into(), content: "Describe a person as JSON with name, age, city and hobbies.".into() }], true).unwrap();
    let ids = m.encode_prompt(&prompt);
    let stops: Vec<u32> = m.stop_tokens.iter().copied().chain(m.tokenizer.eos).collect();
    let (mut steps, mut runs) = (0usize, Vec::new());
    let t0 = Instant::now();
    for (schema, seeds) in [(Some(&schema), 0..3u64), (None, 3..4)] {
        let format = m.json_format(schema).unwrap();
        let opts = |seed| GenerateOptions {
            max_tokens: 64,
            sample: SampleOptions { temperature: 0.8, seed, ..Default::default() },
            stop_tokens: stops.clone(),
            format: Some(format.clone()),
            ..Default::default()
        };
        let mut g = Generator { seqs: seeds.clone().map(|s| Sequence::new(&m.llama, ids.clone(), opts(s), vec![]).unwrap()).collect() };
        let mut texts = vec![String::new(); g.seqs.len()];
        while g.seqs.iter().any(|s| !s.done) {
            let out = pollster::block_on(g.step(&m.llama, &m.tokenizer)).unwrap();
            for (t, o) in texts.iter_mut().zip(out) {
                t.push_str(&o.unwrap_or_default());
            }
            steps += 1;
        }
        runs.extend(g.seqs.iter().map(|s| (schema, s.tokens().to_vec())));
        for (s, text) in g.seqs.iter().zip(&texts) {
            eprintln!("{:?} {text}", s.finish_reason);
            assert_eq!(s.finish_reason, Some("stop"), "{text}");
            let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert!(v.is_object(), "{text}");
            if schema.is_some() {
                assert!(v["name"].as_str().unwrap().chars().count() <= 30);
                assert!((0..=120).contains(&v["age"].as_i64().unwrap()));
                assert!(["Paris", "Berlin", "Tokyo"].contains(&v["city"].as_str().unwrap()));
                assert!(v["hobbies"].as_array().unwrap().len() <= 3);
                assert_eq!(v.as_object().unwrap().len(), 4);
            }
        }
    }
    let total = t0.elapsed().as_secs_f64();
    // The masks' cost: the same token streams replayed through fresh formats (nothing
    // remembered: each state's mask computed once, as in a first request) and again.
    let (mut cold, mut warm, mut tokens) = (0f64, 0f64, 0usize);
    for pass in 0..2 {
        let mut formats = lorafuse::generate::json::JsonFormats::default();
        for (schema, toks) in &runs {
            let format = formats.get(&m.tokenizer, *schema).unwrap();
            for round in 0..2 {
                let mut st = lorafuse::generate::json::JsonState::new(format.clone());
                let t = Instant::now();
                for &id in toks {
                    let bits = st.mask(&stops, None);
                    assert!(lorafuse::backend::select::has(&bits, id as usize));
                    if !stops.contains(&id) {
                        st.advance(&m.tokenizer.token_bytes(id)).unwrap();
                    }
                }
                let dt = t.elapsed().as_secs_f64();
                if pass == 1 {
                    *[&mut cold, &mut warm][round] += dt;
                    tokens += (round == 0) as usize * toks.len();
                }
            }
        }
    }
    eprintln!(
        "{steps} batched steps in {total:.2} s ({:.1} ms/step); masks per token: {:.3} ms first time, {:.3} ms remembered",
        1e3 * total / steps as f64,
        1e3 * cold / tokens as f64,
        1e3 * warm / tokens as f64
    );
}
