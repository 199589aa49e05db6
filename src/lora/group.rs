//! `LoraGroup`: frozen base weights that share an input and are read together by one fused
//! pass (q, k and v; gate and up; or one weight alone), plus any number of LoRA adapters on
//! each, all in one arena, so that one shrink serves every weight of the group and one
//! storage binding covers every adapter a batch may route to.

use super::ArenaAlloc;
use crate::backend::factors::FactorFormat;
use crate::backend::linear::{Epilogue, Linear, Part};
use crate::backend::routing::{Mix, Routes, Slot, NO_GAIN};
use crate::backend::{ArenaMove, ArenaStore, Backend, DoraGain, Shaped};
use crate::error::{check_finite, checked_len, Error, Result};
use crate::formats::weights::HostWeight;
use std::rc::Rc;

/// Largest LoRA rank accepted (PEFT ranks in practice are 1..=256).
pub const MAX_RANK: usize = 1024;

struct Member<B: Backend> {
    /// Shared so that a tied lm_head and the token embedding are one copy.
    weight: Rc<B::Weight>,
    weight_bytes: usize,
    /// Indexed by adapter id; `None` for ids not on this weight (ids are never reused while
    /// a group lives).
    slots: Vec<Option<Slot>>,
}

pub struct LoraGroup<B: Backend> {
    backend: B,
    inp: usize,
    members: Vec<Member<B>>,
    arena: B::Arena,
    alloc: ArenaAlloc,
}

impl<B: Backend> LoraGroup<B> {
    /// Weights with the same in features, uploaded together (`Backend::weights`).
    pub fn new(backend: &B, ws: Vec<HostWeight>) -> Result<Self> {
        let inp = ws.first().map_or(0, |w| w.cols);
        if ws.is_empty() || ws.iter().any(|w| w.cols != inp) {
            let shapes: Vec<_> = ws.iter().map(|w| [w.rows, w.cols]).collect();
            return Err(Error::shape(format!("a group's weights need one input width: {shapes:?}")));
        }
        let bytes: Vec<usize> = ws.iter().map(HostWeight::byte_len).collect();
        let weights = backend.weights(ws)?;
        let members = weights.into_iter().zip(bytes).map(|(w, weight_bytes)| Member { weight: Rc::new(w), weight_bytes, slots: Vec::new() }).collect();
        Ok(LoraGroup { backend: backend.clone(), inp, members, arena: backend.arena(), alloc: ArenaAlloc::default() })
    }

    /// A group of one already uploaded weight of `weight_bytes` bytes (a tied lm_head).
    pub fn shared(backend: &B, weight: Rc<B::Weight>, weight_bytes: usize) -> Self {
        let inp = weight.shape()[1];
        let members = vec![Member { weight, weight_bytes, slots: Vec::new() }];
        LoraGroup { backend: backend.clone(), inp, members, arena: backend.arena(), alloc: ArenaAlloc::default() }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }
    pub fn in_features(&self) -> usize {
        self.inp
    }
    pub fn out_features(&self, m: usize) -> usize {
        self.members[m].weight.shape()[0]
    }
    /// Bytes of the base weights as stored.
    pub fn weight_bytes(&self) -> usize {
        self.members.iter().map(|m| m.weight_bytes).sum()
    }

