//! The vocabulary as a byte trie, for finding every token the matcher allows in one walk:
//! tokens that share a prefix are fed that prefix once, and a subtree is left as soon as the
//! matcher refuses its prefix. Inside a string most tokens are plain text; each node knows
//! the most characters any token below it adds when everything from the node on is plain
//! (printable, no quote or backslash, whole UTF-8), so such a subtree is allowed whole without
//! walking it.

use super::grammar::Grammar;
use super::matcher::{dist, feed_all, str_room, Esc, Frame, Stack};
use crate::backend::select::insert;
use crate::tokenizer::Tokenizer;

struct TrieNode {
    byte: u8,
    /// Children: `nodes[kids.0..kids.1]`.
    kids: (u32, u32),
    /// Tokens whose bytes end here: `ids[here.0..here.1]`.
    here: (u32, u32),
    /// Every token below (and at) this node: `ids[sub.0..sub.1]`.
    sub: (u32, u32),
    /// Most characters the tokens below add from this node's byte on, when all of that is
    /// plain string text; `u32::MAX` otherwise.
    plain: u32,
}

pub struct Vocab {
    nodes: Vec<TrieNode>,
    /// Token ids in byte order (a node's tokens are a contiguous range).
    ids: Vec<u32>,
    /// Words of a token bitset.
    pub words: usize,
}

/// Characters in `s` if it is plain string text (printable ASCII other than `"` and `\`, or
/// whole UTF-8 characters), else None.
fn plain_chars(s: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(s).ok()?;
    text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\').then(|| text.chars().count() as u32)
}

impl Vocab {
    /// The trie of `tok`'s text tokens (special tokens and empty ones are never allowed).
    pub fn new(tok: &Tokenizer) -> Vocab {
        let n = tok.vocab_size();
        Vocab::from_tokens((0..n as u32).filter(|&id| !tok.is_special(id)).map(|id| (tok.token_bytes(id), id)).collect(), n)
    }

    /// The trie of (bytes, id) pairs with ids below `n`.
    pub fn from_tokens(mut items: Vec<(Vec<u8>, u32)>, n: usize) -> Vocab {
        items.retain(|(b, _)| !b.is_empty());
        items.sort_unstable();
        let mut v = Vocab { nodes: Vec::new(), ids: items.iter().map(|i| i.1).collect(), words: n.div_ceil(32) };
        v.nodes.push(TrieNode { byte: 0, kids: (0, 0), here: (0, 0), sub: (0, items.len() as u32), plain: u32::MAX });
        v.fill(&items, 0, 0, items.len(), 0);
        v
    }

    /// Builds node `at` over `items[lo..hi]` (which share their first `depth` bytes).
    fn fill(&mut self, items: &[(Vec<u8>, u32)], at: usize, lo: usize, hi: usize, depth: usize) {
        let mut e = lo;
        while e < hi && items[e].0.len() == depth {
            e += 1;
        }
        let mut groups = Vec::new();
        let mut i = e;
        while i < hi {
            let b = items[i].0[depth];
            let mut j = i;
            while j < hi && items[j].0[depth] == b {
                j += 1;
            }
            groups.push((b, i, j));
            i = j;
        }
        let first = self.nodes.len();
        for &(byte, a, z) in &groups {
            let plain = items[a..z].iter().try_fold(0u32, |m, t| plain_chars(&t.0[depth..]).map(|c| m.max(c))).unwrap_or(u32::MAX);
            self.nodes.push(TrieNode { byte, kids: (0, 0), here: (0, 0), sub: (a as u32, z as u32), plain });
        }
        let node = &mut self.nodes[at];
        node.kids = (first as u32, (first + groups.len()) as u32);
        node.here = (lo as u32, e as u32);
        for (k, &(_, a, z)) in groups.iter().enumerate() {
            self.fill(items, first + k, a, z, depth + 1);
        }
    }

    /// Sets the bit of every token whose bytes some stack of `state` accepts, and, with a
    /// `limit`, leave the document at most `limit` bytes from its end (`matcher::dist`).
    /// Returns the most bytes from the end any allowed token leaves it.
    pub fn allowed(&self, g: &Grammar, state: &[Stack], limit: Option<u32>, bits: &mut [u32]) -> u32 {
        self.walk(g, 0, state, limit.unwrap_or(u32::MAX), bits)
    }

    fn set(&self, bits: &mut [u32], range: (u32, u32)) {
        for &id in &self.ids[range.0 as usize..range.1 as usize] {
            insert(bits, id as usize);
        }
    }

    fn walk(&self, g: &Grammar, at: usize, state: &[Stack], limit: u32, bits: &mut [u32]) -> u32 {
        let dist = |s: &[Stack]| s.iter().map(|s| dist(g, s)).min().unwrap_or(u32::MAX);
        let here = dist(state);
        // Room for plain text: the most characters a string on top of some stack can take.
        // Plain text never moves the end further away.
        let room = state
            .iter()
            .filter_map(|s| match s.last() {
                Some(&Frame::Str { node, chars, esc: Esc::None, need: 0, .. }) => Some(str_room(g, node, chars)),
                _ => None,
            })
            .max()
            .filter(|_| here <= limit);
        let mut far = 0;
        let (k0, k1) = self.nodes[at].kids;
        for k in k0..k1 {
            let kid = &self.nodes[k as usize];
            if kid.plain != u32::MAX && room.is_some_and(|r| kid.plain <= r) {
                self.set(bits, kid.sub);
                far = far.max(here);
                continue;
            }
            let next = feed_all(g, state, &[kid.byte]);
            if next.is_empty() {
                continue;
            }
            if kid.here.0 < kid.here.1 {
                let d = dist(&next);
                if d <= limit {
                    self.set(bits, kid.here);
                    far = far.max(d);
                }
            }
            if kid.kids.0 < kid.kids.1 {
                far = far.max(self.walk(g, k as usize, &next, limit, bits));
            }
        }
        far
    }
}
