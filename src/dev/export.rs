//! A loaded GGUF model written back as a Hugging Face folder (config.json, tokenizer.json,
//! tokenizer_config.json, model.safetensors in f32 or f16, q/k rows in HF order): so the
//! Hugging Face route can be checked against the same weights, and benchmarked unquantized.

use crate::error::{Error, Result};
use crate::formats::config::Config;
use crate::formats::gguf::{GgufStream, Meta};
use crate::formats::tensors::ModelTensors;
use crate::formats::weights::{HostWeight, WeightFormat};
use crate::tokenizer::chat::ChatTemplate;
use crate::tokenizer::Tokenizer;

/// (file name, bytes) of the HF folder for the GGUF in `stream`; `format` is F32 or F16.
pub fn gguf_to_hf(stream: GgufStream, file: &str, format: WeightFormat) -> Result<Vec<(String, Vec<u8>)>> {
    if !matches!(format, WeightFormat::F32 | WeightFormat::F16) {
        return Err(Error::unsupported("export writes f32 or f16 safetensors"));
    }
    let (header, map) = stream.finish()?;
    let tok = Tokenizer::from_gguf(&header.meta)?;
    let template = header.meta.get("tokenizer.chat_template").and_then(Meta::as_str);
    ChatTemplate::new(template, "", "")?;
    let t = ModelTensors::from_gguf(&header, map, file)?;
    let c = &t.cfg;
    if c.arch.is_gemma() {
        return Err(Error::unsupported("export of Gemma models (their norms and layer kinds are not written)"));
    }
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut put = |name: String, w: &HostWeight| {
        let data = (0..w.rows).flat_map(|r| w.row_f32(r)).collect();
        let shape = if w.rows == 1 { vec![w.cols] } else { vec![w.rows, w.cols] };
        tensors.push((name, shape, data));
    };
    let vec1 = |v: &[f32]| HostWeight::new(1, v.len(), crate::formats::weights::WeightData::F32(v.to_vec()));
    // Phi-3's fused weights, rows one after another.
    let fuse = |ws: &[&HostWeight]| {
        let rows: Vec<f32> = ws.iter().flat_map(|w| (0..w.rows).flat_map(|r| w.row_f32(r))).collect();
        HostWeight::new(rows.len() / ws[0].cols, ws[0].cols, crate::formats::weights::WeightData::F32(rows))
    };
    put("model.embed_tokens.weight".into(), &t.embed);
    for (i, l) in t.layers.iter().enumerate() {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        put(p("input_layernorm.weight"), &vec1(&l.attn_norm)?);
        if c.arch.fused() {
            put(p("self_attn.qkv_proj.weight"), &fuse(&[&l.q, &l.k, &l.v])?);
        } else {
            put(p("self_attn.q_proj.weight"), &l.q);
            put(p("self_attn.k_proj.weight"), &l.k);
            put(p("self_attn.v_proj.weight"), &l.v);
        }
        put(p("self_attn.o_proj.weight"), &l.o);
        if let Some([qn, kn]) = &l.qk_norm {
            put(p("self_attn.q_norm.weight"), &vec1(qn)?);
            put(p("self_attn.k_norm.weight"), &vec1(kn)?);
        }
        if let Some([qb, kb, vb]) = &l.qkv_bias {
            put(p("self_attn.q_proj.bias"), &vec1(qb)?);
            put(p("self_attn.k_proj.bias"), &vec1(kb)?);
            put(p("self_attn.v_proj.bias"), &vec1(vb)?);
        }
        put(p("post_attention_layernorm.weight"), &vec1(&l.ffn_norm)?);
        if c.arch.fused() {
            put(p("mlp.gate_up_proj.weight"), &fuse(&[&l.gate, &l.up])?);
        } else {
            put(p("mlp.gate_proj.weight"), &l.gate);
            put(p("mlp.up_proj.weight"), &l.up);
        }
        put(p("mlp.down_proj.weight"), &l.down);
    }
    put("model.norm.weight".into(), &vec1(&t.norm)?);
    if let Some(h) = &t.lm_head {
        put("lm_head.weight".into(), h);
    }
    let tok_text = |id: Option<u32>| id.and_then(|i| tok.token(i)).map(str::to_string);
    let tc = serde_json::json!({
        "bos_token": tok_text(tok.bos), "eos_token": tok_text(tok.eos), "add_bos_token": tok.add_bos, "chat_template": template,
    });
    Ok(vec![
        ("config.json".into(), config_json(c, format).into_bytes()),
        ("tokenizer.json".into(), tok.to_hf_json()?.into_bytes()),
        ("tokenizer_config.json".into(), tc.to_string().into_bytes()),
        ("model.safetensors".into(), safetensors(&tensors, format)),
    ])
}

fn config_json(c: &Config, format: WeightFormat) -> String {
    let (class, ty) = match c.arch {
        crate::formats::config::Arch::Llama => ("LlamaForCausalLM", "llama"),
        crate::formats::config::Arch::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
        crate::formats::config::Arch::Mistral => ("MistralForCausalLM", "mistral"),
        crate::formats::config::Arch::Qwen3 => ("Qwen3ForCausalLM", "qwen3"),
        crate::formats::config::Arch::Phi3 => ("Phi3ForCausalLM", "phi3"),
        crate::formats::config::Arch::Gemma2 | crate::formats::config::Arch::Gemma3 => unreachable!("refused by gguf_to_hf"),
    };
    let mut j = serde_json::json!({
        "architectures": [class], "model_type": ty, "vocab_size": c.vocab, "hidden_size": c.hidden,
        "intermediate_size": c.ffn, "num_hidden_layers": c.layers, "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads, "head_dim": c.head_dim, "rms_norm_eps": c.eps,
        "rope_theta": c.rope_theta, "max_position_embeddings": c.context, "tie_word_embeddings": c.tied,
        "torch_dtype": if format == WeightFormat::F16 { "float16" } else { "float32" },
    });
    if let Some(s) = c.rope_scaling {
        j["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": s.factor, "low_freq_factor": s.low_freq_factor,
            "high_freq_factor": s.high_freq_factor, "original_max_position_embeddings": s.original_max_position});
    }
    if let Some(w) = c.sliding_window {
        j["sliding_window"] = serde_json::json!(w);
    }
    j.to_string()
}

fn safetensors(tensors: &[(String, Vec<usize>, Vec<f32>)], format: WeightFormat) -> Vec<u8> {
    let (dtype, size) = if format == WeightFormat::F16 { ("F16", 2) } else { ("F32", 4) };
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for (name, shape, data) in tensors {
        header.insert(name.clone(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [off, off + data.len() * size]}));
        off += data.len() * size;
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while (8 + h.len()) % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + off);
    out.extend((h.len() as u64).to_le_bytes());
    out.extend(h);
    for (_, _, data) in tensors {
        for &v in data {
            if format == WeightFormat::F16 {
                out.extend(half::f16::from_f32(v).to_bits().to_le_bytes());
            } else {
                out.extend(v.to_le_bytes());
            }
        }
    }
    out
}