    /// Adds adapter `id` to weight `m`: `A [rank, in]`, `B [out, rank]` (row-major) and its
    /// scale, stored in `format` (adapters may each have their own). `magnitude` (`[out]`)
    /// makes it a DoRA adapter: its gain `m / ‖W + scale·B·A‖_row` is computed here, once,
    /// without materialising the merged weight. On error nothing changes.
    #[allow(clippy::too_many_arguments)]
    pub fn add_adapter(
        &mut self,
        m: usize,
        id: usize,
        a: &[f32],
        b: &[f32],
        rank: usize,
        scale: f32,
        magnitude: Option<&[f32]>,
        format: FactorFormat,
    ) -> Result<()> {
        let out = self.out_features(m);
        if self.has_adapter(m, id) {
            return Err(Error::adapter(format!("adapter id {id} is taken in this layer")));
        }
        if rank == 0 || rank > MAX_RANK {
            return Err(Error::adapter(format!("rank {rank} is out of range 1..={MAX_RANK}")));
        }
        let (a_len, b_len) = (checked_len("A", &[rank, self.inp])?, checked_len("B", &[out, rank])?);
        if a.len() != a_len {
            return Err(Error::shape(format!("A has {} values, expected rank*inFeatures = {rank}*{} = {a_len}", a.len(), self.inp)));
        }
        if b.len() != b_len {
            return Err(Error::shape(format!("B has {} values, expected outFeatures*rank = {out}*{rank} = {b_len}", b.len())));
        }
        if !scale.is_finite() {
            return Err(Error::config(format!("adapter scale {scale} must be finite")));
        }
        check_finite("A", a)?;
        check_finite("B", b)?;
        if let Some(mg) = magnitude {
            if mg.len() != out {
                return Err(Error::shape(format!("DoRA magnitude has {} values for {out} outputs", mg.len())));
            }
            check_finite("DoRA magnitude", mg)?;
        }
        let (a_w, b_w, total) = self.layout(m, rank, magnitude.is_some(), format);
        let off = self.alloc.alloc(total);
        let written = if u32::try_from(off + total).is_ok() {
            let arena = &mut self.arena;
            arena
                .reserve(self.alloc.end())
                .and_then(|_| arena.write_a(off, a, rank, format))
                .and_then(|_| arena.write(off + a_w, b, rank, format))
                .and_then(|_| match magnitude {
                    Some(mg) => {
                        let d = DoraGain { a, b, magnitude: mg, rank, scale, a_off: off, b_off: off + a_w, g_off: off + a_w + b_w, format };
                        self.backend.dora_gain(&self.members[m].weight, arena, &d)
                    }
                    None => Ok(()),
                })
        } else {
            Err(Error::shape("adapter storage for this layer exceeds 2^32 elements"))
        };
        if let Err(e) = written {
            // Drop whatever was written or grown for it: the live adapters stay in place.
            self.alloc.free(off, total);
            let keep: Vec<ArenaMove> = self.live().iter().map(|&(_, _, s, len)| ArenaMove { from: s.a_off as usize, to: s.a_off as usize, len }).collect();
            let _ = self.arena.repack(&keep, self.alloc.end());
            return Err(e);
        }
        let slots = &mut self.members[m].slots;
        if slots.len() <= id {
            slots.resize(id + 1, None);
        }
        let g_off = if magnitude.is_some() { (off + a_w + b_w) as u32 } else { NO_GAIN };
        slots[id] = Some(Slot { a_off: off as u32, b_off: (off + a_w) as u32, rank: rank as u32, scale, g_off, format });
        Ok(())
    }

    /// Whether adapter `id` lives on weight `m`.
    pub fn has_adapter(&self, m: usize, id: usize) -> bool {
        self.members[m].slots.get(id).is_some_and(Option::is_some)
    }

    /// Removes adapter `id` from weight `m` and gives back its storage: the adapters still
    /// loaded (on every weight of the group) are packed to the front of the arena (on the
    /// GPU a device-side copy; on the CPU new keys), so a hole in the middle goes back too.
    pub fn remove_adapter(&mut self, m: usize, id: usize) -> Result<()> {
        let gone = self.slot(m, id)?;
        self.members[m].slots[id] = None;
        let live = self.live();
        let mut keep = Vec::with_capacity(live.len());
        let mut end = 0;
        for &(_, _, s, len) in &live {
            keep.push(ArenaMove { from: s.a_off as usize, to: end, len });
            end += len;
        }
        if self.arena.repack(&keep, end).is_err() {
            // Best effort (e.g. no memory for the packed copy): the hole stays for reuse.
            self.alloc.free(gone.a_off as usize, self.slot_words(m, &gone));
            return Ok(());
        }
        for ((mi, i, s, _), mv) in live.into_iter().zip(&keep) {
            self.members[mi].slots[i] = Some(s.moved_to(mv.to as u32));
        }
        self.alloc = ArenaAlloc::packed(end);
        Ok(())
    }

