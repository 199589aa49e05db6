//! Benchmark kernels shared by the native bench binary and the wasm bench in Node: a
//! memory-bandwidth ceiling measured by the same runtime, and timed LoRA linears.

use crate::backend::Backend;
use crate::cpu::simd::F32x4;
use crate::error::Result;
use crate::lora::LoraLinear;
use crate::backend::routing::Mix;
use crate::formats::weights::{HostWeight, WeightFormat};
use serde::Serialize;

/// Best GB/s of a plain SIMD sum over `mib` MiB of f32 (a read-bandwidth ceiling). The
/// buffer is summed as 1, 4 and 8 streams read side by side (the matvec's tiles read 4 weight
/// rows at once; hardware prefetchers like several streams); the best counts.
pub fn read_ceiling(mib: usize, reps: usize, now_ms: impl Fn() -> f64) -> f64 {
    let len = (mib * (1 << 20) / 4) / 64 * 64;
    let buf: Vec<f32> = (0..len).map(|i| (i % 7) as f32).collect();
    let mut best = f64::MAX;
    let mut sink = 0.0;
    for rep in 0..reps.max(1) * 3 {
        let t0 = now_ms();
        sink += match rep % 3 {
            0 => sum_streams::<1>(&buf),
            1 => sum_streams::<4>(&buf),
            _ => sum_streams::<8>(&buf),
        };
        best = best.min(now_ms() - t0);
    }
    std::hint::black_box(sink);
    (len * 4) as f64 / (best * 1e6)
}

/// Best GFLOP/s of the CPU kernels' arithmetic alone: 4-lane multiply-adds (a multiply and
/// an add: wasm SIMD128 has no fused one) into 6 register accumulators, each step's
/// multiplier moved by one add (so nothing is loop-invariant), no memory traffic. The compute
/// ceiling the kernels' GFLOP/s are measured against.
pub fn flop_ceiling(reps: usize, now_ms: impl Fn() -> f64) -> f64 {
    const ACC: usize = 6;
    const STEPS: usize = 1 << 21;
    let (d, x0) = (std::hint::black_box(F32x4::splat(1e-9)), std::hint::black_box(F32x4::splat(0.5)));
    let xs: [F32x4; ACC] = core::array::from_fn(|i| x0.add(F32x4::splat(i as f32)));
    let mut best = f64::MAX;
    let mut sink = 0.0;
    for _ in 0..reps.max(1) {
        let mut acc = [F32x4::zero(); ACC];
        let mut w = x0;
        let t0 = now_ms();
        for _ in 0..STEPS {
            w = w.add(d);
            for (a, x) in acc.iter_mut().zip(&xs) {
                *a = x.mul_add(w, *a);
            }
        }
        best = best.min(now_ms() - t0);
        sink += acc.iter().map(|v| v.sum() as f64).sum::<f64>();
    }
    std::hint::black_box(sink);
    (ACC * STEPS * 8) as f64 / (best * 1e6)
}

/// Sums `buf` split into `S` equal parts read side by side, 16 floats per part per step.
fn sum_streams<const S: usize>(buf: &[f32]) -> f64 {
    let part = buf.len() / S;
    let mut acc = [F32x4::zero(); S];
    let p = buf.as_ptr();
    let mut k = 0;
    // SAFETY: s * part + k + 16 <= buf.len() for every stream s.
    unsafe {
        while k + 16 <= part {
            for (s, a) in acc.iter_mut().enumerate() {
                let q = p.add(s * part + k);
                let v = F32x4::load(q).add(F32x4::load(q.add(4))).add(F32x4::load(q.add(8)).add(F32x4::load(q.add(12))));
                *a = a.add(v);
            }
            k += 16;
        }
    }
    acc.iter().map(|a| a.sum() as f64).sum()
}

