//! Tokenizers from a model's own vocabulary: byte-level BPE (GPT-2 style: SmolLM, Llama 3,
//! Qwen2) and SentencePiece-style BPE (Llama 2, TinyLlama), with special tokens.

pub mod chat;
mod pretokenize;

use crate::error::{Error, Result};
use crate::formats::gguf::Meta;
pub use pretokenize::Pre;
use std::cell::RefCell;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// GGUF token types.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;
const BYTE: i64 = 6;

enum Kind {
    /// Byte-level BPE: merges by rank, keyed by the ids of the pair.
    Bpe { pre: Pre, merges: HashMap<(u32, u32), (u32, u32)> },
    /// SentencePiece BPE: merges by vocabulary score; unknown pieces fall back to bytes.
    Spm { scores: Vec<f32>, add_space_prefix: bool },
}

pub struct Tokenizer {
    kind: Kind,
    tokens: Vec<String>,
    special: Vec<bool>,
    ids: HashMap<String, u32>,
    /// Special tokens matched verbatim in text, longest first.
    specials: Vec<(String, u32)>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    /// Ids of every `<0xXX>` byte token (SentencePiece byte fallback).
    byte_ids: Vec<Option<u32>>,
    cache: RefCell<HashMap<String, Vec<u32>>>,
}

/// GPT-2's reversible byte → printable char map.
fn byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut n = 0;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        map[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    map
}

fn strings(meta: &BTreeMap<String, Meta>, key: &str) -> Result<Vec<String>> {
    let arr = meta.get(key).and_then(Meta::as_array).ok_or_else(|| Error::format(format!("metadata {key} is missing")))?;
    arr.iter()
        .map(|m| match m {
            Meta::Str(s) => Ok(s),
            _ => Err(Error::format(format!("{key} holds a non-string"))),
        })
        .collect()
}

/// What both sources give for a vocabulary, before the indexes are built.
struct Vocab {
    tokens: Vec<String>,
    special: Vec<bool>,
    byte_tokens: Vec<bool>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
}

