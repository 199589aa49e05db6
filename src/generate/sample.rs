//! Choosing the next token from logits: repetition penalty, temperature, top-k, top-p,
//! min-p, reproducible by seed. Temperature 0 is greedy.

use crate::backend::select::{best_first, penalize, Draw, Penalty, SelectRow, MASKED, PICK_MARGIN};
use crate::error::{Error, Result};

/// Candidates selected when sampling without top-k (temperature, top-p, min-p): enough to
/// decide most steps (the rest of the vocabulary is read only when these cannot decide).
pub const P_CANDIDATES: usize = 256;

#[derive(Clone, Debug, PartialEq)]
pub struct SampleOptions {
    pub temperature: f32,
    /// Keep the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1: all).
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one (0: none).
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recent tokens by this (1: off).
    pub repetition_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// OpenAI's: subtracted from a generated token's logit per time it was generated so far,
    /// and once if it was generated at all (-2..2; 0: off; the prompt does not count).
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions { temperature: 0.0, top_k: 0, top_p: 1.0, min_p: 0.0, repetition_penalty: 1.0, repeat_last_n: 64, frequency_penalty: 0.0, presence_penalty: 0.0, seed: 0 }
    }
}

impl SampleOptions {
    pub fn validate(&self) -> Result<()> {
        let ok = self.temperature.is_finite()
            && self.temperature >= 0.0
            && (0.0..=1.0).contains(&self.top_p)
            && self.top_p > 0.0
            && (0.0..=1.0).contains(&self.min_p)
            && self.repetition_penalty.is_finite()
            && self.repetition_penalty > 0.0
            && (-2.0..=2.0).contains(&self.frequency_penalty)
            && (-2.0..=2.0).contains(&self.presence_penalty);
        if ok {
            Ok(())
        } else {
            Err(Error::config(format!(
                "sampling options out of range: temperature {} (>= 0), topP {} (0..1], minP {} [0..1], repetitionPenalty {} (> 0), frequencyPenalty {} and presencePenalty {} [-2..2]",
                self.temperature, self.top_p, self.min_p, self.repetition_penalty, self.frequency_penalty, self.presence_penalty
            )))
        }
    }
}

pub struct Sampler {
    opts: SampleOptions,
    state: u64,
}

impl Sampler {
    pub fn new(opts: SampleOptions) -> Result<Sampler> {
        opts.validate()?;
        let state = opts.seed ^ 0x9e37_79b9_7f4a_7c15;
        Ok(Sampler { opts, state })
    }

