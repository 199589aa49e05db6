//! Shared by the native and the wasm test binaries: random cases with odd shapes, an f64
//! reference computed straight from the definition (not from our routing tables), and a
//! checker that runs every case through any `Backend` with poisoned outputs.
#![allow(dead_code)]

use lorafuse::backend::Backend;
use lorafuse::{HostWeight, LoraLinear, Mix, WeightData, WeightFormat};

/// What adapter factors `A [rank, in]`, `B [out, rank]` become in some storage.
pub type Rounding = fn(&[f32], &[f32], usize) -> (Vec<f32>, Vec<f32>);

/// Factors stored as they are (f32).
pub fn exact(a: &[f32], b: &[f32], _rank: usize) -> (Vec<f32>, Vec<f32>) {
    (a.to_vec(), b.to_vec())
}

/// f16 rounding of adapter factors `A [rank, in]`, `B [out, rank]`.
pub fn f16_rounded(a: &[f32], b: &[f32], _rank: usize) -> (Vec<f32>, Vec<f32>) {
    let r = |v: &[f32]| v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
    (r(a), r(b))
}

/// Adapter factors `A [rank, in]`, `B [out, rank]` as int16 codes times one scale per rank
/// (`FactorFormat::I16`), written here from its definition: row j of A and column j
/// of B each map their largest magnitude to ±32767, and every value rounds to the nearest
/// code, halves away from zero (`f32::round`; about 1 quotient in 500 is an exact half).
pub fn i16_rounded(a: &[f32], b: &[f32], rank: usize) -> (Vec<f32>, Vec<f32>) {
    let (inp, out) = (a.len() / rank, b.len() / rank);
    let round = |v: f32, max: f32| if max > 0.0 { (v / (max / 32767.0)).round() * (max / 32767.0) } else { 0.0 };
    let (mut qa, mut qb) = (a.to_vec(), b.to_vec());
    for j in 0..rank {
        let row = &mut qa[j * inp..(j + 1) * inp];
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        row.iter_mut().for_each(|v| *v = round(*v, max));
        let max = (0..out).fold(0f32, |m, o| m.max(b[o * rank + j].abs()));
        (0..out).for_each(|o| qb[o * rank + j] = round(b[o * rank + j], max));
    }
    (qa, qb)
}

/// The native wgpu backend, or None (skip) when the machine has no adapter; with
/// LORAFUSE_REQUIRE_GPU=1 (npm test) a missing adapter fails the test instead.
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu(opts: lorafuse::GpuOptions) -> Option<lorafuse::GpuBackend> {
    match pollster::block_on(lorafuse::GpuBackend::new(&opts)) {
        Ok(g) => Some(g),
        Err(e) if std::env::var("LORAFUSE_REQUIRE_GPU").as_deref() == Ok("1") => panic!("no GPU: {e}"),
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}


/// The largest relative L2 error over rows of `vocab` logits.
pub fn max_rel(got: &[f32], want: &[f32], vocab: usize) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths");
    got.chunks(vocab)
        .zip(want.chunks(vocab))
        .map(|(g, w)| {
            let num: f64 = g.iter().zip(w).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
            let den: f64 = w.iter().map(|b| (*b as f64).powi(2)).sum();
            (num / den).sqrt()
        })
        .fold(0.0, f64::max)
}

/// splitmix64: tiny, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform() * scale).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub struct Adapter {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub rank: usize,
    pub scale: f32,
}

pub struct Case {
    pub out: usize,
    pub inp: usize,
    pub n: usize,
    pub format: WeightFormat,
    /// The weight as generated (f32); for f16 cases the layer gets it rounded.
    pub w: Vec<f32>,
    pub x: Vec<f32>,
    pub adapters: Vec<Adapter>,
}

impl Case {
    pub fn new(seed: u64, out: usize, inp: usize, n: usize, ranks: &[usize], format: WeightFormat) -> Case {
        let mut r = Rng::new(seed);
        let ws = 1.0 / (inp as f32).sqrt();
        let w = r.vec(out * inp, ws);
        let x = r.vec(n * inp, 1.0);
        let adapters = ranks
            .iter()
            .map(|&rank| Adapter {
                a: r.vec(rank * inp, ws),
                b: r.vec(out * rank, 0.5),
                rank,
                scale: 0.25 + 1.5 * (r.uniform() + 1.0) / 2.0,
            })
            .collect();
        Case { out, inp, n, format, w, x, adapters }
    }