impl Tokenizer {
    fn build(v: Vocab, kind: impl FnOnce(&HashMap<String, u32>) -> Result<Kind>) -> Result<Tokenizer> {
        let ids: HashMap<String, u32> = v.tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let kind = kind(&ids)?;
        let mut specials: Vec<(String, u32)> =
            (0..v.tokens.len()).filter(|&i| v.special[i] && !v.tokens[i].is_empty()).map(|i| (v.tokens[i].clone(), i as u32)).collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()));
        let mut byte_ids = vec![None; 256];
        for (i, t) in v.tokens.iter().enumerate().filter(|(i, _)| v.byte_tokens[*i]) {
            if let Some(b) = t.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                byte_ids[b as usize] = Some(i as u32);
            }
        }
        Ok(Tokenizer {
            kind,
            special: v.special,
            ids,
            specials,
            bos: v.bos,
            eos: v.eos,
            add_bos: v.add_bos,
            tokens: v.tokens,
            byte_ids,
            cache: RefCell::new(HashMap::new()),
        })
    }

    /// Byte-level BPE merges ("a b" strings, by rank) keyed by the ids of the pair.
    fn merge_table(ids: &HashMap<String, u32>, merges: impl Iterator<Item = (String, String)>) -> HashMap<(u32, u32), (u32, u32)> {
        let mut table = HashMap::new();
        for (rank, (a, b)) in merges.enumerate() {
            if let (Some(&ia), Some(&ib), Some(&im)) = (ids.get(&a), ids.get(&b), ids.get(&format!("{a}{b}"))) {
                table.entry((ia, ib)).or_insert((rank as u32, im));
            }
        }
        table
    }

    /// A Hugging Face tokenizer.json (byte-level BPE models), with the special tokens
    /// named in tokenizer_config.json.
    pub fn from_hf(tokenizer_json: &str, bos: Option<&str>, eos: Option<&str>, add_bos: bool) -> Result<Tokenizer> {
        let j: serde_json::Value =
            serde_json::from_str(tokenizer_json).map_err(|e| Error::format(format!("tokenizer.json: {e}")))?;
        let model = &j["model"];
        if model["type"].as_str() != Some("BPE") {
            return Err(Error::unsupported(format!("tokenizer.json: model type {} (BPE is supported)", model["type"])));
        }
        let vocab = model["vocab"].as_object().ok_or_else(|| Error::format("tokenizer.json: model.vocab is missing"))?;
        let mut tokens: Vec<String> = Vec::new();
        // Ids are dense in real files: one past the entries (plus slack for gaps) bounds the
        // table, so a single id of 4 M cannot size it (240 MiB of empty strings).
        let entries = vocab.len() + j["added_tokens"].as_array().map_or(0, Vec::len);
        let max_id = (entries + (1 << 16)).min(1 << 22);
        let mut put = |id: u64, t: &str| -> Result<()> {
            let id = usize::try_from(id)
                .ok()
                .filter(|&i| i < max_id)
                .ok_or_else(|| Error::format(format!("tokenizer.json: token id {id} (the file has {entries} tokens)")))?;
            if tokens.len() <= id {
                tokens.resize(id + 1, String::new());
            }
            tokens[id] = t.to_string();
            Ok(())
        };
        for (t, id) in vocab {
            put(id.as_u64().unwrap_or(u64::MAX), t)?;
        }
        let mut special_ids = Vec::new();
        for a in j["added_tokens"].as_array().into_iter().flatten() {
            let (Some(id), Some(content)) = (a["id"].as_u64(), a["content"].as_str()) else { continue };
            put(id, content)?;
            if a["special"].as_bool().unwrap_or(true) {
                special_ids.push(id as usize);
            }
        }
        let pre = hf_pre_tokenizer(&j["pre_tokenizer"])?;
        let merges: Vec<(String, String)> = model["merges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| match m {
                serde_json::Value::String(s) => s.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())),
                serde_json::Value::Array(p) if p.len() == 2 => Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())),
                _ => None,
            })
            .collect();
        let n = tokens.len();
        let mut special = vec![false; n];
        special_ids.iter().for_each(|&i| special[i] = true);
        let find = |s: Option<&str>| s.and_then(|s| tokens.iter().position(|t| t == s)).map(|i| i as u32);
        let v = Vocab { bos: find(bos), eos: find(eos), add_bos, special, byte_tokens: vec![false; n], tokens: tokens.clone() };
        Self::build(v, |ids| Ok(Kind::Bpe { pre, merges: Self::merge_table(ids, merges.into_iter()) }))
    }

    pub fn from_gguf(meta: &BTreeMap<String, Meta>) -> Result<Tokenizer> {
        let model = meta.get("tokenizer.ggml.model").and_then(Meta::as_str).unwrap_or("");
        let tokens = strings(meta, "tokenizer.ggml.tokens")?;
        let n = tokens.len();
        let types: Vec<i64> = match meta.get("tokenizer.ggml.token_type").and_then(Meta::as_array) {
            Some(a) if a.len() == n => a.iter().map(|m| m.as_u64().map_or(1, |v| v as i64)).collect(),
            _ => vec![1; n],
        };
        let id = |k: &str| meta.get(k).and_then(Meta::as_u64).and_then(|v| u32::try_from(v).ok()).filter(|&v| (v as usize) < n);
        let flag = |k: &str, d: bool| match meta.get(k) {
            Some(Meta::Bool(b)) => *b,
            _ => d,
        };
        let kind = |ids: &HashMap<String, u32>| -> Result<Kind> {
            Ok(match model {
                "gpt2" => {
                    let pre_name = meta.get("tokenizer.ggml.pre").and_then(Meta::as_str).unwrap_or("default");
                    let pre = Pre::from_gguf(pre_name).ok_or_else(|| {
                        Error::unsupported(format!("pre-tokenizer {pre_name:?} (gpt2, smollm, llama3, qwen2 are supported)"))
                    })?;
                    let merges = strings(meta, "tokenizer.ggml.merges")?;
                    let pairs = merges.iter().filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())));
                    Kind::Bpe { pre, merges: Self::merge_table(ids, pairs) }
                }
                "llama" => {
                    let scores = match meta.get("tokenizer.ggml.scores").and_then(Meta::as_array) {
                        Some(a) if a.len() == n => a.iter().map(|m| m.as_f64().unwrap_or(0.0) as f32).collect(),
                        _ => return Err(Error::format("tokenizer.ggml.scores is missing or the wrong length")),
                    };
                    Kind::Spm { scores, add_space_prefix: flag("tokenizer.ggml.add_space_prefix", true) }
                }
                other => return Err(Error::unsupported(format!("tokenizer model {other:?} (gpt2 and llama are supported)"))),
            })
        };
        let v = Vocab {
            special: types.iter().map(|&t| t == CONTROL || t == USER_DEFINED).collect(),
            byte_tokens: types.iter().map(|&t| t == BYTE).collect(),
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            add_bos: flag("tokenizer.ggml.add_bos_token", model == "llama"),
            tokens,
        };
        Self::build(v, kind)
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// Token ids for `text`. With `special`, special-token strings in the text (e.g.
    /// `<|im_start|>`) become their ids; without, they are encoded as plain text.
    pub fn encode(&self, text: &str, special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let mut rest = text;
        let mut first = true;
        while !rest.is_empty() {
            let (plain, hit) = if special { self.next_special(rest) } else { (rest.len(), None) };
            if plain > 0 {
                self.encode_plain(&rest[..plain], first, &mut out);
            }
            first = false;
            match hit {
                Some((len, id)) => {
                    out.push(id);
                    rest = &rest[plain + len..];
                }
                None => rest = &rest[plain..],
            }
        }
        out
    }

    /// Bytes before the first special token in `s`, and that token's (length, id).
    fn next_special(&self, s: &str) -> (usize, Option<(usize, u32)>) {
        for (i, _) in s.char_indices() {
            if let Some((t, id)) = self.specials.iter().find(|(t, _)| s[i..].starts_with(t.as_str())) {
                return (i, Some((t.len(), *id)));
            }
        }
        (s.len(), None)
    }

    fn encode_plain(&self, text: &str, at_start: bool, out: &mut Vec<u32>) {
        match &self.kind {
            Kind::Bpe { pre, merges } => {
                let map = byte_chars();
                for piece in pre.split(text) {
                    if let Some(ids) = self.cache.borrow().get(piece) {
                        out.extend_from_slice(ids);
                        continue;
                    }
                    let mapped: String = piece.bytes().map(|b| map[b as usize]).collect();
                    let mut syms: Vec<u32> = Vec::with_capacity(mapped.len());
                    for c in mapped.chars() {
                        let mut buf = [0u8; 4];
                        if let Some(&id) = self.ids.get(c.encode_utf8(&mut buf) as &str) {
                            syms.push(id);
                        }
                    }
                    bpe_merge(&mut syms, |a, b| merges.get(&(a, b)).copied());
                    out.extend_from_slice(&syms);
                    let mut cache = self.cache.borrow_mut();
                    if cache.len() > 50_000 {
                        cache.clear();
                    }
                    cache.insert(piece.to_owned(), syms);
                }
            }
            Kind::Spm { scores, add_space_prefix } => {
                let mut s = String::with_capacity(text.len() + 3);
                if *add_space_prefix && at_start {
                    s.push('▁');
                }
                s.push_str(&text.replace(' ', "▁"));
                self.spm_encode(&s, scores, out);
            }
        }
    }

    /// SentencePiece BPE: repeatedly merge the adjacent pair whose concatenation is the
    /// highest-scoring vocabulary entry; what stays unknown is spelled in byte tokens.
    fn spm_encode(&self, s: &str, scores: &[f32], out: &mut Vec<u32>) {
        // Symbols as byte ranges of `s`, linked left/right.
        let mut sym: Vec<(usize, usize)> = s.char_indices().map(|(i, c)| (i, i + c.len_utf8())).collect();
        let n = sym.len();
        let mut prev: Vec<isize> = (0..n as isize).map(|i| i - 1).collect();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut alive = vec![true; n];
        // Max-heap of (score, -left index) so ties go to the leftmost pair.
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<(OrdF32, isize, usize, usize)>, sym: &[(usize, usize)], l: usize, r: usize| {
            if let Some(&id) = self.ids.get(&s[sym[l].0..sym[r].1]) {
                heap.push((OrdF32(scores[id as usize]), -(l as isize), l, sym[r].1 - sym[l].0));
            }
        };
        for i in 1..n {
            push(&mut heap, &sym, i - 1, i);
        }
        while let Some((_, _, l, len)) = heap.pop() {
            let r = next[l];
            // Stale entry: a side was merged away or changed since.
            if !alive[l] || r >= n || !alive[r] || sym[r].1 - sym[l].0 != len {
                continue;
            }
            sym[l].1 = sym[r].1;
            alive[r] = false;
            next[l] = next[r];
            if next[r] < n {
                prev[next[r]] = l as isize;
            }
            if prev[l] >= 0 {
                push(&mut heap, &sym, prev[l] as usize, l);
            }
            if next[l] < n {
                push(&mut heap, &sym, l, next[l]);
            }
        }
        let mut i = 0;
        while i < n {
            let piece = &s[sym[i].0..sym[i].1];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => out.extend(piece.bytes().filter_map(|b| self.byte_ids[b as usize])),
            }
            i = next[i];
        }
    }

    /// The bytes token `id` stands for (special tokens: their text).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(t) = self.tokens.get(id as usize) else { return Vec::new() };
        if self.is_special(id) {
            return t.as_bytes().to_vec();
        }
        match &self.kind {
            Kind::Bpe { .. } => {
                let map = byte_chars();
                t.chars()
                    .map(|c| map.iter().position(|&m| m == c).map_or(b'?', |b| b as u8))
                    .collect()
            }
            Kind::Spm { .. } => {
                if let Some(b) = self.byte_ids.iter().position(|&x| x == Some(id)) {
                    return vec![b as u8];
                }
                t.replace('▁', " ").into_bytes()
            }
        }
    }

    /// Text for `ids`; `skip_special` drops control tokens such as `<|im_end|>`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if skip_special && self.is_special(id) {
                continue;
            }
            bytes.extend(self.token_bytes(id));
        }
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        if let Kind::Spm { add_space_prefix: true, .. } = self.kind {
            if s.starts_with(' ') {
                s.remove(0);
            }
        }
        s
    }
}

