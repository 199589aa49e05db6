//! `LoraLinear`: a frozen base weight plus any number of LoRA adapters, on one backend.

use super::ArenaAlloc;
use crate::backend::factors::FactorFormat;
use crate::backend::routing::{Mix, Routes, Slot, NO_GAIN};
use crate::backend::{ArenaMove, Backend, DoraGain};
use crate::error::{check_finite, checked_len, Error, Result};
use crate::formats::weights::HostWeight;
use std::rc::Rc;

/// Largest LoRA rank accepted (PEFT ranks in practice are 1..=256).
pub const MAX_RANK: usize = 1024;

pub struct LoraLinear<B: Backend> {
    backend: B,
    out: usize,
    inp: usize,
    /// Shared so that a tied lm_head and the token embedding are one copy.
    weight: Rc<B::Weight>,
    weight_bytes: usize,
    arena: B::Arena,
    alloc: ArenaAlloc,
    /// Indexed by adapter id; `None` for removed ids (ids are never reused while a layer lives).
    slots: Vec<Option<Slot>>,
}

impl<B: Backend> LoraLinear<B> {
    pub fn new(backend: &B, w: HostWeight) -> Result<Self> {
        let (out, inp, weight_bytes) = (w.rows, w.cols, w.byte_len());
        let weight = Rc::new(backend.weight(w)?);
        Ok(Self::shared(backend, weight, out, inp, weight_bytes))
    }

    /// A layer over an already uploaded weight `[out, inp]` of `weight_bytes` bytes.
    pub fn shared(backend: &B, weight: Rc<B::Weight>, out: usize, inp: usize, weight_bytes: usize) -> Self {
        LoraLinear {
            backend: backend.clone(),
            out,
            inp,
            weight,
            weight_bytes,
            arena: backend.arena(),
            alloc: ArenaAlloc::default(),
            slots: Vec::new(),
        }
    }

