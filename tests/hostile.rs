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
}
