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
