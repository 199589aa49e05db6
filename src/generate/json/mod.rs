//! Structured output: generated text constrained to JSON (any object, or a value valid under
//! a JSON Schema). The schema compiles to a grammar (`grammar.rs`) walked byte by byte by a
//! pushdown automaton (`matcher.rs`); before each sampling step the tokens whose bytes the
//! automaton accepts are found in one walk of the vocabulary's byte trie (`vocab.rs`) and the
//! others' logits are masked out (`backend::select::MASKED`), on the GPU without reading the
//! vocabulary back. Masks are remembered per automaton state, so a schema's repeated
//! states (the same key, the same position in a string) cost a lookup.

pub mod grammar;
mod matcher;
mod number;
mod vocab;

use crate::backend::select::insert;
use crate::error::{Error, Result};
use grammar::Grammar;
use matcher::Stack;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
pub use vocab::Vocab;

/// Masks remembered per format at most (each is a vocabulary bitset: 6 KiB for 49 k tokens).
const MEMO: usize = 1024;

/// A compiled format: its grammar over a model's vocabulary, and masks already computed.
pub struct JsonFormat {
    grammar: Grammar,
    vocab: Rc<Vocab>,
    /// Per state: its mask, and the most bytes from the document's end an allowed token
    /// leaves it.
    memo: RefCell<HashMap<Vec<Stack>, (Rc<[u32]>, u32)>>,
}

impl std::fmt::Debug for JsonFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonFormat({} nodes)", self.grammar.nodes.len())
    }
}

impl JsonFormat {
    pub fn new(grammar: Grammar, vocab: Rc<Vocab>) -> JsonFormat {
        JsonFormat { grammar, vocab, memo: Default::default() }
    }

    /// The tokens allowed after `state`, without the stop tokens, and the most bytes from
    /// the document's end any of them leaves it (remembered).
    fn allowed(&self, state: &[Stack]) -> (Rc<[u32]>, u32) {
        if let Some(m) = self.memo.borrow().get(state) {
            return m.clone();
        }
        let mut bits = vec![0u32; self.vocab.words];
        let far = self.vocab.allowed(&self.grammar, state, None, &mut bits);
        let entry = (Rc::<[u32]>::from(bits), far);
        let mut memo = self.memo.borrow_mut();
        if memo.len() >= MEMO {
            memo.clear();
        }
        memo.insert(state.to_vec(), entry.clone());
        entry
    }
}

/// One sequence's place in its format.
#[derive(Clone, Debug)]
pub struct JsonState {
    format: Rc<JsonFormat>,
    stacks: Vec<Stack>,
}

impl JsonState {
    pub fn new(format: Rc<JsonFormat>) -> JsonState {
        let stacks = vec![matcher::start(&format.grammar)];
        JsonState { format, stacks }
    }

    /// A bitset over the vocabulary of the tokens that may come next: those that keep the
    /// text a prefix of some valid document, and `stops` once the document may end. With
    /// `tokens` left (this one included), only tokens after which the document can still be
    /// closed in time: every byte has a token, so a document `d` bytes from its end closes
    /// in `d` tokens, and a token is allowed when it leaves at most `tokens - 1` bytes.
    pub fn mask(&self, stops: &[u32], tokens: Option<usize>) -> Rc<[u32]> {
        let (mut bits, far) = self.format.allowed(&self.stacks);
        let eos = !self.format.grammar.closes_itself() as usize;
        if let Some(limit) = tokens.map(|t| t.saturating_sub(1 + eos).min(u32::MAX as usize) as u32).filter(|&l| far > l) {
            let mut b = vec![0u32; self.format.vocab.words];
            self.format.vocab.allowed(&self.format.grammar, &self.stacks, Some(limit), &mut b);
            bits = b.into();
        }
        if !self.can_end() {
            return bits;
        }
        let mut bits = bits.to_vec();
        let n = bits.len() * 32;
        for &t in stops.iter().filter(|&&t| (t as usize) < n) {
            insert(&mut bits, t as usize);
        }
        bits.into()
    }

    /// Takes a generated token's bytes; an error if the format refuses them (the mask
    /// should have prevented that).
    pub fn advance(&mut self, bytes: &[u8]) -> Result<()> {
        let next = matcher::feed_all(&self.format.grammar, &self.stacks, bytes);
        if next.is_empty() {
            return Err(Error::config(format!("token {:?} does not continue the JSON being generated", String::from_utf8_lossy(bytes))));
        }
        self.stacks = next;
        Ok(())
    }

    /// The document may end here.
    pub fn can_end(&self) -> bool {
        self.stacks.iter().any(|s| matcher::can_end(&self.format.grammar, s))
    }

    /// The document is complete and nothing may follow it.
    pub fn closed(&self) -> bool {
        self.stacks.iter().all(|s| matches!(s.last(), Some(matcher::Frame::Doc { done: true })))
    }
}

/// A model's compiled formats (by schema text) and its vocabulary trie, built at first use.
#[derive(Default)]
pub struct JsonFormats {
    vocab: Option<Rc<Vocab>>,
    compiled: Vec<(String, Rc<JsonFormat>)>,
}

/// Formats kept compiled per model.
const KEPT: usize = 8;

impl JsonFormats {
    /// The format for `schema` (None: any JSON object) over `tok`'s vocabulary.
    pub fn get(&mut self, tok: &crate::tokenizer::Tokenizer, schema: Option<&serde_json::Value>) -> Result<Rc<JsonFormat>> {
        let key = schema.map_or_else(String::new, |s| s.to_string());
        if let Some(i) = self.compiled.iter().position(|c| c.0 == key) {
            let c = self.compiled.remove(i);
            self.compiled.push(c.clone());
            return Ok(c.1);
        }
        let grammar = match schema {
            Some(s) => Grammar::from_schema(s)?,
            None => Grammar::any_object(),
        };
        let vocab = self.vocab.get_or_insert_with(|| Rc::new(Vocab::new(tok))).clone();
        let f = Rc::new(JsonFormat::new(grammar, vocab));
        if self.compiled.len() >= KEPT {
            self.compiled.remove(0);
        }
        self.compiled.push((key, f.clone()));
        Ok(f)
    }
}

#[cfg(test)]
mod tests;