    pub fn host_weight(&self) -> HostWeight {
        HostWeight::new(self.out, self.inp, lorafuse::WeightData::quantize(self.format, &self.w)).unwrap()
    }

    /// The weight values the kernels should see (rounded or quantized), decoded by the
    /// scalar reference decoder.
    pub fn stored_w(&self) -> Vec<f32> {
        let hw = self.host_weight();
        (0..self.out).flat_map(|r| hw.row_f32(r)).collect()
    }

    /// y in f64, from the definition: x·Wᵀ + Σ scale·weight·(x·Aᵀ)·Bᵀ per row.
    pub fn reference(&self, w: &[f32], mix: &Mix) -> Vec<f64> {
        let (n, inp, out) = (self.n, self.inp, self.out);
        let mut y = vec![0f64; n * out];
        for i in 0..n {
            let xr = &self.x[i * inp..(i + 1) * inp];
            let stack: Vec<(usize, f32)> = match mix {
                Mix::Base => vec![],
                Mix::All(s) => s.clone(),
                Mix::PerRow(rows) => rows[i].clone(),
            };
            for o in 0..out {
                let mut s: f64 = (0..inp).map(|k| xr[k] as f64 * w[o * inp + k] as f64).sum();
                for &(id, weight) in &stack {
                    let ad = &self.adapters[id];
                    for j in 0..ad.rank {
                        let t: f64 = (0..inp).map(|k| xr[k] as f64 * ad.a[j * inp + k] as f64).sum();
                        s += ad.scale as f64 * weight as f64 * t * ad.b[o * ad.rank + j] as f64;
                    }
                }
                y[i * out + o] = s;
            }
        }
        y
    }

    /// This case with its adapter factors as a 16-bit storage holds them (`f16_rounded`:
    /// a GPU storing f16; `i16_rounded`: `FactorFormat::I16`). The backend rounds the
    /// rounded factors again, which gives them back (to an ulp of the int16 scale).
    pub fn with_factors(&self, stored: Rounding) -> Case {
        let adapters = self
            .adapters
            .iter()
            .map(|a| {
                let (ra, rb) = stored(&a.a, &a.b, a.rank);
                Adapter { a: ra, b: rb, rank: a.rank, scale: a.scale }
            })
            .collect();
        Case { adapters, w: self.w.clone(), x: self.x.clone(), ..*self }
    }

    /// The routing cases every backend must pass for this case.
    pub fn mixes(&self, seed: u64) -> Vec<(&'static str, Mix)> {
        let k = self.adapters.len();
        let mut v = vec![("base", Mix::Base)];
        if k == 0 {
            return v;
        }
        let mut r = Rng::new(seed);
        v.push(("one adapter, all rows", Mix::All(vec![(k - 1, 1.0)])));
        v.push(("weighted stack", Mix::All((0..k).map(|i| (i, 0.3 + 0.4 * i as f32)).collect())));
        // Per row: none, one of the adapters, or a two-adapter stack, covering every choice.
        let rows = (0..self.n)
            .map(|i| match (i + r.below(3)) % (k + 2) {
                0 => vec![],
                c if c <= k => vec![(c - 1, 1.0)],
                _ => vec![(0, 0.6), (k - 1, -0.45)],
            })
            .collect();
        v.push(("per-row routing", Mix::PerRow(rows)));
        v
    }
}

pub fn rel_l2(y: &[f32], reference: &[f64]) -> f64 {
    let num: f64 = y.iter().zip(reference).map(|(&a, &b)| (a as f64 - b).powi(2)).sum();
    let den: f64 = reference.iter().map(|b| b * b).sum();
    (num / den.max(1e-300)).sqrt()
}

/// Tolerances from the issue: f32 weights vs an f64 reference, f16 vs the unrounded weights.
pub const TOL_F32: f64 = 1e-5;
pub const TOL_F16: f64 = 2e-3;

