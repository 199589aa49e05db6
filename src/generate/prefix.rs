//! Prompt-prefix reuse: the KV caches of finished sequences, kept so that a new prompt that
//! starts the same way (the next turn of a chat, a shared system prompt) prefills only what
//! is new. Adapters change keys and values, so an entry is found only under the adapter
//! stack (ids and weights) that computed it. A cache is taken out of the store while a
//! sequence extends it (no copy; a second sequence with the same prefix starts fresh), and
//! comes back when that sequence finishes. Least recently used entries go first once the
//! entries' bytes pass the budget.

use crate::backend::ops::ModelOps;
use crate::model::llama::Session;

/// Bytes of KV cache kept by default: SmolLM2-135M holds 46 KiB per position, so about
/// 2,800 positions (a long conversation, or a few shorter ones).
pub const DEFAULT_BUDGET: usize = 128 << 20;
/// Entries kept at most, whatever their size.
const MAX_ENTRIES: usize = 16;

struct Entry<B: ModelOps> {
    stack: Vec<(usize, f32)>,
    /// The token at each cached position.
    tokens: Vec<u32>,
    session: Session<B>,
    bytes: usize,
    used: u64,
}

pub struct PrefixCache<B: ModelOps> {
    entries: Vec<Entry<B>>,
    budget: usize,
    clock: u64,
}

impl<B: ModelOps> Default for PrefixCache<B> {
    fn default() -> Self {
        PrefixCache { entries: Vec::new(), budget: DEFAULT_BUDGET, clock: 0 }
    }
}

/// What a store holds now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PrefixStats {
    pub entries: usize,
    pub positions: usize,
    pub bytes: usize,
    pub budget: usize,
}

impl<B: ModelOps> PrefixCache<B> {
    /// The cached session sharing the longest prefix with `prompt` under `stack`, cut to that
    /// prefix, and its length; taken out of the store. At least one prompt token is left to
    /// run (its logits pick the next token).
    pub fn take(&mut self, b: &B, stack: &[(usize, f32)], prompt: &[u32]) -> Option<(Session<B>, usize)> {
        let common = |e: &Entry<B>| e.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count().min(prompt.len().saturating_sub(1));
        let (i, n) = self.entries.iter().enumerate().filter(|(_, e)| e.stack == stack).map(|(i, e)| (i, common(e))).max_by_key(|&(_, n)| n)?;
        if n == 0 {
            return None;
        }
        let mut e = self.entries.swap_remove(i);
        e.session.truncate(b, n);
        Some((e.session, n))
    }

    /// Keeps `session`, whose positions hold `tokens`, computed under `stack`. A session whose
    /// layers disagree on their length (a forward pass that failed midway) is dropped.
    pub fn put(&mut self, b: &B, stack: Vec<(usize, f32)>, tokens: &[u32], session: Session<B>) {
        let Some(n) = session.consistent_len(b).filter(|&n| n > 0 && n <= tokens.len()) else { return };
        let bytes = session.bytes(b);
        if bytes > self.budget {
            return;
        }
        // A cache that extends another one of the same stack replaces it.
        self.entries.retain(|e| !(e.stack == stack && e.tokens.len() <= n && tokens.starts_with(&e.tokens)));
        self.clock += 1;
        self.entries.push(Entry { stack, tokens: tokens[..n].to_vec(), session, bytes, used: self.clock });
        self.evict();
    }

    /// Drops least recently used entries until the count and the budget hold.
    fn evict(&mut self) {
        while self.entries.len() > MAX_ENTRIES || self.bytes() > self.budget {
            let oldest = self.entries.iter().enumerate().min_by_key(|(_, e)| e.used).map(|(i, _)| i);
            self.entries.swap_remove(oldest.unwrap_or(0));
        }
    }

    /// Drops the entries computed with adapter `id` (it was unloaded or replaced).
    pub fn forget_adapter(&mut self, id: usize) {
        self.entries.retain(|e| e.stack.iter().all(|&(a, _)| a != id));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Sets the byte budget (0 turns reuse off), dropping the oldest entries past it.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.evict();
    }

    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    pub fn stats(&self) -> PrefixStats {
        PrefixStats { entries: self.entries.len(), positions: self.entries.iter().map(|e| e.tokens.len()).sum(), bytes: self.bytes(), budget: self.budget }
    }
}