    /// The next uniform in [0, 1) (splitmix64) and the state after drawing it: a pick that
    /// turns out undecided does not advance the state.
    fn peek_uniform(&self) -> (f64, u64) {
        let state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64, state)
    }

    /// What this sampler asks of `ModelOps::top_k` for a step selecting `k` of `vocab`
    /// logits: its penalties over `history` (whose first `prompt_len` tokens are the
    /// prompt), the row's mass when `k` candidates are not all it may pick from, and its draw.
    pub fn select_row(&self, history: &[u32], prompt_len: usize, k: usize, vocab: usize) -> SelectRow {
        // All k = vocab candidates need no mass: they are the whole row.
        let inv_temp = if self.needs_mass() && k < vocab { 1.0 / self.temperature() } else { 0.0 };
        SelectRow { penalties: self.penalties(history, prompt_len), inv_temp, draw: Some(self.draw()), allowed: None, lse: false }
    }

    /// This sampler's next pick, for a backend to make (`Draw`).
    pub fn draw(&self) -> Draw {
        let o = &self.opts;
        Draw { temperature: o.temperature, top_k: o.top_k, top_p: o.top_p, min_p: o.min_p, uniform: self.peek_uniform().0 }
    }

    /// A backend picked this sampler's token with `draw()`: the stream moves on as `pick`
    /// would have moved it (greedy draws nothing).
    pub fn drawn(&mut self) {
        if self.opts.temperature > 0.0 {
            self.state = self.peek_uniform().1;
        }
    }

    /// One penalty per distinct token the penalties touch: the repetition penalty on the
    /// last `repeat_last_n` tokens of `history` (prompt included), the frequency and presence
    /// penalties on those generated (after the first `prompt_len`).
    pub fn penalties(&self, history: &[u32], prompt_len: usize) -> Vec<Penalty> {
        let o = &self.opts;
        // One entry per token (their order does not matter).
        let mut by: std::collections::BTreeMap<u32, Penalty> = std::collections::BTreeMap::new();
        let none = |t| Penalty { token: t, scale: 1.0, minus: 0.0 };
        if o.repetition_penalty != 1.0 {
            for &t in &history[history.len().saturating_sub(o.repeat_last_n)..] {
                by.entry(t).or_insert_with(|| none(t)).scale = o.repetition_penalty;
            }
        }
        if o.frequency_penalty != 0.0 || o.presence_penalty != 0.0 {
            let mut counts = std::collections::BTreeMap::new();
            for &t in &history[prompt_len.min(history.len())..] {
                *counts.entry(t).or_insert(0u32) += 1;
            }
            for (t, n) in counts {
                by.entry(t).or_insert_with(|| none(t)).minus = n as f32 * o.frequency_penalty + o.presence_penalty;
            }
        }
        by.into_values().collect()
    }

    /// How many of the best (token, logit) pairs usually decide this sampler's pick: 1 when
    /// greedy, top_k when set, else `P_CANDIDATES` with the row's mass (`needs_mass`).
    pub fn candidates_needed(&self) -> usize {
        match (self.opts.temperature == 0.0, self.opts.top_k) {
            (true, _) => 1,
            (false, 0) => P_CANDIDATES,
            (false, k) => k,
        }
    }

    /// Whether a selection of candidates must come with the row's mass (`Selection::mass`):
    /// sampling over the whole vocabulary (temperature, top-p, min-p without top-k).
    pub fn needs_mass(&self) -> bool {
        let o = &self.opts;
        o.temperature > 0.0 && o.top_k == 0
    }

    pub fn temperature(&self) -> f32 {
        self.opts.temperature
    }

    /// Picks a token; `history` is every token so far, its first `prompt_len` the prompt.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32], prompt_len: usize) -> u32 {
        penalize(logits, &self.penalties(history, prompt_len));
        self.pick_all(logits)
    }

    /// Picks a token from a whole row of already penalized logits.
    pub fn pick_all(&mut self, logits: &[f32]) -> u32 {
        let cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        // With every token present the pick is always decided.
        self.pick(cand, None).unwrap_or(0)
    }

    /// Picks a token from penalized (token, logit) candidates: the whole vocabulary, or at
    /// least `candidates_needed()` of the best ones in any order. With `mass` (the row's
    /// `Σ exp((l − max)/T)` over every token) the candidates may be only the best few: the
    /// pick is `None`, and no random number is used up, when they cannot decide: the top-p/
    /// min-p cut lies beyond them, or the draw lands beyond them or within `PICK_MARGIN` of a
    /// boundary (the mass comes from another summation order than the whole row's).
    pub fn pick(&mut self, mut cand: Vec<(u32, f32)>, mass: Option<f64>) -> Option<u32> {
        let o = &self.opts;
        if o.temperature == 0.0 {
            return Some(cand.iter().min_by(|a, b| best_first(a, b)).map_or(0, |c| c.0));
        }
        // The order of the logits themselves (dividing them by the temperature first could
        // merge two neighbours and reorder them): the order backends select in.
        cand.sort_unstable_by(best_first);
        // Tokens a constraint refused (probability 0) are never picked, not even by rounding.
        if let Some(n) = cand.iter().position(|c| c.1 <= MASKED).filter(|&n| n > 0) {
            cand.truncate(n);
        }
        if o.top_k > 0 {
            cand.truncate(o.top_k);
        }
        let (max, inv_t) = (cand[0].1 as f64, 1.0 / o.temperature as f64);
        let mut probs: Vec<f64> = cand.iter().map(|c| ((c.1 as f64 - max) * inv_t).exp()).collect();
        let total: f64 = mass.unwrap_or_else(|| probs.iter().sum());
        probs.iter_mut().for_each(|p| *p /= total);
        let mut keep = probs.len();
        // Complete candidates always decide a cut; partial ones only if it falls inside them.
        let partial = mass.is_some();
        let cut = o.top_p < 1.0 || o.min_p > 0.0;
        let mut decided = !partial;
        if o.top_p < 1.0 {
            // With partial candidates, a running sum within PICK_MARGIN of top_p could cross
            // it or not by the mass's summation order: the row decides that cut.
            let m = if partial { PICK_MARGIN } else { 0.0 };
            let mut acc = 0.0;
            if let Some(i) = probs.iter().position(|p| {
                acc += p;
                acc >= o.top_p as f64 - m
            }) {
                if acc < o.top_p as f64 + m {
                    return None;
                }
                keep = i + 1;
                decided = true;
            }
        }
        if o.min_p > 0.0 {
            let floor = probs[0] * o.min_p as f64;
            let above = probs.iter().take_while(|&&p| p >= floor).count().max(1);
            decided |= above < probs.len();
            keep = keep.min(above);
        }
        if cut && !decided {
            return None;
        }
        // Without a cut the whole vocabulary is kept: its probabilities sum to 1 by the mass.
        let total: f64 = if partial && !cut { 1.0 } else { probs[..keep].iter().sum() };
        let (u, state) = self.peek_uniform();
        let r = u * total;
        // The kept candidate whose interval [below, below + p) holds r, if any.
        let (mut below, mut inside) = (0.0, None);
        for (i, p) in probs[..keep].iter().enumerate() {
            if r < below + p {
                inside = Some(i);
                break;
            }
            below += p;
        }
        let pick = match inside {
            Some(i) => i,
            // Past the candidates without a cut: the pick lies in the rest of the row.
            None if partial && !cut => return None,
            // Past the last kept by rounding: the last kept.
            None => keep - 1,
        };
        if partial && inside.is_some() {
            let lower_edge = pick > 0 && r - below < PICK_MARGIN * total;
            let upper_edge = (pick + 1 < keep || !cut) && below + probs[pick] - r < PICK_MARGIN * total;
            if lower_edge || upper_edge {
                return None;
            }
        }
        self.state = state;
        Some(cand[pick].0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::select::top_k;

    #[test]
    fn greedy_seeded_and_filtered() {
        let logits = vec![0.1, 2.0, 1.9, -1.0, 0.5];
        let mut s = Sampler::new(SampleOptions::default()).unwrap();
        assert_eq!(s.sample(&mut logits.clone(), &[], 0), 1);
        // Same seed, same draws; top_k = 2 only ever yields tokens 1 and 2.
        let opts = SampleOptions { temperature: 1.0, top_k: 2, seed: 7, ..Default::default() };
        let draw = |o: &SampleOptions| {
            let mut s = Sampler::new(o.clone()).unwrap();
            (0..200).map(|_| s.sample(&mut logits.clone(), &[], 0)).collect::<Vec<_>>()
        };
        let a = draw(&opts);
        assert_eq!(a, draw(&opts));
        assert!(a.iter().all(|&t| t == 1 || t == 2) && a.contains(&1) && a.contains(&2));
        // top_p small keeps only the best; min_p 0.95 too.
        assert!(draw(&SampleOptions { top_p: 0.01, ..opts.clone() }).iter().all(|&t| t == 1));
        assert!(draw(&SampleOptions { top_k: 0, min_p: 0.95, ..opts.clone() }).iter().all(|&t| t == 1));
        // A strong penalty on token 1 hands greedy to token 2.
        let mut s = Sampler::new(SampleOptions { repetition_penalty: 2.0, ..Default::default() }).unwrap();
        assert_eq!(s.sample(&mut logits.clone(), &[1], 0), 2);
        assert!(Sampler::new(SampleOptions { temperature: f32::NAN, ..Default::default() }).is_err());
    }

    /// The three penalties on random logits, checked against OpenAI's and CTRL's formulas
    /// written out per token: the repetition penalty over the last n tokens (prompt
    /// included), then count × frequency + presence for tokens generated (prompt excluded).
    #[test]
    fn penalties_follow_their_formulas() {
        let mut seed = 3u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let vocab = 37;
        let logits: Vec<f32> = (0..vocab).map(|_| next(2000) as f32 / 100.0 - 10.0).collect();
        let history: Vec<u32> = (0..60).map(|_| next(vocab as u64) as u32).collect();
        for (rep, last_n, freq, pres, prompt_len) in [(1.3, 16, 0.0, 0.0, 20), (1.0, 64, 0.7, 0.0, 20), (1.0, 64, 0.0, -1.5, 45), (1.7, 9, 1.1, 0.4, 50), (1.2, 200, -0.3, 2.0, 0)] {
            let o = SampleOptions { repetition_penalty: rep, repeat_last_n: last_n, frequency_penalty: freq, presence_penalty: pres, ..Default::default() };
            let mut got = logits.clone();
            crate::backend::select::penalize(&mut got, &Sampler::new(o).unwrap().penalties(&history, prompt_len));
            for t in 0..vocab as u32 {
                let mut want = logits[t as usize];
                if history[history.len().saturating_sub(last_n)..].contains(&t) {
                    want = if want > 0.0 { want / rep } else { want * rep };
                }
                let count = history[prompt_len..].iter().filter(|&&h| h == t).count();
                if count > 0 {
                    want -= count as f32 * freq + pres;
                }
                assert_eq!(got[t as usize], want, "token {t}, {rep} {last_n} {freq} {pres} {prompt_len}");
            }
        }
        let bad = SampleOptions { frequency_penalty: 2.5, ..Default::default() };
        assert!(Sampler::new(bad).is_err());
    }

    /// Top-p/min-p and plain temperature sampling from the best P_CANDIDATES and the row's
    /// mass pick what the whole row picks, drawing the same random numbers; undecidable rows
    /// say so without using up a draw.
    #[test]
    fn candidates_with_mass_pick_as_the_whole_row() {
        let mut seed = 1u64;
        let mut logits = |n: usize, spread: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    // Exponentially distributed: a few large logits, a long tail, like an LM's.
                    -spread * (((seed >> 40) as f32 + 0.5) / (1u64 << 24) as f32).ln()
                })
                .collect()
        };
        let (mut decided, mut undecided) = (0, 0);
        for (i, o) in [
            SampleOptions { temperature: 0.7, top_p: 0.9, ..Default::default() },
            SampleOptions { temperature: 1.0, min_p: 0.05, ..Default::default() },
            SampleOptions { temperature: 1.3, top_p: 0.95, min_p: 0.02, ..Default::default() },
            SampleOptions { temperature: 0.8, ..Default::default() },
            SampleOptions { temperature: 1.5, ..Default::default() },
        ]
        .into_iter()
        .enumerate()
        {
            for spread in [0.6, 1.2, 2.5] {
                let row = logits(3001, spread);
                let opts = SampleOptions { seed: i as u64, ..o.clone() };
                let (mut whole, mut part) = (Sampler::new(opts.clone()).unwrap(), Sampler::new(opts).unwrap());
                assert!(part.needs_mass());
                for _ in 0..50 {
                    let cands = top_k(&row, P_CANDIDATES);
                    let max = cands[0].1;
                    let inv_t = 1.0 / part.temperature();
                    // The backends' masses are f32 sums: off by up to ~1e-5 relative.
                    let exact: f64 = row.iter().map(|&l| (((l - max) * inv_t) as f64).exp()).sum();
                    let mass = exact * [1.0, 1.0 + 1e-5, 1.0 - 1e-5][decided % 3];
                    match part.pick(cands, Some(mass)) {
                        Some(t) => {
                            assert_eq!(t, whole.pick_all(&row), "{i} spread {spread}");
                            decided += 1;
                        }
                        None => {
                            // Nothing was drawn: the whole row, picked by the same sampler, keeps step.
                            assert_eq!(part.pick_all(&row), whole.pick_all(&row));
                            undecided += 1;
                        }
                    }
                }
            }
        }
        assert!(decided > 200 && undecided > 40, "{decided} decided, {undecided} not");
    }

    /// A top-p level at a running sum of the candidates: a mass 1e-5 off (an f32 sum) moves
    /// the cut by one candidate, so the selection leaves it to the whole row.
    #[test]
    fn a_top_p_cut_at_a_running_sum_reads_the_row() {
        let row: Vec<f32> = (0..3001).map(|i| -((i as f32 * 0.37).sin() + 1.2) * (1.0 + i as f32 / 300.0)).collect();
        let cands = top_k(&row, P_CANDIDATES);
        let max = cands[0].1 as f64;
        let exact: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
        let probs: Vec<f64> = cands.iter().map(|c| (c.1 as f64 - max).exp() / exact).collect();
        for j in [3, 8, 20] {
            let top_p = probs[..=j].iter().sum::<f64>() as f32;
            let opts = SampleOptions { temperature: 1.0, top_p, seed: j as u64, ..Default::default() };
            for off in [1.0 + 1e-5, 1.0 - 1e-5] {
                let (mut whole, mut part) = (Sampler::new(opts.clone()).unwrap(), Sampler::new(opts.clone()).unwrap());
                for _ in 0..50 {
                    let want = whole.pick_all(&row);
                    let got = part.pick(cands.clone(), Some(exact * off)).unwrap_or_else(|| part.pick_all(&row));
                    assert_eq!(got, want, "top-p at candidate {j}, mass x{off}");
                }
            }
        }
    }

    /// Plain temperature over a flat top (600 equal logits, the rest far below): draws past
    /// the 256 candidates, often just past them, read the row; all others pick as it does.
    #[test]
    fn a_draw_past_the_candidates_reads_the_row() {
        let row: Vec<f32> = (0..3000).map(|i| if i % 5 == 0 { 0.0 } else { -10.0 }).collect();
        let opts = SampleOptions { temperature: 1.0, seed: 3, ..Default::default() };
        let (mut whole, mut part) = (Sampler::new(opts.clone()).unwrap(), Sampler::new(opts).unwrap());
        let mass: f64 = row.iter().map(|&l| (l as f64).exp()).sum();
        let (mut decided, mut undecided) = (0, 0);
        for _ in 0..5000 {
            let want = whole.pick_all(&row);
            match part.pick(top_k(&row, P_CANDIDATES), Some(mass)) {
                Some(t) => (assert_eq!(t, want), decided += 1),
                None => (assert_eq!(part.pick_all(&row), want), undecided += 1),
            };
        }
        // 256 of the 600 equal tokens are candidates: about 43% of the draws land inside.
        assert!((1900..2400).contains(&decided) && undecided > 2500, "{decided} decided, {undecided} not");
    }
}
