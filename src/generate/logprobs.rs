//! Log-probabilities of generated tokens (OpenAI's `logprobs`/`top_logprobs`): of the
//! distribution the sampler drew from before its temperature and cuts, that is the
//! softmax of the logits after the penalties and the structured-output mask.

use crate::backend::select::{self, Selection, MASKED};
use crate::error::{Error, Result};

/// At most this many alternatives per token (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// A generated token's log-probability and the most likely tokens at its position.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// Best first; tokens a constraint refused are left out (their probability is 0).
    pub top: Vec<(u32, f32)>,
}

impl TokenLogprob {
    /// From the selection the token was picked from (its candidates, best first, and the
    /// row's log-sum-exp), or else from the whole row of logits.
    pub fn of(token: u32, n: usize, sel: Option<&Selection>, row: Option<&[f32]>) -> Result<TokenLogprob> {
        let entry = |cands: &[(u32, f32)], lse: f64, l: f32| TokenLogprob {
            token,
            logprob: (l as f64 - lse) as f32,
            top: cands.iter().take(n).filter(|c| c.1 > MASKED).map(|&(t, l)| (t, (l as f64 - lse) as f32)).collect(),
        };
        if let Some((s, lse)) = sel.and_then(|s| Some((s, s.lse?))) {
            if let Some(c) = s.cands.iter().find(|c| c.0 == token).filter(|_| s.cands.len() >= n) {
                return Ok(entry(&s.cands, lse, c.1));
            }
        }
        match row {
            Some(row) => Ok(entry(&select::top_k(row, n), select::lse(row), row[token as usize])),
            None => Err(Error::backend(format!("no logits for token {token}'s log-probability"))),
        }
    }
}
