//! The grammar as a pushdown automaton over bytes: a stack of frames (the document, then one
//! frame per open value), fed one byte at a time. Where the grammar cannot decide from one
//! byte (anyOf, a literal that is a prefix of another, the end of a number) the stack forks:
//! the state is the set of stacks still alive. Every alive stack can still be completed
//! (numbers, strings, arrays and objects always can), so a token is allowed exactly when
//! feeding its bytes leaves some stack alive.

use super::grammar::{key_len, Grammar, LitSet, Node, NodeId, MAX_WS};
use super::number::{Num, Spec};

/// A completed key that is not a declared property (`additionalProperties`).
pub const FREE_KEY: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjPhase {
    Open,
    /// A key frame is on top.
    Key,
    /// After the key of property `p`, before ':'.
    Colon(u32),
    /// Property `p`'s value frame is on top.
    Value(u32),
    After,
    Comma,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArrPhase {
    Open,
    Value,
    After,
    Comma,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Frame {
    /// The document: before its value, or after it (nothing may follow).
    Doc { done: bool },
    /// A value of `node` expected, after `ws` bytes of whitespace.
    Value { node: NodeId, ws: u8 },
    /// Literals of `node` (a Literals node, or an Object's keys) matched up to `pos`: those
    /// in `lo..hi` with a tag in `tags` are still possible.
    Lit { node: NodeId, lo: u32, hi: u32, pos: u32, tags: (u32, u32) },
    /// Inside a string of `node` (a Str node, or an Object's free key): `chars` so far, an
    /// escape in progress (`esc`), UTF-8 continuation bytes still `need`ed in `lo..=hi`.
    Str { node: NodeId, chars: u32, esc: Esc, need: u8, lo: u8, hi: u8 },
    Num { node: NodeId, n: Num },
    Obj { node: NodeId, next: u32, phase: ObjPhase, ws: u8 },
    Arr { node: NodeId, count: u32, phase: ArrPhase, ws: u8 },
}

/// Where a string's escape stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Esc {
    None,
    /// After `\`.
    Slash,
    /// After `\u` and `n` hex digits (`d`: the first was d/D, so no surrogate may follow).
    Hex { n: u8, d: bool },
}

pub type Stack = Vec<Frame>;

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

/// The stack a document starts with.
pub fn start(g: &Grammar) -> Stack {
    vec![Frame::Doc { done: false }, Frame::Value { node: g.root, ws: 0 }]
}

fn lits(g: &Grammar, node: NodeId) -> &LitSet {
    match g.node(node) {
        Node::Literals(s) => s,
        Node::Object { keys, .. } => keys,
        _ => unreachable!("a literal frame over a node without literals"),
    }
}

/// A string frame's length limits (a free key has none).
fn str_limits(g: &Grammar, node: NodeId) -> (u32, u32) {
    match g.node(node) {
        Node::Str { min, max } => (*min, *max),
        _ => (0, u32::MAX),
    }
}

fn spec(g: &Grammar, node: NodeId) -> Spec {
    match g.node(node) {
        Node::Number { integer, min, max } => Spec { integer: *integer, min: *min, max: *max },
        _ => unreachable!("a number frame over a non-number node"),
    }
}

/// The top frame finished (`tag`: the literal's tag, or `FREE_KEY`): pops it and moves its
/// parent on.
fn complete(mut st: Stack, tag: u32) -> Stack {
    st.pop();
    match st.last_mut() {
        Some(Frame::Doc { done }) => *done = true,
        Some(Frame::Obj { next, phase, ws, .. }) => {
            *ws = 0;
            *phase = match *phase {
                ObjPhase::Key => ObjPhase::Colon(tag),
                ObjPhase::Value(p) => {
                    if p != FREE_KEY {
                        *next = p + 1;
                    }
                    ObjPhase::After
                }
                p => unreachable!("a child finished in object phase {p:?}"),
            };
        }
        Some(Frame::Arr { count, phase, ws, .. }) => {
            (*count, *phase, *ws) = (*count + 1, ArrPhase::After, 0);
        }
        f => unreachable!("a child finished under {f:?}"),
    }
    st
}

/// The literals of `lo..hi` with a tag within `tags`, whose bytes continue with `b` at `pos`.
fn narrow(set: &LitSet, lo: u32, hi: u32, pos: u32, b: u8) -> (u32, u32) {
    let at = |i: u32| set.lits[i as usize].0.get(pos as usize).copied();
    // Sorted: the literals that have byte `b` at `pos` are contiguous.
    let a = (lo..hi).find(|&i| at(i) == Some(b)).unwrap_or(hi);
    let z = (a..hi).find(|&i| at(i) != Some(b)).unwrap_or(hi);
    (a, z)
}

fn in_tags(set: &LitSet, i: u32, tags: (u32, u32)) -> bool {
    (tags.0..=tags.1).contains(&set.lits[i as usize].1)
}

/// Feeds byte `b` to stack `st`; every stack that survives goes into `out`.
pub fn feed(g: &Grammar, mut st: Stack, b: u8, out: &mut Vec<Stack>) {
    let Some(top) = st.last().cloned() else { return };
    let top_mut = |st: &mut Stack, f: Frame| *st.last_mut().expect("a top frame") = f;
    match top {
        Frame::Doc { .. } => {}
        Frame::Value { node, ws } => {
            if is_ws(b) {
                if ws < MAX_WS {
                    top_mut(&mut st, Frame::Value { node, ws: ws + 1 });
                    out.push(st);
                }
                return;
            }
            match g.node(node) {
                Node::AnyOf(alts) => {
                    for &a in alts {
                        let mut s = st.clone();
                        top_mut(&mut s, Frame::Value { node: a, ws });
                        feed(g, s, b, out);
                    }
                }
                Node::Literals(set) => {
                    top_mut(&mut st, Frame::Lit { node, lo: 0, hi: set.lits.len() as u32, pos: 0, tags: (0, 0) });
                    feed(g, st, b, out);
                }
                Node::Str { .. } if b == b'"' => {
                    top_mut(&mut st, Frame::Str { node, chars: 0, esc: Esc::None, need: 0, lo: 0, hi: 0 });
                    out.push(st);
                }
                Node::Number { .. } => {
                    top_mut(&mut st, Frame::Num { node, n: Num::start() });
                    feed(g, st, b, out);
                }
                Node::Object { .. } if b == b'{' => {
                    top_mut(&mut st, Frame::Obj { node, next: 0, phase: ObjPhase::Open, ws: 0 });
                    out.push(st);
                }
                Node::Array { .. } if b == b'[' => {
                    top_mut(&mut st, Frame::Arr { node, count: 0, phase: ArrPhase::Open, ws: 0 });
                    out.push(st);
                }
                _ => {}
            }
        }
        Frame::Lit { node, lo, hi, pos, tags } => {
            let set = lits(g, node);
            // The shortest literal of a range sorts first: only it can end here.
            let ends = lo < hi && set.lits[lo as usize].0.len() == pos as usize && in_tags(set, lo, tags);
            let (a, z) = narrow(set, lo, hi, pos, b);
            let mut alive = (a..z).filter(|&i| in_tags(set, i, tags));
            if let Some(first) = alive.next() {
                let pos = pos + 1;
                let done = alive.next().is_none() && set.lits[first as usize].0.len() == pos as usize;
                if done {
                    // Nothing longer can follow: finished now, not at the next byte.
                    out.push(complete(st.clone(), set.lits[first as usize].1));
                } else {
                    let mut s = st.clone();
                    top_mut(&mut s, Frame::Lit { node, lo: a, hi: z, pos, tags });
                    out.push(s);
                }
            }
            if ends {
                feed(g, complete(st, set.lits[lo as usize].1), b, out);
            }
        }
        Frame::Str { node, chars, esc, need, lo, hi } => {
            let (min, max) = str_limits(g, node);
            let mut next = |chars, esc, need, lo, hi| {
                top_mut(&mut st, Frame::Str { node, chars, esc, need, lo, hi });
                out.push(std::mem::take(&mut st));
            };
            if need > 0 {
                if (lo..=hi).contains(&b) {
                    next(chars, esc, need - 1, 0x80, 0xbf);
                }
                return;
            }
            let hex = b.is_ascii_hexdigit();
            match esc {
                Esc::Slash => match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => next(chars + 1, Esc::None, 0, 0, 0),
                    b'u' => next(chars, Esc::Hex { n: 0, d: false }, 0, 0, 0),
                    _ => {}
                },
                // \uD800-\uDFFF (surrogates) are refused: they would need a pair, and a
                // pair would count as two characters here but one in a validator.
                Esc::Hex { n: 0, .. } if hex => next(chars, Esc::Hex { n: 1, d: b.eq_ignore_ascii_case(&b'd') }, 0, 0, 0),
                Esc::Hex { n: 1, d } if hex && !(d && matches!(b.to_ascii_lowercase(), b'8'..=b'9' | b'a'..=b'f')) => next(chars, Esc::Hex { n: 2, d: false }, 0, 0, 0),
                Esc::Hex { n: 2, .. } if hex => next(chars, Esc::Hex { n: 3, d: false }, 0, 0, 0),
                Esc::Hex { n: 3, .. } if hex => next(chars + 1, Esc::None, 0, 0, 0),
                Esc::Hex { .. } => {}
                Esc::None => match b {
                    b'"' if chars >= min => out.push(complete(st, FREE_KEY)),
                    b'"' => {}
                    _ if chars >= max => {}
                    b'\\' => next(chars, Esc::Slash, 0, 0, 0),
                    0..=0x1f => {}
                    0x20..=0x7f => next(chars + 1, Esc::None, 0, 0, 0),
                    // UTF-8 lead bytes, with the ranges their first continuation byte needs
                    // (no overlong forms, no surrogates, nothing past U+10FFFF).
                    0xc2..=0xdf => next(chars + 1, Esc::None, 1, 0x80, 0xbf),
                    0xe0 => next(chars + 1, Esc::None, 2, 0xa0, 0xbf),
                    0xed => next(chars + 1, Esc::None, 2, 0x80, 0x9f),
                    0xe1..=0xef => next(chars + 1, Esc::None, 2, 0x80, 0xbf),
                    0xf0 => next(chars + 1, Esc::None, 3, 0x90, 0xbf),
                    0xf4 => next(chars + 1, Esc::None, 3, 0x80, 0x8f),
                    0xf1..=0xf3 => next(chars + 1, Esc::None, 3, 0x80, 0xbf),
                    _ => {}
                },
            }
        }
        Frame::Num { node, n } => {
            let s = spec(g, node);
            match n.feed(&s, b) {
                Some(n) => {
                    top_mut(&mut st, Frame::Num { node, n });
                    out.push(st);
                }
                None if n.complete(&s) => feed(g, complete(st, 0), b, out),
                None => {}
            }
        }
        Frame::Obj { node, next, phase, ws } => {
            let Node::Object { props, keys, additional } = g.node(node) else { unreachable!("an object frame over a non-object") };
            let required_left = props[next as usize..].iter().any(|p| p.1);
            if is_ws(b) && !matches!(phase, ObjPhase::Key | ObjPhase::Value(_)) {
                if ws < MAX_WS {
                    top_mut(&mut st, Frame::Obj { node, next, phase, ws: ws + 1 });
                    out.push(st);
                }
                return;
            }
            match (phase, b) {
                (ObjPhase::Open | ObjPhase::Comma, b'"') => {
                    let n = props.len() as u32;
                    if next < n {
                        // Declared keys from `next` up to the first required one.
                        let last = (next..n).find(|&i| props[i as usize].1).unwrap_or(n - 1);
                        let mut s = st.clone();
                        top_mut(&mut s, Frame::Obj { node, next, phase: ObjPhase::Key, ws: 0 });
                        s.push(Frame::Lit { node, lo: 0, hi: keys.lits.len() as u32, pos: 0, tags: (next, last) });
                        feed(g, s, b, out);
                    }
                    if additional.is_some() {
                        top_mut(&mut st, Frame::Obj { node, next, phase: ObjPhase::Key, ws: 0 });
                        st.push(Frame::Str { node, chars: 0, esc: Esc::None, need: 0, lo: 0, hi: 0 });
                        out.push(st);
                    }
                }
                (ObjPhase::Open | ObjPhase::After, b'}') if !required_left => out.push(complete(st, 0)),
                (ObjPhase::After, b',') if (next as usize) < props.len() || additional.is_some() => {
                    top_mut(&mut st, Frame::Obj { node, next, phase: ObjPhase::Comma, ws: 0 });
                    out.push(st);
                }
                (ObjPhase::Colon(p), b':') => {
                    let value = if p == FREE_KEY { additional.expect("a free key has a schema") } else { props[p as usize].0 };
                    top_mut(&mut st, Frame::Obj { node, next, phase: ObjPhase::Value(p), ws: 0 });
                    st.push(Frame::Value { node: value, ws: 0 });
                    out.push(st);
                }
                _ => {}
            }
        }
        Frame::Arr { node, count, phase, ws } => {
            let Node::Array { items, min, max } = *g.node(node) else { unreachable!("an array frame over a non-array") };
            if is_ws(b) && phase != ArrPhase::Value {
                if ws < MAX_WS {
                    top_mut(&mut st, Frame::Arr { node, count, phase, ws: ws + 1 });
                    out.push(st);
                }
                return;
            }
            match (phase, b) {
                (ArrPhase::Open | ArrPhase::After, b']') if count >= min => out.push(complete(st, 0)),
                (ArrPhase::After, b',') if count < max => {
                    top_mut(&mut st, Frame::Arr { node, count, phase: ArrPhase::Comma, ws: 0 });
                    out.push(st);
                }
                (ArrPhase::Open, _) | (ArrPhase::Comma, _) if count < max && b != b']' => {
                    top_mut(&mut st, Frame::Arr { node, count, phase: ArrPhase::Value, ws: 0 });
                    st.push(Frame::Value { node: items, ws: 0 });
                    feed(g, st, b, out);
                }
                _ => {}
            }
        }
    }
}

