//! Which adapters apply to which input rows in one call.
//!
//! Every case (one adapter for all rows, a weighted stack, a different adapter per row as
//! in Punica's BGMV, rows with none) becomes the same table: for each row, a list of entries
//! (adapter slot, coefficient). The kernels compute `T = coef * X_row·Aᵀ` per entry into a
//! compact scratch (`t_off`), then add `T·Bᵀ` inside the base matmul's output tile.

use super::factors::FactorFormat;
use crate::error::{Error, Result};

/// Where one adapter's factors live in its layer's arena, in 32-bit words:
/// `A [rank, in]` at `a_off`, `B [out, rank]` at `b_off`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slot {
    pub a_off: u32,
    pub b_off: u32,
    pub rank: u32,
    /// The adapter's own scale (alpha / r for PEFT files), times any per-call weight.
    pub scale: f32,
    /// DoRA: offset of the per-output gain `m / ‖W + s·B·A‖_row` (`NO_GAIN` for plain LoRA).
    pub g_off: u32,
    /// How this adapter's A and B are stored (adapters of one layer may differ).
    pub format: FactorFormat,
}

impl Slot {
    /// The same adapter with its words starting at `a_off` (A, B and gain keep their spacing).
    pub fn moved_to(self, a_off: u32) -> Slot {
        let shift = |o: u32| o - self.a_off + a_off;
        let g_off = if self.g_off == NO_GAIN { NO_GAIN } else { shift(self.g_off) };
        Slot { a_off, b_off: shift(self.b_off), g_off, ..self }
    }
}

/// `g_off` of adapters without a DoRA gain.
pub const NO_GAIN: u32 = u32::MAX;

/// One (row, adapter) pair. The GPU gets it as eight u32 words (`Routes::to_words`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RouteEntry {
    pub row: u32,
    pub a_off: u32,
    pub b_off: u32,
    pub rank: u32,
    /// Offset of this entry's `rank` values in the T scratch.
    pub t_off: u32,
    pub coef: f32,
    /// DoRA gain offset (`NO_GAIN` for plain LoRA), and the call's weight on that adapter:
    /// `y = base·(1 + Σ gw·(g − 1)) + Σ g·(coef·x·Aᵀ)·Bᵀ`.
    pub g_off: u32,
    pub gw: f32,
    /// `FactorFormat::code` of the adapter's factors (the CPU reads it from its blocks).
    pub format: u32,
}

/// Per-row adapter table for a call of `n` rows, CSR style.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    /// `row_start[i]..row_start[i+1]` indexes `entries` for row i (n + 1 values).
    pub row_start: Vec<u32>,
    pub entries: Vec<RouteEntry>,
    /// Length of the T scratch: the sum of the entries' ranks.
    pub t_len: usize,
    pub max_rank: u32,
}

impl RouteEntry {
    pub fn dora(&self) -> bool {
        self.g_off != NO_GAIN
    }
}

/// The adapter choice for a call, by slot id within the layer (`None` = base only).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Mix {
    /// No adapter: the plain base matmul.
    #[default]
    Base,
    /// The same weighted stack of adapters on every row.
    All(Vec<(usize, f32)>),
    /// Row i gets its own weighted stack (empty = base only for that row).
    PerRow(Vec<Vec<(usize, f32)>>),
}

impl Mix {
    /// The mix for a subset of the rows (e.g. the last row of each sequence).
    pub fn select_rows(&self, rows: &[usize]) -> Mix {
        match self {
            Mix::PerRow(r) => Mix::PerRow(rows.iter().map(|&i| r.get(i).cloned().unwrap_or_default()).collect()),
            other => other.clone(),
        }
    }
}

impl Routes {
    pub fn n_rows(&self) -> usize {
        self.row_start.len().saturating_sub(1)
    }

    pub fn row_entries(&self, row: usize) -> &[RouteEntry] {
        &self.entries[self.row_start[row] as usize..self.row_start[row + 1] as usize]
    }

    /// Builds the table for `n` rows. `slot(id)` resolves an adapter id to its slot in this
    /// layer, `None` when the adapter does not touch the layer (it then adds nothing).
    pub fn build(n: usize, mix: &Mix, slot: impl Fn(usize) -> Result<Option<Slot>>) -> Result<Routes> {
        if let Mix::PerRow(rows) = mix {
            if rows.len() != n {
                return Err(Error::shape(format!(
                    "adapterPerRow has {} entries for {n} rows",
                    rows.len()
                )));
            }
        }
        let mut r = Routes { row_start: Vec::with_capacity(n + 1), ..Default::default() };
        r.row_start.push(0);
        for row in 0..n {
            let stack: &[(usize, f32)] = match mix {
                Mix::Base => &[],
                Mix::All(s) => s,
                Mix::PerRow(rows) => &rows[row],
            };
            for &(id, weight) in stack {
                if !weight.is_finite() {
                    return Err(Error::config(format!("adapter weight {weight} for row {row} must be finite")));
                }
                let Some(s) = slot(id)? else { continue };
                let coef = s.scale * weight;
                if coef == 0.0 {
                    continue;
                }
                r.entries.push(RouteEntry {
                    row: row as u32,
                    a_off: s.a_off,
                    b_off: s.b_off,
                    rank: s.rank,
                    t_off: r.t_len as u32,
                    coef,
                    g_off: s.g_off,
                    gw: weight,
                    format: s.format.code(),
                });
                r.t_len += s.rank as usize;
                r.max_rank = r.max_rank.max(s.rank);
            }
            r.row_start.push(r.entries.len() as u32);
        }
        Ok(r)
    }

    /// GPU layout: `row_start` then the entries' words.
    pub fn to_words(&self) -> Vec<u32> {
        let mut w = self.row_start.clone();
        w.reserve(8 * self.entries.len());
        for e in &self.entries {
            // The factor format rides in the rank word's high half (ranks are ≤ MAX_RANK).
            let rank = e.rank | e.format << 16;
            w.extend_from_slice(&[e.row, e.a_off, e.b_off, rank, e.t_off, e.coef.to_bits(), e.g_off, e.gw.to_bits()]);
        }
        w
    }
}