/// Runs every routing case of `case` on `backend` with NaN-poisoned outputs. Returns the
/// number of (case, mix) checks made, or a message naming the first failure.
pub async fn check_case<B: Backend>(backend: &B, case: &Case, seed: u64) -> Result<usize, String> {
    let label = format!(
        "[{}] out={} in={} n={} ranks={:?} {}",
        backend.describe(),
        case.out,
        case.inp,
        case.n,
        case.adapters.iter().map(|a| a.rank).collect::<Vec<_>>(),
        case.format.name()
    );
    let mut layer = LoraLinear::new(backend, case.host_weight()).map_err(|e| format!("{label}: {e}"))?;
    for ad in &case.adapters {
        layer.add_adapter(&ad.a, &ad.b, ad.rank, ad.scale).map_err(|e| format!("{label}: {e}"))?;
    }
    let stored = case.stored_w();
    let mut checks = 0;
    for (name, mix) in case.mixes(seed) {
        let x = backend.tensor(&case.x, case.n, case.inp).map_err(|e| e.to_string())?;
        let mut y = backend.tensor(&vec![f32::NAN; case.n * case.out], case.n, case.out).map_err(|e| e.to_string())?;
        layer.forward(&x, &mix, &mut y).map_err(|e| format!("{label} {name}: {e}"))?;
        let got = backend.read(&y).await.map_err(|e| format!("{label} {name}: {e}"))?;
        if let Some(i) = got.iter().position(|v| !v.is_finite()) {
            return Err(format!("{label} {name}: y[{i}] = {} was not written", got[i]));
        }
        let err = rel_l2(&got, &case.reference(&stored, &mix));
        if err > TOL_F32 {
            return Err(format!("{label} {name}: rel L2 error {err:.3e} > {TOL_F32:e} vs reference on stored weights"));
        }
        if case.format == WeightFormat::F16 {
            let err = rel_l2(&got, &case.reference(&case.w, &mix));
            if err > TOL_F16 {
                return Err(format!("{label} {name}: rel L2 error {err:.3e} > {TOL_F16:e} vs f32 weights"));
            }
        }
        checks += 1;
    }
    Ok(checks)
}

/// Block formats (whole blocks per row: of 32, the K-quants' of 256) and bf16, on the
/// routing cases.
pub fn quant_cases() -> Vec<Case> {
    use WeightFormat::*;
    let mut cases = Vec::new();
    let mut seed = 1000;
    for (out, inp) in [(37, 64), (70, 96), (5, 32)] {
        for n in [1, 3, 17] {
            for format in [BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL] {
                seed += 1;
                cases.push(Case::new(seed, out, inp, n, &[7, 16], format));
            }
        }
    }
    for (out, inp) in [(37, 256), (6, 512)] {
        for n in [1, 3, 17] {
            for format in [Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] {
                seed += 1;
                cases.push(Case::new(seed, out, inp, n, &[7, 16], format));
            }
        }
    }
    cases
}

/// The shapes of the issue: in/out not multiples of 4 or of the tile, n = 1, 3, 17, 64,
/// ranks 1, 7, 16, 64, several adapters, both formats.
pub fn standard_cases() -> Vec<Case> {
    let shapes = [(37, 29), (70, 64), (130, 67), (5, 3), (96, 160)];
    let rank_sets: [&[usize]; 4] = [&[1, 7, 16], &[64], &[16, 7], &[]];
    let mut cases = Vec::new();
    let mut seed = 1;
    for (si, &(out, inp)) in shapes.iter().enumerate() {
        for (ni, &n) in [1usize, 3, 17, 64].iter().enumerate() {
            let ranks = rank_sets[(si + ni) % rank_sets.len()];
            for format in [WeightFormat::F32, WeightFormat::F16] {
                seed += 1;
                cases.push(Case::new(seed, out, inp, n, ranks, format));
            }
        }
    }
    cases
}

