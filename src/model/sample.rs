//! Choosing the next token from logits: repetition penalty, temperature, top-k, top-p,
//! min-p, reproducible by seed. Temperature 0 is greedy.

use crate::error::{Error, Result};

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
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions { temperature: 0.0, top_k: 0, top_p: 1.0, min_p: 0.0, repetition_penalty: 1.0, repeat_last_n: 64, seed: 0 }
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
            && self.repetition_penalty > 0.0;
        if ok {
            Ok(())
        } else {
            Err(Error::config(format!(
                "sampling options out of range: temperature {} (>= 0), topP {} (0..1], minP {} [0..1], repetitionPenalty {} (> 0)",
                self.temperature, self.top_p, self.min_p, self.repetition_penalty
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

    /// Uniform in [0, 1) (splitmix64).
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn penalty(&self) -> f32 {
        self.opts.repetition_penalty
    }

    /// The distinct recent tokens whose logits the repetition penalty scales.
    pub fn penalized(&self, history: &[u32]) -> Vec<u32> {
        if self.opts.repetition_penalty == 1.0 {
            return vec![];
        }
        let mut seen = std::collections::HashSet::new();
        history[history.len().saturating_sub(self.opts.repeat_last_n)..].iter().copied().filter(|&t| seen.insert(t)).collect()
    }

    /// How many of the best (token, logit) pairs decide this sampler's pick: 1 when greedy,
    /// top_k when set; `None` when it needs the whole distribution.
    pub fn candidates_needed(&self) -> Option<usize> {
        match (self.opts.temperature == 0.0, self.opts.top_k) {
            (true, _) => Some(1),
            (false, 0) => None,
            (false, k) => Some(k),
        }
    }

    /// Picks a token; `history` is every token so far (prompt included).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        penalize(logits, self.opts.repetition_penalty, &self.penalized(history));
        let cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        self.pick(cand)
    }

    /// Picks a token from penalized (token, logit) candidates: the whole vocabulary, or at
    /// least `candidates_needed()` of the best ones in any order.
    pub fn pick(&mut self, mut cand: Vec<(u32, f32)>) -> u32 {
        let o = &self.opts;
        if o.temperature == 0.0 {
            return cand.iter().min_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))).map_or(0, |c| c.0);
        }
        cand.iter_mut().for_each(|c| c.1 /= o.temperature);
        cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if o.top_k > 0 {
            cand.truncate(o.top_k);
        }
        let max = cand[0].1;
        let mut probs: Vec<f64> = cand.iter().map(|c| ((c.1 - max) as f64).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        let mut keep = probs.len();
        if o.top_p < 1.0 {
            let mut acc = 0.0;
            keep = probs.iter().position(|p| {
                acc += p;
                acc >= o.top_p as f64
            }).map_or(keep, |i| i + 1);
        }
        if o.min_p > 0.0 {
            let floor = probs[0] * o.min_p as f64;
            keep = keep.min(probs.iter().take_while(|&&p| p >= floor).count().max(1));
        }
        let total: f64 = probs[..keep].iter().sum();
        let mut r = self.uniform() * total;
        for (c, p) in cand.iter().zip(&probs[..keep]) {
            r -= p;
            if r < 0.0 {
                return c.0;
            }
        }
        cand[keep - 1].0
    }
}

/// The repetition penalty (CTRL's): positive logits divided by it, negative ones multiplied.
pub fn penalize(logits: &mut [f32], penalty: f32, tokens: &[u32]) {
    for &t in tokens {
        if let Some(l) = logits.get_mut(t as usize) {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// The `k` best (token, logit) pairs of `logits`, best first (ties to the lower id).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let mut cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
    let k = k.min(cand.len());
    if k > 0 && k < cand.len() {
        cand.select_nth_unstable_by(k - 1, order);
        cand.truncate(k);
    }
    cand.sort_unstable_by(order);
    cand
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_seeded_and_filtered() {
        let logits = vec![0.1, 2.0, 1.9, -1.0, 0.5];
        let mut s = Sampler::new(SampleOptions::default()).unwrap();
        assert_eq!(s.sample(&mut logits.clone(), &[]), 1);
        // Same seed, same draws; top_k = 2 only ever yields tokens 1 and 2.
        let opts = SampleOptions { temperature: 1.0, top_k: 2, seed: 7, ..Default::default() };
        let draw = |o: &SampleOptions| {
            let mut s = Sampler::new(o.clone()).unwrap();
            (0..200).map(|_| s.sample(&mut logits.clone(), &[])).collect::<Vec<_>>()
        };
        let a = draw(&opts);
        assert_eq!(a, draw(&opts));
        assert!(a.iter().all(|&t| t == 1 || t == 2) && a.contains(&1) && a.contains(&2));
        // top_p small keeps only the best; min_p 0.95 too.
        assert!(draw(&SampleOptions { top_p: 0.01, ..opts.clone() }).iter().all(|&t| t == 1));
        assert!(draw(&SampleOptions { top_k: 0, min_p: 0.95, ..opts.clone() }).iter().all(|&t| t == 1));
        // A strong penalty on token 1 hands greedy to token 2.
        let mut s = Sampler::new(SampleOptions { repetition_penalty: 2.0, ..Default::default() }).unwrap();
        assert_eq!(s.sample(&mut logits.clone(), &[1]), 2);
        assert!(Sampler::new(SampleOptions { temperature: f32::NAN, ..Default::default() }).is_err());
    }
}
