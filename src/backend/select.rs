//! Selecting the next token's candidates, the part of sampling a backend does: the
//! repetition penalty, the k best logits (and the row's softmax mass), and, where a backend
//! can be sure of it, the sampler's pick itself (`Draw`). The sampler (`generate::sample`)
//! asks for these and decides the rest.

use std::rc::Rc;

/// One row's request to `ModelOps::top_k`.
#[derive(Clone, Debug)]
pub struct SelectRow {
    /// The penalties on tokens already seen, at most one per distinct token.
    pub penalties: Vec<Penalty>,
    /// When > 0, also the row's mass `Σ exp((l − max)·inv_temp)` over every token, which
    /// lets sampling without top-k (temperature, top-p, min-p) decide from the best
    /// candidates alone.
    pub inv_temp: f32,
    /// The sampler's next pick, for a backend that picks from its selection itself.
    pub draw: Option<Draw>,
    /// A bitset over the vocabulary of the tokens that may be picked (structured output):
    /// the others' logits become `MASKED` after the penalty, before the selection.
    pub allowed: Option<Rc<[u32]>>,
    /// Also the row's log-sum-exp at temperature 1 (`Selection::lse`), for log-probabilities.
    pub lse: bool,
}

/// A penalty on one token's logit: the repetition penalty's `scale` (CTRL's: a positive
/// logit divided by it, a negative one multiplied; 1: none), then `minus` subtracted
/// (OpenAI's frequency and presence penalties: count × frequency + presence).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Penalty {
    pub token: u32,
    pub scale: f32,
    pub minus: f32,
}

impl Penalty {
    pub fn apply(&self, l: f32) -> f32 {
        (if l > 0.0 { l / self.scale } else { l * self.scale }) - self.minus
    }
}

impl SelectRow {
    /// No penalty, no mass, no draw: plain selection (greedy, top-k).
    pub fn plain() -> SelectRow {
        SelectRow { penalties: vec![], inv_temp: 0.0, draw: None, allowed: None, lse: false }
    }

    /// This row's penalty, then its mask, in place: what a backend does before selecting.
    pub fn apply(&self, logits: &mut [f32]) {
        penalize(logits, &self.penalties);
        if let Some(bits) = &self.allowed {
            mask(logits, bits);
        }
    }
}

/// A row's answer from `ModelOps::top_k`: the token its draw picks (the backend was sure
/// of it), or the selection for the sampler to pick from.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    Token(u32),
    Select(Selection),
}

impl Choice {
    /// The selection, when the backend left the pick to the sampler.
    pub fn selection(self) -> Option<Selection> {
        match self {
            Choice::Select(s) => Some(s),
            Choice::Token(_) => None,
        }
    }
}

/// A row's selection: the best pairs, best first, the mass when it was asked for, and the
/// log-sum-exp of the row's (penalized, masked) logits when asked for (`SelectRow::lse`).
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub cands: Vec<(u32, f32)>,
    pub mass: Option<f64>,
    pub lse: Option<f64>,
}

/// How close (relative) a draw may come to a candidate boundary and still be decided from
/// a selection: the backends' row masses differ from the whole row's sum by ~1e-6.
pub const PICK_MARGIN: f64 = 1e-4;

/// The same for a backend picking in f32 from its selection (`Draw`): the sampler's plus
/// what f32 sums of up to 256 probabilities may be off by (~1.5e-5 at worst; WGSL's `exp`
/// adds a few ulps more), so that whatever the backend decides, the sampler decides alike.
pub const DRAW_MARGIN: f32 = (PICK_MARGIN + 5e-5) as f32;

/// A sampler's next pick as a backend can make it from its own selection (the GPU does, in
/// pick.wgsl, so that one u32 per row comes back): the options and the uniform `pick` would
/// draw next. The backend returns a token only where it is sure the sampler would pick the
/// same one; then `Sampler::drawn` moves the stream on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub uniform: f64,
}

/// The logit of a token a constraint refuses: finite (WGSL need not handle infinities), so
/// far below any real logit that its probability is 0 at any temperature. Samplers drop
/// candidates at or below it (mask.wgsl and pick.wgsl use the same value).
pub const MASKED: f32 = -1e30;

/// Whether token `t` is in a bitset over the vocabulary (bit `t % 32` of word `t / 32`).
pub fn has(bits: &[u32], t: usize) -> bool {
    bits.get(t / 32).is_some_and(|w| w >> (t % 32) & 1 == 1)
}

/// Adds token `t` to a bitset over the vocabulary.
pub fn insert(bits: &mut [u32], t: usize) {
    bits[t / 32] |= 1 << (t % 32);
}

/// Sets every logit whose token is not in `allowed` (a bitset) to `MASKED`.
pub fn mask(logits: &mut [f32], allowed: &[u32]) {
    for (i, l) in logits.iter_mut().enumerate() {
        if !has(allowed, i) {
            *l = MASKED;
        }
    }
}

/// Applies each penalty to its token's logit.
pub fn penalize(logits: &mut [f32], penalties: &[Penalty]) {
    for p in penalties {
        if let Some(l) = logits.get_mut(p.token as usize) {
            *l = p.apply(*l);
        }
    }
}

/// `ln Σ exp(l)` over a row, in f64 from its max (a row of MASKED logits only: MASKED).
pub fn lse(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + row.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln()
}

/// The candidates' order everywhere (the GPU's top_k.wgsl too): higher logit first, ties
/// to the lower id.
pub fn best_first(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The `k` best (token, logit) pairs of `logits`, best first (ties to the lower id).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
    let k = k.min(cand.len());
    if k > 0 && k < cand.len() {
        cand.select_nth_unstable_by(k - 1, best_first);
        cand.truncate(k);
    }
    cand.sort_unstable_by(best_first);
    cand
}