impl Tokenizer {
    /// A Hugging Face tokenizer.json for this vocabulary (byte-level BPE only): lets a GGUF
    /// model be exported as an HF folder that tokenizes identically.
    pub fn to_hf_json(&self) -> Result<String> {
        let Kind::Bpe { pre, merges } = &self.kind else {
            return Err(Error::unsupported("tokenizer.json export is for byte-level BPE vocabularies"));
        };
        let mut ranked: Vec<(u32, u32, u32)> = merges.iter().map(|(&(a, b), &(rank, _))| (rank, a, b)).collect();
        ranked.sort_unstable();
        let merges: Vec<String> = ranked.iter().map(|&(_, a, b)| format!("{} {}", self.tokens[a as usize], self.tokens[b as usize])).collect();
        let vocab: serde_json::Map<String, serde_json::Value> =
            self.tokens.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::json!(i))).collect();
        let added: Vec<serde_json::Value> = (0..self.tokens.len())
            .filter(|&i| self.special[i])
            .map(|i| serde_json::json!({"id": i, "content": self.tokens[i], "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true}))
            .collect();
        let byte_level = |regex: bool| serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex});
        let split = |digits: &str| serde_json::json!({"type": "Split", "pattern": {"Regex": format!(
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^
\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}{digits}| ?[^\s\p{{L}}\p{{N}}]+[
]*|\s*[
]+|\s+(?!\S)|\s+")},
            "behavior": "Isolated", "invert": false});
        let pre = match pre {
            Pre::Gpt2 => byte_level(true),
            Pre::SmolLm => serde_json::json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            Pre::Llama3 { max_digits: 3 } => serde_json::json!({"type": "Sequence", "pretokenizers": [split("{1,3}"), byte_level(false)]}),
            Pre::Llama3 { .. } => serde_json::json!({"type": "Sequence", "pretokenizers": [split(""), byte_level(false)]}),
        };
        let j = serde_json::json!({
            "version": "1.0",
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges},
        });
        Ok(j.to_string())
    }
}