    /// Every adapter of the group as (weight, id, slot, words), in arena order.
    fn live(&self) -> Vec<(usize, usize, Slot, usize)> {
        let mut live: Vec<_> = (self.members.iter().enumerate())
            .flat_map(|(m, mem)| mem.slots.iter().enumerate().filter_map(move |(i, s)| Some((m, i, (*s)?))))
            .map(|(m, i, s)| (m, i, s, self.slot_words(m, &s)))
            .collect();
        live.sort_by_key(|(_, _, s, _)| s.a_off);
        live
    }

    /// An adapter's place in the arena, in words: A, then B (each starting on a word), then
    /// the DoRA gain. Returns (A words, B words, total).
    fn layout(&self, m: usize, rank: usize, dora: bool, format: FactorFormat) -> (usize, usize, usize) {
        let out = self.out_features(m);
        let (a_w, b_w) = (format.words(rank * self.inp, rank), format.words(out * rank, rank));
        (a_w, b_w, a_w + b_w + if dora { out } else { 0 })
    }

    /// Arena words one adapter takes.
    fn slot_words(&self, m: usize, s: &Slot) -> usize {
        self.layout(m, s.rank as usize, s.g_off != NO_GAIN, s.format).2
    }

    /// Words (4 bytes) of adapter storage this group holds (capacity, not use).
    pub fn adapter_storage(&self) -> usize {
        self.arena.capacity()
    }

    pub fn set_scale(&mut self, m: usize, id: usize, scale: f32) -> Result<()> {
        if !scale.is_finite() {
            return Err(Error::config(format!("adapter scale {scale} must be finite")));
        }
        self.slot(m, id)?;
        if let Some(s) = self.members[m].slots[id].as_mut() {
            s.scale = scale;
        }
        Ok(())
    }

    pub fn slot(&self, m: usize, id: usize) -> Result<Slot> {
        self.members[m].slots.get(id).copied().flatten().ok_or_else(|| Error::adapter(format!("no adapter with id {id} in this layer")))
    }

    /// Bytes the group's adapters take in its arena.
    pub fn adapter_bytes(&self) -> usize {
        self.live().iter().map(|l| l.3 * 4).sum()
    }

    /// Bytes adapter `id` takes on weight `m` (0 if it is not there).
    pub fn adapter_bytes_of(&self, m: usize, id: usize) -> usize {
        self.slot(m, id).map_or(0, |s| self.slot_words(m, &s) * 4)
    }

    /// Records the group's fused linear on the backend: `x` (`[n, in]`, RMSNorm'd first with
    /// `norm`) through every weight with its adapters in `mix`, into `epilogue`. With
    /// `partial`, adapters of the mix that are not on a weight add nothing there (a model's
    /// adapters target some projections); otherwise each must be on every weight.
    pub fn forward(&self, x: &B::Tensor, norm: Option<(&B::Tensor, f32)>, mix: &Mix, partial: bool, epilogue: Epilogue<'_, B::Tensor>) -> Result<()> {
        let n = x.shape()[0];
        let parts = (self.members.iter().enumerate())
            .map(|(m, mem)| {
                let routes = Routes::build(n, mix, |id| match mem.slots.get(id).copied().flatten() {
                    None if !partial => self.slot(m, id).map(Some),
                    s => Ok(s),
                })?;
                Ok(Part { weight: &*mem.weight, routes })
            })
            .collect::<Result<Vec<_>>>()?;
        self.backend.linear(Linear::new(x, norm, parts, &self.arena, epilogue)?)
    }
}