#[derive(Serialize, Clone, Debug)]
pub struct LinearBench {
    pub out: usize,
    pub inp: usize,
    pub n: usize,
    pub dtype: &'static str,
    pub ranks: Vec<usize>,
    /// Layer copies cycled through (1 = cache-hot).
    pub copies: usize,
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

/// What to time: one layer shape, with these adapter ranks applied to every row.
#[derive(Clone, Debug)]
pub struct LinearCase {
    pub out: usize,
    pub inp: usize,
    pub n: usize,
    pub format: WeightFormat,
    pub ranks: Vec<usize>,
    /// Cycle through enough copies of the layer (each with its own adapters) to span this
    /// many bytes, so weights stream from memory as in a real model's decode, not from cache.
    pub cold_bytes: usize,
    /// Each variant runs in batches until this much time has passed; the best batch counts.
    pub min_ms: f64,
}

/// Times `case` on `backend`, base alone and with the adapters. `sync` waits for queued work
/// (a no-op on the CPU).
pub fn linear<B: Backend>(
    backend: &B,
    case: &LinearCase,
    now_ms: impl Fn() -> f64,
    sync: impl Fn(),
) -> Result<LinearBench> {
    let LinearCase { out, inp, n, format, ref ranks, cold_bytes, min_ms } = *case;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
    };
    let weight_bytes = format.bytes_for(out * inp);
    let copies = cold_bytes.div_ceil(weight_bytes).max(1);
    let mut layers = Vec::with_capacity(copies);
    let mut ids = Vec::new();
    for _ in 0..copies {
        let wv: Vec<f32> = (0..out * inp).map(|_| rnd()).collect();
        let data = crate::formats::weights::WeightData::quantize(format, &wv);
        let mut layer = LoraLinear::new(backend, HostWeight::new(out, inp, data)?)?;
        ids = ranks
            .iter()
            .map(|&r| {
                let a: Vec<f32> = (0..r * inp).map(|_| rnd()).collect();
                let b: Vec<f32> = (0..out * r).map(|_| rnd()).collect();
                layer.add_adapter(&a, &b, r, 2.0)
            })
            .collect::<Result<Vec<_>>>()?;
        layers.push(layer);
    }
    let x: Vec<f32> = (0..n * inp).map(|_| rnd()).collect();
    let xt = backend.tensor(&x, n, inp)?;
    let mut y = backend.empty(n, out)?;
    // Base and LoRA batches alternate, so drifting machine load hits both alike; the best
    // batch of each counts.
    let mixes = [Mix::Base, Mix::All(ids.iter().map(|&id| (id, 1.0)).collect())];
    for mix in &mixes {
        for l in &layers {
            l.forward(&xt, mix, &mut y)?; // warm-up: pipelines, bind groups
        }
    }
    sync();
    let mut best = [f64::MAX; 2];
    let mut ratios = Vec::new();
    let mut iters = 1usize;
    let t_all = now_ms();
    while now_ms() - t_all < 2.0 * min_ms || ratios.len() < 5 {
        let mut pair = [0.0; 2];
        for (v, mix) in mixes.iter().enumerate() {
            let t0 = now_ms();
            for _ in 0..iters {
                for l in &layers {
                    l.forward(&xt, mix, &mut y)?;
                }
            }
            sync();
            pair[v] = (now_ms() - t0) / (iters * copies) as f64;
            best[v] = best[v].min(pair[v]);
        }
        if pair[0] * ((iters * copies) as f64) < 5.0 {
            iters *= 2; // batches too short to time well yet
        } else {
            ratios.push(pair[1] / pair[0]);
        }
    }
    // Overhead from the median ratio of back-to-back pairs: robust to load drifting.
    ratios.sort_by(f64::total_cmp);
    let base_ms = best[0];
    let lora_ms = base_ms * ratios[ratios.len() / 2];
    Ok(LinearBench {
        out,
        inp,
        n,
        dtype: format.name(),
        ranks: ranks.to_vec(),
        copies,
        weight_bytes,
        adapter_bytes: layers[0].adapter_bytes(),
        base_ms,
        lora_ms,
    })
}