/// Byte-level BPE on one piece: merge the lowest-ranked adjacent pair (the leftmost among
/// equals) until none applies. Candidates wait in a heap and symbols in a linked list, so a
/// long piece costs O(n log n), not a scan of every pair per merge (64k repeated letters took
/// 40 s that way); an entry whose pair has changed since it was pushed is skipped.
fn bpe_merge(syms: &mut Vec<u32>, rank: impl Fn(u32, u32) -> Option<(u32, u32)>) {
    const NONE: usize = usize::MAX;
    let n = syms.len();
    if n < 2 {
        return;
    }
    let mut next: Vec<usize> = (1..=n).map(|j| if j < n { j } else { NONE }).collect();
    let mut prev: Vec<usize> = (0..n).map(|j| j.wrapping_sub(1)).collect(); // 0 - 1 is NONE
    let mut alive = vec![true; n];
    // (rank, left position, left id, right id, merged id), smallest first.
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<_>, syms: &[u32], i: usize, j: usize| {
        if let Some((r, id)) = rank(syms[i], syms[j]) {
            heap.push(std::cmp::Reverse((r, i, syms[i], syms[j], id)));
        }
    };
    for i in 0..n - 1 {
        push(&mut heap, syms, i, i + 1);
    }
    while let Some(std::cmp::Reverse((_, i, a, b, id))) = heap.pop() {
        let j = next[i];
        if !alive[i] || j == NONE || syms[i] != a || syms[j] != b {
            continue; // stale: one side merged since
        }
        syms[i] = id;
        alive[j] = false;
        next[i] = next[j];
        if next[j] != NONE {
            prev[next[j]] = i;
        }
        if prev[i] != NONE {
            push(&mut heap, syms, prev[i], i);
        }
        if next[i] != NONE {
            push(&mut heap, syms, i, next[i]);
        }
    }
    let mut k = 0;
    for i in 0..n {
        if alive[i] {
            syms[k] = syms[i];
            k += 1;
        }
    }
    syms.truncate(k);
}

