//! Benchmark kernels shared by the native bench binary and the wasm bench in Node: a
//! memory-bandwidth ceiling measured by the same runtime, and timed LoRA linears.

use crate::backend::Backend;
use crate::cpu::simd::F32x4;
use crate::error::Result;
use crate::linear::LoraLinear;
use crate::lora::Mix;
use crate::weights::{HostWeight, WeightData, WeightFormat};
use serde::Serialize;

/// Best GB/s of a plain SIMD sum over `mib` MiB of f32 (a read-bandwidth ceiling).
pub fn read_ceiling(mib: usize, reps: usize, now_ms: impl Fn() -> f64) -> f64 {
    let len = mib * (1 << 20) / 4;
    let buf: Vec<f32> = (0..len).map(|i| (i % 7) as f32).collect();
    let mut best = f64::MAX;
    let mut sink = 0.0;
    for _ in 0..reps.max(1) {
        let t0 = now_ms();
        let mut acc = [F32x4::zero(); 4];
        let p = buf.as_ptr();
        let mut k = 0;
        // SAFETY: k + 16 <= len.
        unsafe {
            while k + 16 <= len {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = F32x4::load(p.add(k + 4 * j)).mul_add(F32x4::load(p.add(k + 4 * j)), *a);
                }
                k += 16;
            }
        }
        sink += acc.iter().map(|a| a.sum() as f64).sum::<f64>();
        best = best.min(now_ms() - t0);
    }
    std::hint::black_box(sink);
    (len * 4) as f64 / (best * 1e6)
}

#[derive(Serialize, Clone, Debug)]
pub struct LinearBench {
    pub out: usize,
    pub inp: usize,
    pub n: usize,
    pub dtype: &'static str,
    pub ranks: Vec<usize>,
    pub weight_bytes: usize,
    pub adapter_bytes: usize,
    /// Best time per call, base only and with every adapter applied to every row.
    pub base_ms: f64,
    pub lora_ms: f64,
}

impl LinearBench {
    pub fn base_gflops(&self) -> f64 {
        2.0 * (self.n * self.out * self.inp) as f64 / (self.base_ms * 1e6)
    }
    pub fn base_gbps(&self) -> f64 {
        self.weight_bytes as f64 / (self.base_ms * 1e6)
    }
    /// Extra time the adapters cost, as a fraction of the base time.
    pub fn overhead(&self) -> f64 {
        self.lora_ms / self.base_ms - 1.0
    }
    /// What the adapters add physically: bytes (decode) or FLOPs (prefill) over the base's.
    pub fn byte_share(&self) -> f64 {
        self.adapter_bytes as f64 / self.weight_bytes as f64
    }
    pub fn flop_share(&self) -> f64 {
        let r: usize = self.ranks.iter().sum();
        (r * (self.inp + self.out)) as f64 / (self.inp * self.out) as f64
    }
}

/// Times one shape on `backend`. `sync` waits for queued work (a no-op on the CPU). Each
/// variant runs in batches until `min_ms` have passed; the best batch average counts.
#[allow(clippy::too_many_arguments)]
pub fn linear<B: Backend>(
    backend: &B,
    out: usize,
    inp: usize,
    n: usize,
    format: WeightFormat,
    ranks: &[usize],
    min_ms: f64,
    now_ms: impl Fn() -> f64,
    sync: impl Fn(),
) -> Result<LinearBench> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
    };
    let wv: Vec<f32> = (0..out * inp).map(|_| rnd()).collect();
    let data = match format {
        WeightFormat::F32 => WeightData::F32(wv),
        WeightFormat::F16 => WeightData::F16(wv.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect()),
    };
    let mut layer = LoraLinear::new(backend, HostWeight::new(out, inp, data)?)?;
    let ids = ranks
        .iter()
        .map(|&r| {
            let a: Vec<f32> = (0..r * inp).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..out * r).map(|_| rnd()).collect();
            layer.add_adapter(&a, &b, r, 2.0)
        })
        .collect::<Result<Vec<_>>>()?;
    let x: Vec<f32> = (0..n * inp).map(|_| rnd()).collect();
    let xt = backend.tensor(&x, n, inp)?;
    let mut y = backend.empty(n, out)?;
    let mut time = |mix: &Mix| -> Result<f64> {
        layer.forward(&xt, n, mix, &mut y)?; // warm-up: pipelines, caches
        sync();
        let mut best = f64::MAX;
        let (mut iters, t_all) = (1usize, now_ms());
        while now_ms() - t_all < min_ms {
            let t0 = now_ms();
            for _ in 0..iters {
                layer.forward(&xt, n, mix, &mut y)?;
            }
            sync();
            let dt = now_ms() - t0;
            best = best.min(dt / iters as f64);
            if dt < 20.0 {
                iters *= 2;
            }
        }
        Ok(best)
    };
    let base_ms = time(&Mix::Base)?;
    let lora_ms = time(&Mix::All(ids.iter().map(|&id| (id, 1.0)).collect()))?;
    Ok(LinearBench {
        out,
        inp,
        n,
        dtype: format.name(),
        ranks: ranks.to_vec(),
        weight_bytes: format.bytes_for(out * inp),
        adapter_bytes: layer.adapter_bytes(),
        base_ms,
        lora_ms,
    })
}
