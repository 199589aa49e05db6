//! `LoraLinear`: one frozen base weight plus any number of LoRA adapters, on one backend (a
//! `LoraGroup` of one weight, with ids handed out here).

use super::group::LoraGroup;
use crate::backend::factors::FactorFormat;
use crate::backend::linear::Epilogue;
use crate::backend::routing::{Mix, Slot};
use crate::backend::Backend;
use crate::error::{check_finite, checked_len, Error, Result};
use crate::formats::weights::HostWeight;

pub struct LoraLinear<B: Backend> {
    group: LoraGroup<B>,
    /// The next adapter id (ids are never reused while a layer lives).
    next_id: usize,
}

impl<B: Backend> LoraLinear<B> {
    pub fn new(backend: &B, w: HostWeight) -> Result<Self> {
        Ok(LoraLinear { group: LoraGroup::new(backend, vec![w])?, next_id: 0 })
    }

    pub fn out_features(&self) -> usize {
        self.group.out_features(0)
    }
    pub fn in_features(&self) -> usize {
        self.group.in_features()
    }
    pub fn weight_bytes(&self) -> usize {
        self.group.weight_bytes()
    }
    pub fn backend(&self) -> &B {
        self.group.backend()
    }

    /// Adds an adapter with `A [rank, in]`, `B [out, rank]` (row-major) and its scale, under
    /// the next free id, stored in the backend's factor format. On error nothing changes.
    pub fn add_adapter(&mut self, a: &[f32], b: &[f32], rank: usize, scale: f32) -> Result<usize> {
        let id = self.next_id;
        self.add_adapter_as(id, a, b, rank, scale, None, self.backend().factor_format())?;
        Ok(id)
    }

    /// Adds an adapter under a caller-chosen id, stored in `format`; `magnitude` makes it a
    /// DoRA adapter (`LoraGroup::add_adapter`).
    #[allow(clippy::too_many_arguments)]
    pub fn add_adapter_as(&mut self, id: usize, a: &[f32], b: &[f32], rank: usize, scale: f32, magnitude: Option<&[f32]>, format: FactorFormat) -> Result<()> {
        self.group.add_adapter(0, id, a, b, rank, scale, magnitude, format)?;
        self.next_id = self.next_id.max(id + 1);
        Ok(())
    }

    pub fn has_adapter(&self, id: usize) -> bool {
        self.group.has_adapter(0, id)
    }
    /// Removes adapter `id` and gives back its storage (`LoraGroup::remove_adapter`).
    pub fn remove_adapter(&mut self, id: usize) -> Result<()> {
        self.group.remove_adapter(0, id)
    }
    /// Bytes the adapters take.
    pub fn adapter_bytes(&self) -> usize {
        self.group.adapter_bytes()
    }
    /// Words (4 bytes) of adapter storage this layer holds (capacity, not use).
    pub fn adapter_storage(&self) -> usize {
        self.group.adapter_storage()
    }
    /// Replaces the adapter's scale (for PEFT files alpha / r).
    pub fn set_scale(&mut self, id: usize, scale: f32) -> Result<()> {
        self.group.set_scale(0, id, scale)
    }
    pub fn slot(&self, id: usize) -> Result<Slot> {
        self.group.slot(0, id)
    }

    /// Records `y = x·Wᵀ + adapters` on the backend (`x`: [n, in], `y`: [n, out]); every
    /// adapter the mix names must be on this layer.
    pub fn forward(&self, x: &B::Tensor, mix: &Mix, y: &mut B::Tensor) -> Result<()> {
        self.group.forward(x, None, mix, false, Epilogue::Store { out: y, bias: None })
    }

    /// Upload `x` ([n, in], row-major), run, and read `y` back.
    pub async fn run(&self, x: &[f32], n: usize, mix: &Mix) -> Result<Vec<f32>> {
        let y = self.record(x, n, mix)?;
        self.backend().read(&y).await
    }

    /// The synchronous half of `run`: checks and uploads `x`, records the op, returns `y`
    /// (for callers that must not hold the layer across the await, e.g. the JS bindings).
    pub fn record(&self, x: &[f32], n: usize, mix: &Mix) -> Result<B::Tensor> {
        let inp = self.in_features();
        let want = checked_len("x", &[n, inp])?;
        if n == 0 || x.len() != want {
            return Err(Error::shape(format!("x has {} values for {n} rows of inFeatures {inp} (expected {want}, rows >= 1)", x.len())));
        }
        check_finite("x", x)?;
        let b = self.backend();
        let xt = b.tensor(x, n, inp)?;
        let mut y = b.empty(n, self.out_features())?;
        self.forward(&xt, mix, &mut y)?;
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