#[derive(PartialEq, PartialOrd)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
#[allow(clippy::derive_ord_xor_partial_ord)]
impl Ord for OrdF32 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// Maps a tokenizer.json pre_tokenizer to the splits we implement; anything else is refused
/// rather than silently tokenized differently.
fn hf_pre_tokenizer(p: &serde_json::Value) -> Result<Pre> {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let kind = |v: &serde_json::Value| v["type"].as_str().unwrap_or("").to_string();
    let parts: Vec<&serde_json::Value> = match kind(p).as_str() {
        "Sequence" => p["pretokenizers"].as_array().map(|a| a.iter().collect()).unwrap_or_default(),
        _ => vec![p],
    };
    let sig: Vec<String> = parts
        .iter()
        .map(|v| match kind(v).as_str() {
            "ByteLevel" if v["use_regex"].as_bool().unwrap_or(true) => "ByteLevel+regex".into(),
            "ByteLevel" => "ByteLevel".into(),
            "Digits" if v["individual_digits"].as_bool() == Some(true) => "Digits1".into(),
            "Split" => match v["pattern"]["Regex"].as_str() {
                Some(LLAMA3) => "Split:llama3".into(),
                Some(QWEN2) => "Split:qwen2".into(),
                Some(other) => format!("Split:{other}"),
                None => "Split:?".into(),
            },
            other => other.into(),
        })
        .collect();
    let sig: Vec<&str> = sig.iter().map(String::as_str).collect();
    Ok(match sig.as_slice() {
        ["ByteLevel+regex"] => Pre::Gpt2,
        ["Digits1", "ByteLevel+regex"] => Pre::SmolLm,
        ["Split:llama3", "ByteLevel"] => Pre::Llama3 { max_digits: 3 },
        ["Split:qwen2", "ByteLevel"] => Pre::Llama3 { max_digits: 1 },
        other => return Err(Error::unsupported(format!("tokenizer.json: pre-tokenizer {other:?} is not supported"))),
    })
}

#[cfg(test)]
mod tests {
    use super::bpe_merge;

    /// The definition: merge the lowest-ranked adjacent pair, the leftmost among equals.
    fn naive(syms: &mut Vec<u32>, rank: impl Fn(u32, u32) -> Option<(u32, u32)>) {
        loop {
            let best = syms.windows(2).enumerate().filter_map(|(i, w)| rank(w[0], w[1]).map(|(r, id)| (r, i, id))).min_by_key(|&(r, i, _)| (r, i));
            let Some((_, i, id)) = best else { return };
            syms[i] = id;
            syms.remove(i + 1);
        }
    }

    #[test]
    fn heap_merges_equal_the_definition() {
        let mut seed = 9u64;
        let mut next = |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for case in 0..300 {
            // Symbols 0..5; a random rank for some pairs, merging into new ids (10 + pair),
            // which can merge again (ties of rank included).
            let n = 1 + next(60) as usize;
            let syms: Vec<u32> = (0..n).map(|_| next(5) as u32).collect();
            let table: Vec<Option<u32>> = (0..64 * 64).map(|_| (next(3) != 0).then(|| next(8) as u32)).collect();
            let rank = |a: u32, b: u32| table.get((a % 64 * 64 + b % 64) as usize).copied().flatten().map(|r| (r, 10 + (a * 7 + b) % 50));
            let (mut got, mut want) = (syms.clone(), syms);
            bpe_merge(&mut got, rank);
            naive(&mut want, rank);
            assert_eq!(got, want, "case {case}");
        }
    }
}