/// Bad input gets typed errors, and the layer keeps working with what it had.
pub async fn check_errors<B: Backend>(backend: &B) -> Result<usize, String> {
    use lorafuse::ErrorKind;
    let case = Case::new(99, 19, 13, 3, &[4], WeightFormat::F32);
    let expect = |what: &str, r: lorafuse::Result<usize>, kind: ErrorKind| -> Result<(), String> {
        match r {
            Err(e) if e.kind == kind => Ok(()),
            other => Err(format!("{what}: expected {kind:?}, got {other:?}")),
        }
    };
    // Weight lengths.
    let bad_w = HostWeight::new(19, 13, WeightData::F32(vec![0.5; 19 * 13 - 1]));
    if !matches!(bad_w, Err(ref e) if e.kind == ErrorKind::Shape) {
        return Err(format!("short weight: {bad_w:?}"));
    }
    let nan_w = HostWeight::new(2, 2, WeightData::F32(vec![0.5, f32::NAN, 0.1, 0.2]));
    if !matches!(nan_w, Err(ref e) if e.kind == ErrorKind::Config) {
        return Err(format!("NaN weight: {nan_w:?}"));
    }
    let huge = HostWeight::new(usize::MAX / 2, 3, WeightData::F32(vec![]));
    if !matches!(huge, Err(ref e) if e.kind == ErrorKind::Shape) {
        return Err(format!("absurd shape: {huge:?}"));
    }

    let mut layer = LoraLinear::new(backend, case.host_weight()).map_err(|e| e.to_string())?;
    let ad = &case.adapters[0];
    let id = layer.add_adapter(&ad.a, &ad.b, ad.rank, ad.scale).map_err(|e| e.to_string())?;
    expect("A too short", layer.add_adapter(&ad.a[1..], &ad.b, ad.rank, 1.0), ErrorKind::Shape)?;
    expect("rank mismatch", layer.add_adapter(&ad.a, &ad.b, ad.rank + 1, 1.0), ErrorKind::Shape)?;
    expect("rank 0", layer.add_adapter(&[], &[], 0, 1.0), ErrorKind::Adapter)?;
    expect("NaN scale", layer.add_adapter(&ad.a, &ad.b, ad.rank, f32::NAN), ErrorKind::Config)?;
    let mut inf_b = ad.b.clone();
    inf_b[3] = f32::INFINITY;
    expect("Inf in B", layer.add_adapter(&ad.a, &inf_b, ad.rank, 1.0), ErrorKind::Config)?;
    async fn run_len<B: Backend>(l: &LoraLinear<B>, mix: Mix, x: Vec<f32>, n: usize) -> lorafuse::Result<usize> {
        l.run(&x, n, &mix).await.map(|v| v.len())
    }
    expect("unknown adapter", run_len(&layer, Mix::All(vec![(7, 1.0)]), case.x.clone(), 3).await, ErrorKind::Adapter)?;
    expect("x length", run_len(&layer, Mix::Base, case.x[1..].to_vec(), 3).await, ErrorKind::Shape)?;
    expect("zero rows", run_len(&layer, Mix::Base, vec![], 0).await, ErrorKind::Shape)?;
    expect("per-row length", run_len(&layer, Mix::PerRow(vec![vec![]; 2]), case.x.clone(), 3).await, ErrorKind::Shape)?;
    expect("NaN weight in mix", run_len(&layer, Mix::All(vec![(id, f32::NAN)]), case.x.clone(), 3).await, ErrorKind::Config)?;
    let mut nan_x = case.x.clone();
    nan_x[5] = f32::NAN;
    expect("NaN in x", run_len(&layer, Mix::Base, nan_x, 3).await, ErrorKind::Config)?;
    // After all that, the adapter still gives the right answer.
    let mix = Mix::All(vec![(id, 1.0)]);
    let y = layer.run(&case.x, 3, &mix).await.map_err(|e| e.to_string())?;
    let err = rel_l2(&y, &case.reference(&case.w, &mix));
    if err > TOL_F32 {
        return Err(format!("layer broken after rejected input: rel err {err:e}"));
    }
    // Removing frees the id; a new adapter reuses the space and the old id is gone.
    layer.remove_adapter(id).map_err(|e| e.to_string())?;
    expect("removed adapter", run_len(&layer, Mix::All(vec![(id, 1.0)]), case.x.clone(), 3).await, ErrorKind::Adapter)?;
    let id2 = layer.add_adapter(&ad.a, &ad.b, ad.rank, ad.scale).map_err(|e| e.to_string())?;
    let y2 = layer.run(&case.x, 3, &Mix::All(vec![(id2, 1.0)])).await.map_err(|e| e.to_string())?;
    if y2 != y {
        return Err("re-added adapter gives a different result".into());
    }
    Ok(16)
}

/// Every finite f16 bit pattern widens exactly (the SIMD128 path in wasm, portable natively).
pub fn check_f16_widening() -> Result<usize, String> {
    let bits: Vec<u16> = (0..=u16::MAX).filter(|&h| h & 0x7c00 != 0x7c00).collect();
    for chunk in bits.chunks_exact(4) {
        // SAFETY: the chunk holds four values.
        let v = unsafe { lorafuse::cpu::simd::F32x4::load_f16(chunk.as_ptr()) }.to_array();
        for (h, got) in chunk.iter().zip(v) {
            if got.to_bits() != half::f16::from_bits(*h).to_f32().to_bits() {
                return Err(format!("f16 {h:#06x} widened to {got}"));
            }
        }
    }
    Ok(bits.len())
}