/// Whether the document may end with stack `st` (its value complete; a number or literal
/// that could still go on ends here).
pub fn can_end(g: &Grammar, st: &Stack) -> bool {
    match st.last() {
        Some(Frame::Doc { done }) => *done,
        Some(Frame::Num { node, n }) if n.complete(&spec(g, *node)) => can_end(g, &complete(st.clone(), 0)),
        Some(&Frame::Lit { node, lo, hi, pos, tags }) => {
            let set = lits(g, node);
            lo < hi && set.lits[lo as usize].0.len() == pos as usize && in_tags(set, lo, tags) && can_end(g, &complete(st.clone(), set.lits[lo as usize].1))
        }
        _ => false,
    }
}

/// Feeds `bytes` to every stack of `state`; the stacks alive after them (deduplicated).
pub fn feed_all(g: &Grammar, state: &[Stack], bytes: &[u8]) -> Vec<Stack> {
    let mut cur: Vec<Stack> = state.to_vec();
    for &b in bytes {
        let mut next = Vec::with_capacity(cur.len());
        for s in cur {
            feed(g, s, b, &mut next);
        }
        dedup(&mut next);
        if next.is_empty() {
            return next;
        }
        cur = next;
    }
    cur
}

pub fn dedup(v: &mut Vec<Stack>) {
    if v.len() > 1 {
        let mut seen = std::collections::HashSet::with_capacity(v.len());
        v.retain(|s| seen.insert(s.clone()));
    }
}