    pub fn out_features(&self) -> usize {
        self.out
    }
    pub fn in_features(&self) -> usize {
        self.inp
    }
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }
    pub fn backend(&self) -> &B {
        &self.backend
    }
    pub fn weight(&self) -> &Rc<B::Weight> {
        &self.weight
    }

    /// Adds an adapter with `A [rank, in]`, `B [out, rank]` (row-major) and its scale, under
    /// the next free id, stored in the backend's factor format. On error nothing changes.
    pub fn add_adapter(&mut self, a: &[f32], b: &[f32], rank: usize, scale: f32) -> Result<usize> {
        let id = self.slots.len();
        self.add_adapter_as(id, a, b, rank, scale, None, self.backend.factor_format())?;
        Ok(id)
    }

    /// Adds an adapter under a caller-chosen id (a model uses one id across its layers),
    /// stored in `format` (adapters of one layer may each have their own).
    /// `magnitude` (`[out]`) makes it a DoRA adapter: its gain `m / ‖W + scale·B·A‖_row` is
    /// computed here, once, without materialising the merged weight.
    #[allow(clippy::too_many_arguments)]
    pub fn add_adapter_as(
        &mut self,
        id: usize,
        a: &[f32],
        b: &[f32],
        rank: usize,
        scale: f32,
        magnitude: Option<&[f32]>,
        format: FactorFormat,
    ) -> Result<()> {
        if self.slots.get(id).is_some_and(Option::is_some) {
            return Err(Error::adapter(format!("adapter id {id} is taken in this layer")));
        }
        if rank == 0 || rank > MAX_RANK {
            return Err(Error::adapter(format!("rank {rank} is out of range 1..={MAX_RANK}")));
        }
        let (a_len, b_len) = (checked_len("A", &[rank, self.inp])?, checked_len("B", &[self.out, rank])?);
        if a.len() != a_len {
            return Err(Error::shape(format!(
                "A has {} values, expected rank*inFeatures = {rank}*{} = {a_len}",
                a.len(),
                self.inp
            )));
        }
        if b.len() != b_len {
            return Err(Error::shape(format!(
                "B has {} values, expected outFeatures*rank = {}*{rank} = {b_len}",
                b.len(),
                self.out
            )));
        }
        if !scale.is_finite() {
            return Err(Error::config(format!("adapter scale {scale} must be finite")));
        }
        check_finite("A", a)?;
        check_finite("B", b)?;
        if let Some(m) = magnitude {
            if m.len() != self.out {
                return Err(Error::shape(format!("DoRA magnitude has {} values for {} outputs", m.len(), self.out)));
            }
            check_finite("DoRA magnitude", m)?;
        }
        let (a_w, b_w, total) = self.layout(rank, magnitude.is_some(), format);
        let off = self.alloc.alloc(total);
        let fits_u32 = u32::try_from(off + total).is_ok();
        let written = if fits_u32 {
            self.backend
                .arena_reserve(&mut self.arena, self.alloc.end())
                .and_then(|_| self.backend.arena_write_a(&mut self.arena, off, a, rank, format))
                .and_then(|_| self.backend.arena_write(&mut self.arena, off + a_w, b, rank, format))
                .and_then(|_| match magnitude {
                    Some(m) => {
                        let d = DoraGain { a, b, magnitude: m, rank, scale, a_off: off, b_off: off + a_w, g_off: off + a_w + b_w, format };
                        self.backend.dora_gain(&self.weight, &mut self.arena, &d)
                    }
                    None => Ok(()),
                })
        } else {
            Err(Error::shape("adapter storage for this layer exceeds 2^32 elements"))
        };
        if let Err(e) = written {
            // Drop whatever was written or grown for it: the live adapters stay in place.
            self.alloc.free(off, total);
            let keep: Vec<ArenaMove> = self.live().iter().map(|&(_, s, len)| ArenaMove { from: s.a_off as usize, to: s.a_off as usize, len }).collect();
            let _ = self.backend.arena_repack(&mut self.arena, &keep, self.alloc.end());
            return Err(e);
        }
        if self.slots.len() <= id {
            self.slots.resize(id + 1, None);
        }
        let g_off = if magnitude.is_some() { (off + a_w + b_w) as u32 } else { NO_GAIN };
        self.slots[id] = Some(Slot { a_off: off as u32, b_off: (off + a_w) as u32, rank: rank as u32, scale, g_off, format });
        Ok(())
    }

    /// Whether adapter `id` lives in this layer.
    pub fn has_adapter(&self, id: usize) -> bool {
        self.slots.get(id).is_some_and(Option::is_some)
    }

    /// Removes adapter `id` and gives back its storage: the adapters still loaded are packed
    /// to the front of the arena (on the GPU a device-side copy; on the CPU new keys), so a
    /// hole in the middle goes back too.
    pub fn remove_adapter(&mut self, id: usize) -> Result<()> {
        let gone = self.slot(id)?;
        self.slots[id] = None;
        let live = self.live();
        let mut keep = Vec::with_capacity(live.len());
        let mut end = 0;
        for &(_, s, len) in &live {
            keep.push(ArenaMove { from: s.a_off as usize, to: end, len });
            end += len;
        }
        if self.backend.arena_repack(&mut self.arena, &keep, end).is_err() {
            // Best effort (e.g. no memory for the packed copy): the hole stays for reuse.
            self.alloc.free(gone.a_off as usize, self.slot_words(&gone));
            return Ok(());
        }
        for ((i, s, _), m) in live.into_iter().zip(&keep) {
            self.slots[i] = Some(s.moved_to(m.to as u32));
        }
        self.alloc = ArenaAlloc::packed(end);
        Ok(())
    }

    /// The adapters here as (id, slot, words), in arena order.
    fn live(&self) -> Vec<(usize, Slot, usize)> {
        let mut live: Vec<_> = self.slots.iter().enumerate().filter_map(|(i, s)| Some((i, (*s)?, self.slot_words(&(*s)?)))).collect();
        live.sort_by_key(|(_, s, _)| s.a_off);
        live
    }

    /// An adapter's place in the arena, in words: A, then B (each starting on a word), then
    /// the DoRA gain. Returns (A words, B words, total).
    fn layout(&self, rank: usize, dora: bool, format: FactorFormat) -> (usize, usize, usize) {
        let (a_w, b_w) = (format.words(rank * self.inp, rank), format.words(self.out * rank, rank));
        (a_w, b_w, a_w + b_w + if dora { self.out } else { 0 })
    }

    /// Arena words one adapter takes.
    fn slot_words(&self, s: &Slot) -> usize {
        self.layout(s.rank as usize, s.g_off != NO_GAIN, s.format).2
    }

    /// Words (4 bytes) of adapter storage this layer holds (capacity, not use).
    pub fn adapter_storage(&self) -> usize {
        self.backend.arena_capacity(&self.arena)
    }

    pub fn set_scale(&mut self, id: usize, scale: f32) -> Result<()> {
        if !scale.is_finite() {
            return Err(Error::config(format!("adapter scale {scale} must be finite")));
        }
        self.slot(id)?;
        if let Some(s) = self.slots[id].as_mut() {
            s.scale = scale;
        }
        Ok(())
    }

    pub fn slot(&self, id: usize) -> Result<Slot> {
        self.slots
            .get(id)
            .copied()
            .flatten()
            .ok_or_else(|| Error::adapter(format!("no adapter with id {id} in this layer")))
    }

    /// Bytes adapter `id` takes in this layer's arena (0 if it is not here).
    pub fn adapter_bytes_of(&self, id: usize) -> usize {
        self.slot(id).map_or(0, |s| self.slot_words(&s) * 4)
    }

    /// Bytes the arena holds for live adapters.
    pub fn adapter_bytes(&self) -> usize {
        self.slots.iter().flatten().map(|s| self.slot_words(s) * 4).sum()
    }

    /// Routes for `mix`; every adapter it names must be in this layer.
    pub fn routes(&self, n: usize, mix: &Mix) -> Result<Routes> {
        Routes::build(n, mix, |id| self.slot(id).map(Some))
    }

    /// Records `y = x·Wᵀ + adapters` on the backend (`x`: [n, in], `y`: [n, out]).
    pub fn forward(&self, x: &B::Tensor, n: usize, mix: &Mix, y: &mut B::Tensor) -> Result<()> {
        let routes = self.routes(n, mix)?;
        self.backend.lora_linear(x, &self.weight, &self.arena, &routes, y)
    }

    /// `forward` for a model's layers: adapters of the mix that do not target this layer
    /// add nothing here.
    pub fn forward_partial(&self, x: &B::Tensor, n: usize, mix: &Mix, y: &mut B::Tensor) -> Result<()> {
        let routes = Routes::build(n, mix, |id| Ok(self.slots.get(id).copied().flatten()))?;
        self.backend.lora_linear(x, &self.weight, &self.arena, &routes, y)
    }

    /// Upload `x` ([n, in], row-major), run, and read `y` back.
    pub async fn run(&self, x: &[f32], n: usize, mix: &Mix) -> Result<Vec<f32>> {
        let y = self.record(x, n, mix)?;
        self.backend.read(&y).await
    }

    /// The synchronous half of `run`: checks and uploads `x`, records the op, returns `y`
    /// (for callers that must not hold the layer across the await, e.g. the JS bindings).
    pub fn record(&self, x: &[f32], n: usize, mix: &Mix) -> Result<B::Tensor> {
        let want = checked_len("x", &[n, self.inp])?;
        if n == 0 || x.len() != want {
            return Err(Error::shape(format!(
                "x has {} values for {n} rows of inFeatures {} (expected {want}, rows >= 1)",
                x.len(),
                self.inp
            )));
        }
        check_finite("x", x)?;
        let routes = self.routes(n, mix)?;
        let xt = self.backend.tensor(x, n, self.inp)?;
        let mut y = self.backend.empty(n, self.out)?;
        self.backend.lora_linear(&xt, &self.weight, &self.arena, &routes, &mut y)?;
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuBackend;
    use crate::formats::weights::WeightData;

    /// A load that fails after writing (a DoRA row whose norm is zero) leaves no blocks behind:
    /// the next load of another size fits in the same place and computes exactly.
    #[test]
    fn a_failed_load_leaves_nothing_behind() {
        let (out, inp) = (6, 8);
        let mut w: Vec<f32> = (0..out * inp).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect();
        w[..inp].fill(0.0); // row 0 of W is zero
        let mut l = LoraLinear::new(&CpuBackend::default(), HostWeight::new(out, inp, WeightData::F32(w)).unwrap()).unwrap();
        let keep = l.add_adapter(&[0.5; 2 * 8], &[0.25; 6 * 2], 2, 1.0).unwrap();
        let mut b = vec![0.3; out * 3];
        b[..3].fill(0.0); // and B's row 0: W + s·B·A has a zero row
        let err = l.add_adapter_as(1, &[0.1; 3 * 8], &b, 3, 1.0, Some(&[1.0; 6]), FactorFormat::F32).unwrap_err();
        assert!(err.message.contains("zero"), "{err:?}");
        assert_eq!(l.adapter_storage(), 2 * (out + inp), "the failed adapter's words are gone");
        let a5: Vec<f32> = (0..5 * inp).map(|i| (i % 5) as f32 * 0.1).collect();
        let id = l.add_adapter(&a5, &vec![0.2; out * 5], 5, 0.5).unwrap();
        assert_eq!(l.adapter_storage(), 7 * (out + inp));
        let x: Vec<f32> = (0..inp).map(|i| i as f32 * 0.1).collect();
        let only = |mix| pollster::block_on(l.run(&x, 1, &mix)).unwrap();
        let (base, with) = (only(Mix::Base), only(Mix::All(vec![(id, 1.0)])));
        // T = 0.5·x·A5ᵀ, y += T·0.2 summed over 5 ranks.
        let t: f32 = (0..5).map(|j| 0.5 * (0..inp).map(|k| x[k] * a5[j * inp + k]).sum::<f32>()).sum();
        for o in 0..out {
            assert!((with[o] - base[o] - 0.2 * t).abs() < 1e-5, "row {o}: {} vs {}", with[o] - base[o], 0.2 * t);
        }
        assert!(l.has_adapter(keep));
    }
}
