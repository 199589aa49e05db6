//! Crafted files whose sizes and counts come from their headers: every one is refused with a
//! typed error, natively and on wasm32 (where a u64 cast to usize used to wrap to a small,
//! plausible value, and a product of two dimensions to overflow), never a panic.

use lorafuse::formats::config::Config;
use lorafuse::formats::safetensors::SafetensorsStream;
use lorafuse::lora::peft::AdapterFile;
use lorafuse::ErrorKind;
use std::collections::BTreeMap;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// A small llama config.json with `patch` merged in.
fn config(patch: serde_json::Value) -> String {
    let mut c = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 2,
        "vocab_size": 256, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
    });
    for (k, v) in patch.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}

fn refused(patch: serde_json::Value, says: &str) {
    let e = Config::from_hf_json(&config(patch.clone()), "config.json").err().unwrap_or_else(|| panic!("{patch} was accepted"));
    assert_eq!(e.kind, ErrorKind::Format, "{patch}: {e}");
    assert!(e.message.contains(says), "{patch}: {e}");
}

#[test]
fn configs_with_absurd_sizes_are_refused() {
    assert!(Config::from_hf_json(&config(serde_json::json!({})), "config.json").is_ok());
    // 2^32 + 1 heads: a wasm32 cast made it 1.
    refused(serde_json::json!({"num_attention_heads": 4294967297u64, "num_key_value_heads": 1}), "implausible model dimensions");
    // Each dimension plausible, their product (the q width) past 32 bits.
    refused(serde_json::json!({"num_attention_heads": 65537, "num_key_value_heads": 65537, "head_dim": 65536}), "heads");
    refused(serde_json::json!({"num_hidden_layers": 1 << 24}), "layers");
    refused(serde_json::json!({"architectures": ["MistralForCausalLM"], "sliding_window": 0}), "sliding window of 0");
}

#[test]
fn a_safetensors_shape_past_64_bits_is_refused() {
    let header = br#"{"w": {"dtype": "F32", "shape": [2147483648, 2147483648, 2147483648], "data_offsets": [0, 8]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&[0; 8]);
    let mut s = SafetensorsStream::new("model.safetensors");
    let e = s.push(&file).and_then(|_| s.finish().map(|_| ())).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format);
    assert!(e.message.contains("needs more than 2^64 bytes"), "{e}");
}