/// `F32x4::round` is `f32::round` (ties away from zero, as the integer activation rows were
/// first made) and `F32x4::exp` is within 2e-7 of e^x on [-87, 88], NaN and ±∞ giving NaN
/// (the SIMD128 path in wasm, portable natively).
pub fn check_round_and_exp() -> Result<usize, String> {
    use lorafuse::cpu::simd::F32x4;
    // SAFETY: four floats.
    let lanes = |v: [f32; 4], f: fn(F32x4) -> F32x4| f(unsafe { F32x4::load(v.as_ptr()) }).to_array();
    let mut checks = 0;
    let ties = [0.5, -0.5, 1.5, -2.5, 126.5, 0.499_999_97, -0.499_999_97, 8_388_609.0, -0.0, 3.7, -3.2, 32_767.5];
    let mut rng = Rng::new(7);
    // Random values, and random halves (every one a tie).
    let mut random = rng.vec(4096, 35_000.0);
    random.extend((0..1024).map(|_| rng.below(65_536) as f32 - 32_768.5));
    for v in ties.chunks_exact(4).chain(random.chunks_exact(4)) {
        let got = lanes(v.try_into().unwrap(), F32x4::round);
        for (x, g) in v.iter().zip(got) {
            if g.to_bits() != x.round().to_bits() {
                return Err(format!("round({x}) = {g}, not {}", x.round()));
            }
            checks += 1;
        }
    }
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x <= 88.0 {
        let v = [x, x + 0.0137, -x * 0.5, x * 1e-3];
        for (g, v) in lanes(v, F32x4::exp).iter().zip(v) {
            let want = (v as f64).exp();
            worst = worst.max(((*g as f64 - want) / want).abs());
            checks += 1;
        }
        x += 0.0731;
    }
    if worst >= 2e-7 {
        return Err(format!("exp: worst relative error {worst:e}"));
    }
    let odd = lanes([f32::NAN, f32::INFINITY, -1e3, 1e3], F32x4::exp);
    if !(odd[0].is_nan() && odd[1].is_nan() && odd[2] > 0.0 && odd[2] < 2e-38 && odd[3] > 1e38) {
        return Err(format!("exp of NaN, inf, -1e3, 1e3: {odd:?}"));
    }
    Ok(checks)
}

/// Decode-sized calls (1 and 2 rows) on every block format take integer activation rows
/// (`Quant`): exact to f32's tolerance against the f64 reference even where one value per
/// 32-block is 10^3 times the others (LLMs' outlier channels), on blocks of zeros and tiny
/// values.
pub async fn check_integer_rows() -> Result<usize, String> {
    let mut checks = 0;
    for (i, case) in quant_cases().iter().filter(|c| c.format != WeightFormat::BF16).enumerate() {
        let mut case = Case::new(7000 + i as u64, case.out, case.inp, 1 + i % 2, &[5], case.format);
        let mut r = Rng::new(i as u64);
        for (b, block) in case.x.chunks_mut(32).enumerate() {
            match b % 4 {
                0 => block[r.below(32)] = 1e3 * r.uniform().signum(),
                1 => block.fill(0.0),
                2 => block.iter_mut().for_each(|v| *v *= 1e-30),
                _ => {}
            }
        }
        checks += check_case(&lorafuse::CpuBackend, &case, i as u64).await?;
    }
    Ok(checks)
}

/// The opt-in int8-activation path on block formats: activations rounded to 8 bits per
/// 32-block, so a loose bound (2e-2 relative; measured ~4e-3 to 1.3e-2), and never exact.
pub async fn check_int8() -> Result<usize, String> {
    let b = lorafuse::CpuBackend { int8_activations: true, ..lorafuse::CpuBackend };
    let mut n = 0;
    for (i, case) in quant_cases().iter().enumerate().filter(|(_, c)| c.format != WeightFormat::BF16) {
        let layer = LoraLinear::new(&b, case.host_weight()).map_err(|e| e.to_string())?;
        let y = layer.run(&case.x, case.n, &Mix::Base).await.map_err(|e| e.to_string())?;
        let err = rel_l2(&y, &case.reference(&case.stored_w(), &Mix::Base));
        if !(err <= 2e-2 && err > 1e-7) {
            return Err(format!("case {i} {:?} n={}: rel err {err:e}", case.format, case.n));
        }
        n += 1;
    }
    Ok(n)
}
