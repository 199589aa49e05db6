//! Pre-tokenizers: the regex splits of byte-level BPE tokenizers, hand-coded (they need
//! look-ahead that small regex engines lack) over Unicode general categories.

use unicode_general_category::{get_general_category as cat, GeneralCategory as G};

/// Which split a vocabulary was trained with (GGUF `tokenizer.ggml.pre`, or tokenizer.json).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pre {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    Gpt2,
    /// SmolLM: every `\p{N}` character on its own, then GPT-2.
    SmolLm,
    /// Llama 3 (digits in runs of up to 3) and Qwen2 (digits one by one).
    Llama3 { max_digits: usize },
}

impl Pre {
    pub fn from_gguf(name: &str) -> Option<Pre> {
        Some(match name {
            "gpt2" | "default" | "gpt-2" => Pre::Gpt2,
            "smollm" => Pre::SmolLm,
            "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" => Pre::Llama3 { max_digits: 3 },
            "qwen2" | "deepseek-llm" => Pre::Llama3 { max_digits: 1 },
            _ => return None,
        })
    }

    /// Splits `text` into pieces to be BPE-encoded one by one.
    pub fn split(self, text: &str) -> Vec<&str> {
        if self != Pre::SmolLm {
            return self.split_run(text);
        }
        // Digits first, each on its own; GPT-2 then splits the text between them separately
        // (its look-ahead does not see across a digit).
        let mut out = Vec::new();
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if is_n(c) {
                out.extend(Pre::Gpt2.split_run(&text[start..i]));
                out.push(&text[i..i + c.len_utf8()]);
                start = i + c.len_utf8();
            }
        }
        out.extend(Pre::Gpt2.split_run(&text[start..]));
        out
    }

    fn split_run(self, text: &str) -> Vec<&str> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let end = match self {
                Pre::Gpt2 | Pre::SmolLm => gpt2(&chars, i),
                Pre::Llama3 { max_digits } => llama3(&chars, i, max_digits),
            };
            let end = end.max(i + 1);
            let (a, b) = (chars[i].0, chars.get(end).map_or(text.len(), |c| c.0));
            out.push(&text[a..b]);
            i = end;
        }
        out
    }
}

fn is_l(c: char) -> bool {
    matches!(cat(c), G::UppercaseLetter | G::LowercaseLetter | G::TitlecaseLetter | G::ModifierLetter | G::OtherLetter)
}
fn is_n(c: char) -> bool {
    matches!(cat(c), G::DecimalNumber | G::LetterNumber | G::OtherNumber)
}
/// Regex `\s`: Unicode White_Space.
fn is_s(c: char) -> bool {
    c.is_whitespace()
}
fn is_other(c: char) -> bool {
    !is_s(c) && !is_l(c) && !is_n(c)
}

fn run(ch: &[(usize, char)], mut j: usize, f: impl Fn(char) -> bool) -> usize {
    while j < ch.len() && f(ch[j].1) {
        j += 1;
    }
    j
}

/// Whitespace at `i`: `\s+(?!\S)` (leave the last space to the word after it), else `\s+`.
fn spaces(ch: &[(usize, char)], i: usize) -> usize {
    let end = run(ch, i, is_s);
    if end < ch.len() && end - i > 1 {
        end - 1
    } else {
        end
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d` at `i` (case-insensitively for Llama 3): where it ends.
fn contraction(ch: &[(usize, char)], i: usize, any_case: bool) -> Option<usize> {
    let at = |j: usize| ch.get(j).map(|c| if any_case { c.1.to_ascii_lowercase() } else { c.1 });
    if ch[i].1 != '\'' {
        return None;
    }
    match (at(i + 1), at(i + 2)) {
        (Some('s' | 't' | 'm' | 'd'), _) => Some(i + 2),
        (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => Some(i + 3),
        _ => None,
    }
}

fn gpt2(ch: &[(usize, char)], i: usize) -> usize {
    if let Some(end) = contraction(ch, i, false) {
        return end;
    }
    let c = ch[i].1;
    let j = if c == ' ' && i + 1 < ch.len() { i + 1 } else { i };
    let d = ch[j].1;
    if is_l(d) {
        return run(ch, j, is_l);
    }
    if is_n(d) {
        return run(ch, j, is_n);
    }
    if is_other(d) {
        return run(ch, j, is_other);
    }
    spaces(ch, i)
}

fn llama3(ch: &[(usize, char)], i: usize, max_digits: usize) -> usize {
    if let Some(end) = contraction(ch, i, true) {
        return end;
    }
    let c = ch[i].1;
    let newline = |c: char| c == '\r' || c == '\n';
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if is_l(c) {
        return run(ch, i, is_l);
    }
    if !newline(c) && !is_n(c) && ch.get(i + 1).is_some_and(|n| is_l(n.1)) {
        return run(ch, i + 1, is_l);
    }
    // \p{N}{1,max}
    if is_n(c) {
        return run(ch, i, is_n).min(i + max_digits);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let j = if c == ' ' { i + 1 } else { i };
    if ch.get(j).is_some_and(|d| is_other(d.1)) {
        let k = run(ch, j, is_other);
        return run(ch, k, newline);
    }
    // `\s*[\r\n]+`: up to the last newline of this whitespace run.
    let end = run(ch, i, is_s);
    if let Some(last) = (i..end).rev().find(|&k| newline(ch[k].1)) {
        return last + 1;
    }
    spaces(ch, i)
}