#[test]
fn adapter_configs_with_absurd_numbers_are_refused() {
    let cfg = Config::from_hf_json(&config(serde_json::json!({})), "config.json").unwrap();
    let parse = |c: &str| AdapterFile::parse(c, BTreeMap::new(), &cfg).err().expect("refused");
    // r = 2^32 + 4 loaded as rank 4 on wasm32.
    let e = parse(r#"{"peft_type": "LORA", "r": 4294967300, "lora_alpha": 8, "target_modules": ["q_proj"]}"#);
    assert!(e.message.contains("r = 4294967300 is out of range"), "{e}");
    // Layer 2^40 applied to layer 0 on wasm32; layer 7 of a 2-layer model.
    for layers in ["[1099511627776]", "7"] {
        let e = parse(&format!(r#"{{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "layers_to_transform": {layers}}}"#));
        assert_eq!(e.kind, ErrorKind::Format, "{e}");
        assert!(e.message.contains("layers_to_transform names layer") && e.message.contains("the model has 2"), "{e}");
    }
    // Patterns compile within a size cap (32 such keys used to hold 689 MiB) and a count cap.
    let huge = r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "alpha_pattern": {"(?:q_proj|x{1000}){1000}": 4}}"#;
    let e = parse(huge);
    assert_eq!(e.kind, ErrorKind::Format, "{e}");
    assert!(e.message.contains("alpha_pattern key") && e.message.contains("size limit"), "{e}");
    let e = parse(r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": "(?:q_proj|x{1000}){1000}"}"#);
    assert!(e.message.contains("size limit"), "{e}");
    let many: serde_json::Map<String, serde_json::Value> = (0..2000).map(|i| (format!("layers.{i}.q_proj"), 8.into())).collect();
    let cfg_json = serde_json::json!({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "rank_pattern": many});
    let e = parse(&cfg_json.to_string());
    assert!(e.message.contains("rank_pattern has 2000 patterns (at most 1024)"), "{e}");
}

/// A tokenizer.json token id far past its entries is refused before it sizes the table
/// (id 4194303 used to allocate 4 M strings).
#[test]
fn tokenizer_ids_far_past_the_vocabulary_are_refused() {
    use lorafuse::tokenizer::Tokenizer;
    let tok = |id: u64| {
        let j = serde_json::json!({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": id}, "merges": ["a b"]}, "added_tokens": [], "pre_tokenizer": {"type": "ByteLevel"}});
        Tokenizer::from_hf(&j.to_string(), None, None, false)
    };
    assert_eq!(tok(2).unwrap().vocab_size(), 3);
    assert!(tok(1000).is_ok(), "a gap is allowed");
    let e = tok(4194303).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Format);
    assert!(e.message.contains("token id 4194303 (the file has 3 tokens)"), "{e}");
}

/// A GGUF of metadata arrays (key, element type, count, the elements' bytes) and no tensors.
fn gguf_arrays(arrays: &[(&str, u32, usize, Vec<u8>)]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes()); // tensors
    b.extend((arrays.len() as u64).to_le_bytes()); // metadata entries
    for (key, elem, n, bytes) in arrays {
        b.extend((key.len() as u64).to_le_bytes());
        b.extend(key.as_bytes());
        b.extend(9u32.to_le_bytes()); // array
        b.extend(elem.to_le_bytes());
        b.extend((*n as u64).to_le_bytes());
        b.extend(bytes);
    }
    b
}

/// GGUF strings: a u64 length, then the bytes.
fn gguf_strings<S: AsRef<[u8]>>(items: impl IntoIterator<Item = S>) -> Vec<u8> {
    let mut b = Vec::new();
    for s in items {
        b.extend((s.as_ref().len() as u64).to_le_bytes());
        b.extend(s.as_ref());
    }
    b
}

/// A GGUF of one metadata array of `n` strings (a large header) and no tensors.
fn big_header(n: usize) -> Vec<u8> {
    gguf_arrays(&[("tokenizer.ggml.tokens", 8, n, gguf_strings((0..n).map(|i| format!("token{i}"))))])
}

/// Issue 18 item 1: a metadata array is held as its bytes (a 16 MB array of u8 took 518 MB
/// as one value per element), and reads back as the values it holds, for every element type.
#[test]
fn metadata_arrays_are_held_as_their_bytes() {
    use lorafuse::formats::gguf::{parse_header, Meta};
    let n = 16 << 20;
    let big: Vec<u8> = (0..n).map(|i| (i as u32).wrapping_mul(2654435761).rotate_right(13) as u8).collect();
    let mixed = [
        ("i8", 1, 3, [-3i8, 0, 127].iter().map(|v| *v as u8).collect::<Vec<u8>>(), vec![Meta::I(-3), Meta::I(0), Meta::I(127)]),
        ("u16", 2, 2, [513u16, 65535].iter().flat_map(|v| v.to_le_bytes()).collect(), vec![Meta::U(513), Meta::U(65535)]),
        ("i32", 5, 2, [-70000i32, 5].iter().flat_map(|v| v.to_le_bytes()).collect(), vec![Meta::I(-70000), Meta::I(5)]),
        ("f32", 6, 2, [0.25f32, -1e30].iter().flat_map(|v| v.to_le_bytes()).collect(), vec![Meta::F(0.25), Meta::F(-1e30f32 as f64)]),
        ("bool", 7, 2, vec![1, 0], vec![Meta::Bool(true), Meta::Bool(false)]),
        ("str", 8, 3, gguf_strings(["", "naïve", "a b"]), vec![Meta::Str("".into()), Meta::Str("naïve".into()), Meta::Str("a b".into())]),
        ("u64", 10, 1, u64::MAX.to_le_bytes().to_vec(), vec![Meta::U(u64::MAX)]),
        ("f64", 12, 1, 1.5f64.to_le_bytes().to_vec(), vec![Meta::F(1.5)]),
    ];
    let mut arrays: Vec<_> = mixed.iter().map(|(k, t, n, b, _)| (*k, *t, *n, b.clone())).collect();
    arrays.push(("big", 0, n, big.clone()));
    let h = parse_header(&gguf_arrays(&arrays), "arrays.gguf").unwrap().unwrap();
    for (k, _, _, _, want) in &mixed {
        let got: Vec<Meta> = h.meta[*k].as_array().unwrap().iter().collect();
        assert_eq!(&got, want, "{k}");
    }
    let a = h.meta["big"].as_array().unwrap();
    assert_eq!(a.len(), n);
    assert!(a.held_bytes() <= n + 64, "{} bytes held for {n} u8", a.held_bytes());
    assert!(a.iter().zip(&big).all(|(m, b)| m == Meta::U(*b as u64)));
    // Arrays of arrays, unknown element types and strings that are not UTF-8 are refused.
    for (elem, bytes, says) in [(9, vec![0; 12], "arrays of arrays"), (13, vec![0; 8], "unknown metadata type 13"), (8, gguf_strings([b"ok".as_slice(), b"\xff\xfe"]), "not UTF-8")] {
        let e = parse_header(&gguf_arrays(&[("bad", elem, 2, bytes)]), "bad.gguf").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Format, "{e}");
        assert!(e.message.contains(says), "{e}");
    }
}

#[test]
fn a_gguf_header_in_small_chunks_is_parsed_a_few_times() {
    use lorafuse::formats::gguf::GgufStream;
    let file = big_header(100_000); // ~1.8 MB of header
    let mut s = GgufStream::new("big.gguf");
    for c in file.chunks(1024) {
        s.push(c).unwrap();
    }
    let parses = s.parses;
    let (h, tensors) = s.finish().unwrap();
    assert!(tensors.is_empty() && h.meta.contains_key("tokenizer.ggml.tokens"));
    // Once per doubling of what is held, not once per chunk (1,800 chunks).
    assert!(parses <= 16, "{parses} parses");
}

#[test]
fn headers_claiming_bytes_past_the_end_of_the_file_are_refused_at_once() {
    use lorafuse::formats::gguf::GgufStream;
    // A string length flipped to 50 MB: with the file's length known, refused at the first
    // chunk instead of buffering the whole file as header.
    let mut file = big_header(10);
    file[24..32].copy_from_slice(&(50u64 << 20).to_le_bytes()); // the key's length
    let mut s = GgufStream::sized("flipped.gguf", Some(file.len() as u64));
    let e = s.push(&file[..1024.min(file.len())]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format);
    assert!(e.message.contains("truncated: the header is incomplete: a field of 52428800 bytes runs past the file's end"), "{e}");
    // A 2.5 GiB tensor in an 88-byte safetensors: refused with the length known; without it,
    // nothing near 2.5 GiB is reserved before its bytes come.
    let header = br#"{"w": {"dtype": "F32", "shape": [671088640], "data_offsets": [0, 2684354560]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend_from_slice(&[0; 8]);
    let mut s = SafetensorsStream::sized("model.safetensors", Some(st.len() as u64));
    let e = s.push(&st).unwrap_err();
    assert!(e.message.contains(&format!("truncated at byte {}: tensor w needs bytes up to 2684354", st.len())), "{e}");
    let mut s = SafetensorsStream::new("model.safetensors");
    s.push(&st).unwrap();
    assert!(s.reserved() <= st.len() + (16 << 20), "{} bytes reserved", s.reserved());
    assert!(s.finish().unwrap_err().message.contains("truncated"));
}

/// A safetensors file: the JSON header, then `data` bytes.
fn safetensors(header: &str, data: usize) -> Vec<u8> {
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header.as_bytes());
    st.extend(std::iter::repeat_n(7u8, data));
    st
}

/// Tensors must tile a safetensors file's data from its first byte to its last (as the
/// format requires): a hole, an overlap or bytes after the last tensor are refused, with the
/// length known (at the header) or not (at the end).
#[test]
fn safetensors_with_holes_overlaps_or_trailing_bytes_are_refused() {
    let load = |file: &[u8], sized: bool| {
        let mut s = SafetensorsStream::sized("x.safetensors", sized.then_some(file.len() as u64));
        s.push(file).and_then(|_| s.finish()).map(|t| t.len())
    };
    let good = r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "e": {"dtype": "F16", "shape": [0], "data_offsets": [8, 8]}, "b": {"dtype": "F16", "shape": [2], "data_offsets": [8, 12]}}"#;
    for sized in [false, true] {
        assert_eq!(load(&safetensors(good, 12), sized).unwrap(), 3);
        let cases = [
            (r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#, 12, "tensor a at bytes 4..12 leaves a hole before it"),
            (r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}}"#, 16, "leaves a hole"),
            (r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, 8, "overlaps the tensor before it"),
        ];
        for (header, data, says) in cases {
            let e = load(&safetensors(header, data), sized).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Format, "{e}");
            assert!(e.message.contains(says), "{header}: {e}");
        }
        let e = load(&safetensors(good, 15), sized).unwrap_err();
        assert!(e.message.contains("3 bytes follow the last tensor"), "{e}");
    }
}

