//! SentencePiece BPE (Llama 2 / TinyLlama style) from GGUF against the sentencepiece
//! library (tests/fixtures/spm, made by tests/fixtures/make_fixtures.py spm).
#![cfg(not(target_arch = "wasm32"))]

use lorafuse::formats::gguf::parse_header;
use lorafuse::tokenizer::Tokenizer;
use std::path::PathBuf;

#[test]
fn sentencepiece_bpe_matches_the_reference() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spm");
    let bytes = std::fs::read(dir.join("spm-tokenizer.gguf")).unwrap();
    let header = parse_header(&bytes, "spm-tokenizer.gguf").unwrap().unwrap();
    let tok = Tokenizer::from_gguf(&header.meta).unwrap();
    assert!(tok.add_bos, "llama tokenizers add BOS by default");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let cases = r["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<u32> = c["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let got = tok.encode(text, true);
        assert_eq!(got, want, "ids for {text:?}");
        assert_eq!(tok.decode(&got, true), text, "round trip of {text:?}");
    }
}

/// Real models' chat templates (Qwen3, Qwen2.5, Gemma 2, Phi-3.5, Llama 3.2) render every
/// sample conversation exactly as transformers renders them (tests/fixtures/templates, made by
/// make_fixtures.py chat_templates), and refuse what transformers refuses.
#[test]
fn real_chat_templates_render_as_transformers_does() {
    use lorafuse::tokenizer::chat::{ChatTemplate, Message};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let cases = r.as_array().unwrap();
    assert_eq!(cases.len(), 20);
    for c in cases {
        let name = c["template"].as_str().unwrap();
        let source = std::fs::read_to_string(dir.join(name)).unwrap();
        let t = ChatTemplate::new(Some(&source), c["bos"].as_str().unwrap(), c["eos"].as_str().unwrap()).unwrap();
        let messages: Vec<Message> = serde_json::from_value(c["messages"].clone()).unwrap();
        let got = t.render(&messages, c["add_generation_prompt"].as_bool().unwrap());
        match c["text"].as_str() {
            Some(want) => assert_eq!(got.unwrap_or_else(|e| panic!("{name}: {e}")), want, "{name} {messages:?}"),
            None => assert!(got.is_err(), "{name} {messages:?}: transformers refuses ({})", c["error"]),
        }
    }
}
