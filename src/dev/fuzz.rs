//! Fuzz targets: one function per parser, called by the cargo-fuzz harness (`fuzz/`) and by
//! `tests/fuzz_replay.rs`, which replays the kept corpora and crash inputs natively and on
//! wasm32. Each must return for any input (an `Err` is fine): a panic, an abort, a hang or
//! an allocation past the fuzzer's limit is a finding. Properties beyond that are asserted.
//! Each returns whether the input was accepted (the replay checks the seeds reach that far).

use crate::formats::config::Config;
use crate::formats::files::Loader;
use crate::formats::gguf::GgufStream;
use crate::formats::safetensors::SafetensorsStream;
use crate::model::llama::Logits;
use crate::model::Model;
use crate::tokenizer::chat::{ChatTemplate, Message};
use crate::tokenizer::Tokenizer;
use crate::CpuBackend;

/// The fuzz targets by name (the corpus directories' names).
pub const TARGETS: [(&str, fn(&[u8]) -> bool); 7] = [
    ("gguf", gguf),
    ("safetensors", safetensors),
    ("model", model),
    ("tokenizer", tokenizer),
    ("chat_template", chat_template),
    ("peft", peft),
    ("gguf_lora", gguf_lora),
];

/// The first byte picks a chunk size; the rest is the file.
fn chunked(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&c, rest)) => (1 + (c as usize % 64) * 97, rest),
        None => (1, data),
    }
}

/// A GGUF read whole and in chunks: the same header and tensors, or an error both ways.
pub fn gguf(data: &[u8]) -> bool {
    let (chunk, file) = chunked(data);
    let read = |size: usize| {
        let mut s = GgufStream::new("fuzz.gguf");
        file.chunks(size.max(1)).try_for_each(|c| s.push(c)).and_then(|_| s.finish())
    };
    match (read(file.len()), read(chunk)) {
        (Ok((ha, ta)), Ok((hb, tb))) => {
            // Compared as printed: a NaN metadata value (fuzz/artifacts/gguf) equals itself.
            assert_eq!(format!("{:?}", ha.meta), format!("{:?}", hb.meta));
            assert_eq!(ha.data_start, hb.data_start);
            assert!(ta.iter().zip(&tb).all(|((na, (_, a)), (nb, (_, b)))| na == nb && a == b) && ta.len() == tb.len());
            true
        }
        (Err(_), Err(_)) => false,
        (a, b) => panic!("whole and chunked disagree: {:?} / {:?}", a.err(), b.err()),
    }
}

/// safetensors read whole and in chunks, with and without the file's length.
pub fn safetensors(data: &[u8]) -> bool {
    let (chunk, file) = chunked(data);
    let read = |size: usize, sized: bool| {
        let mut s = SafetensorsStream::sized("fuzz.safetensors", sized.then_some(file.len() as u64));
        file.chunks(size.max(1)).try_for_each(|c| s.push(c)).and_then(|_| s.finish())
    };
    let whole = read(file.len(), false).map(|t| t.into_iter().map(|(k, (_, b))| (k, b)).collect::<Vec<_>>());
    for (size, sized) in [(chunk, false), (chunk, true)] {
        let other = read(size, sized).map(|t| t.into_iter().map(|(k, (_, b))| (k, b)).collect::<Vec<_>>());
        match (&whole, &other) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("whole and chunked disagree: {:?} / {:?}", a.as_ref().err(), b.as_ref().err()),
        }
    }
    whole.is_ok()
}

/// A GGUF model loaded on the CPU and, where it is small, run on two tokens.
pub fn model(data: &[u8]) -> bool {
    let mut l = Loader::new();
    let built = l.begin_sized("fuzz.gguf", Some(data.len() as u64)).and_then(|_| l.push(data)).and_then(|_| l.finish()).and_then(|f| Model::load(&CpuBackend::default(), f));
    let Ok(m) = built else { return false };
    let c = &m.llama.cfg;
    if c.hidden * c.layers * c.vocab.min(4096) > 1 << 24 {
        return true; // legitimately large: loading it was the test
    }
    let ids = [0, (c.vocab as u32).saturating_sub(1)];
    if let Ok(t) = m.llama.forward(&mut m.llama.session(), &ids, Logits::All, &crate::Mix::Base) {
        assert_eq!(t.data.len(), ids.len() * c.vocab);
    }
    true
}

/// A tokenizer.json (up to the first NUL) and text (after it): the text encodes to ids in
/// the vocabulary, which decode.
pub fn tokenizer(data: &[u8]) -> bool {
    let at = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let Ok(json) = std::str::from_utf8(&data[..at]) else { return false };
    let Ok(t) = Tokenizer::from_hf(json, None, None, false) else { return false };
    let text = String::from_utf8_lossy(data.get(at + 1..).unwrap_or(&[]));
    for special in [false, true] {
        let ids = t.encode(&text, special);
        assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
        let _ = t.decode(&ids, special);
    }
    true
}

/// A chat template rendered on a fixed conversation (fuel and output caps keep it bounded).
pub fn chat_template(data: &[u8]) -> bool {
    let Ok(src) = std::str::from_utf8(data) else { return false };
    let Ok(t) = ChatTemplate::new(Some(src), "<s>", "</s>") else { return false };
    let msgs = [("system", "Be brief."), ("user", "Hi {{ x }} <|im_end|>"), ("assistant", "Hello.")];
    let msgs: Vec<Message> = msgs.iter().map(|(r, c)| Message { role: r.to_string(), content: c.to_string() }).collect();
    t.render(&msgs, true).is_ok()
}

/// The tiny fixture llama's config (hidden 64), so that the fixture adapters seed the
/// adapter targets with inputs that parse.
fn small_config() -> Config {
    Config::from_hf_json(include_str!("../../tests/fixtures/tiny/llama-hf/config.json"), "config.json").expect("a valid config")
}

/// A PEFT adapter: the input up to the first NUL is adapter_config.json, the rest the
/// safetensors file.
pub fn peft(data: &[u8]) -> bool {
    let at = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (config, weights) = (&data[..at], data.get(at + 1..).unwrap_or(&[]));
    let files = vec![("adapter_config.json".to_string(), config.to_vec()), ("adapter_model.safetensors".to_string(), weights.to_vec())];
    crate::model::adapters::peft_from_files(&files, &small_config()).is_ok()
}

/// A GGUF LoRA adapter for the small llama config.
pub fn gguf_lora(data: &[u8]) -> bool {
    crate::lora::gguf_lora::from_gguf("fuzz.gguf", data, &small_config()).is_ok()
}