/// GGUF metadata keys and tensor names are unique (a second one used to win silently).
#[test]
fn gguf_duplicates_are_refused() {
    use lorafuse::formats::gguf::parse_header;
    let twice = gguf_arrays(&[("k", 0, 1, vec![1]), ("k", 0, 1, vec![2])]);
    let e = parse_header(&twice, "dup.gguf").unwrap_err();
    assert!(e.message.contains("metadata key k appears twice"), "{e}");
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(2u64.to_le_bytes()); // tensors
    b.extend(0u64.to_le_bytes()); // metadata
    for offset in [0u64, 32] {
        b.extend(1u64.to_le_bytes());
        b.extend(b"w");
        b.extend(1u32.to_le_bytes()); // dimensions
        b.extend(8u64.to_le_bytes());
        b.extend(0u32.to_le_bytes()); // F32
        b.extend(offset.to_le_bytes());
    }
    let e = parse_header(&b, "dup.gguf").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format);
    assert!(e.message.contains("tensor w appears twice"), "{e}");
}

#[test]
fn a_chat_template_that_never_finishes_is_refused_at_load() {
    use lorafuse::tokenizer::chat::{ChatTemplate, Message};
    // Two nested loops of 100,000: ten billion steps, before the fuel.
    let forever = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let e = ChatTemplate::new(Some(forever), "", "").err().expect("refused at load");
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert!(e.message.contains("rendering took more than"), "{e}");
    // One that is fine for the probe but loops on what a chat brings: a typed error then.
    let per_message = "{% for m in messages %}{% for i in range(m.content|length) %}{% for j in range(10000) %}{% endfor %}{% endfor %}{% endfor %}";
    let t = ChatTemplate::new(Some(per_message), "", "").unwrap();
    let long = [Message { role: "user".into(), content: "x".repeat(10_000) }];
    let e = t.render(&long, true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    // A real template still renders.
    let chatml = ChatTemplate::new(None, "", "").unwrap();
    assert!(chatml.render(&long, true).unwrap().contains("<|im_start|>assistant"));
}