/// Characters a string frame of `node` with `chars` so far may still take.
pub fn str_room(g: &Grammar, node: NodeId, chars: u32) -> u32 {
    str_limits(g, node).1.saturating_sub(chars)
}

/// Fewest bytes that complete the document from stack `st`: what each open frame still
/// needs (a string's closing quote and missing characters, an object's required properties
/// not yet written and its brace, ...). Exact for what lies on the stack, an upper bound
/// where a key in progress may belong to several properties.
pub fn dist(g: &Grammar, st: &[Frame]) -> u32 {
    let min = |n: NodeId| g.min_len[n as usize];
    let mut total = 0u32;
    for (i, f) in st.iter().enumerate() {
        let d = match *f {
            Frame::Doc { .. } => 0,
            Frame::Value { node, .. } => min(node),
            Frame::Lit { node, lo, hi, pos, tags } => {
                let set = lits(g, node);
                (lo..hi).filter(|&i| in_tags(set, i, tags)).map(|i| set.lits[i as usize].0.len() as u32 - pos).min().unwrap_or(0)
            }
            Frame::Str { node, chars, esc, need, .. } => {
                let (lo, _) = str_limits(g, node);
                // An escape in progress finishes a character not counted yet.
                let (esc, chars) = match esc {
                    Esc::None => (0, chars),
                    Esc::Slash => (1, chars + 1),
                    Esc::Hex { n, .. } => (4 - n as u32, chars + 1),
                };
                lo.saturating_sub(chars) + esc + need as u32 + 1
            }
            Frame::Num { node, n } => n.min_extra(&spec(g, node)),
            Frame::Obj { node, next, phase, .. } => {
                let Node::Object { props, keys, additional } = g.node(node) else { unreachable!("an object frame over a non-object") };
                // Required members from property `k` on, each after a comma, then the brace.
                let members = |k: u32| -> u32 {
                    let req = props.iter().enumerate().skip(k as usize).filter(|p| p.1 .1);
                    req.fold(1u32, |acc, (j, p)| acc.saturating_add(key_len(keys, j as u32) + 2).saturating_add(min(p.0)))
                };
                let value = |p: u32| if p == FREE_KEY { additional.map_or(1, min) } else { min(props[p as usize].0) };
                let after = |p: u32| if p == FREE_KEY { members(next) } else { members(p + 1) };
                match phase {
                    // No comma before the first member.
                    ObjPhase::Open => members(next).saturating_sub((props[next as usize..].iter().any(|p| p.1)) as u32),
                    // The key on top may still become several properties': the cheapest way on
                    // (the rest of its key, the colon, its value, the members after it).
                    ObjPhase::Key => {
                        let on = |key_left: u32, p: u32| (key_left + 1).saturating_add(value(p)).saturating_add(after(p));
                        return total.saturating_add(match st.get(i + 1) {
                            Some(&Frame::Lit { lo, hi, pos, tags, .. }) => {
                                (lo..hi).filter(|&j| in_tags(keys, j, tags)).map(|j| on(keys.lits[j as usize].0.len() as u32 - pos, keys.lits[j as usize].1)).min().unwrap_or(u32::MAX)
                            }
                            Some(Frame::Str { .. }) => on(dist(g, &st[i + 1..]), FREE_KEY),
                            _ => unreachable!("an object in its key phase without a key on top"),
                        });
                    }
                    ObjPhase::Colon(p) => 1u32.saturating_add(value(p)).saturating_add(after(p)),
                    ObjPhase::Value(p) => after(p),
                    ObjPhase::After => members(next),
                    ObjPhase::Comma => {
                        if props[next as usize..].iter().any(|p| p.1) {
                            members(next) - 1
                        } else {
                            // A comma was written: some member must follow.
                            let declared = (next..props.len() as u32).map(|j| key_len(keys, j) + 1 + min(props[j as usize].0)).min();
                            let free = additional.map(|a| 3 + min(a));
                            declared.into_iter().chain(free).min().unwrap_or(0) + 1
                        }
                    }
                }
            }
            Frame::Arr { node, count, phase, .. } => {
                let Node::Array { items, min: lo, .. } = *g.node(node) else { unreachable!("an array frame over a non-array") };
                let item = min(items);
                let left = |done: u32| lo.saturating_sub(done);
                match phase {
                    ArrPhase::Open => match left(count) {
                        0 => 1,
                        r => r.saturating_mul(item + 1),
                    },
                    ArrPhase::After => 1 + left(count).saturating_mul(item + 1),
                    ArrPhase::Comma => left(count).max(1).saturating_mul(item + 1),
                    ArrPhase::Value => 1 + left(count + 1).saturating_mul(item + 1),
                }
            }
        };
        total = total.saturating_add(d);
    }
    total
}
