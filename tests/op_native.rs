#![cfg(not(target_arch = "wasm32"))]
//! The fused LoRA linear on the native CPU path and on wgpu (Vulkan lavapipe in CI),
//! against an f64 reference. Set LORAFUSE_REQUIRE_GPU=1 to fail instead of skipping when
//! no GPU adapter exists (npm test does).

mod common;
use common::*;
use lorafuse::FactorFormat;
use lorafuse::{CpuBackend, GpuBackend, GpuOptions, HostWeight, LoraLinear, Mix, WeightFormat};


#[test]
fn cpu_matches_f64_reference() {
    let mut checks = 0;
    for (i, case) in standard_cases().iter().enumerate() {
        checks += pollster::block_on(check_case(&CpuBackend, case, i as u64)).unwrap();
    }
    eprintln!("cpu: {checks} checks");
    assert!(checks >= 100);
}

/// Both reductions: subgroup operations where the adapter has them (lavapipe), and the
/// workgroup-memory tree devices without them run.
#[test]
fn gpu_matches_f64_reference() {
    for no_subgroups in [false, true] {
        let Some(g) = gpu(GpuOptions { no_subgroups, ..Default::default() }) else { return };
        eprintln!("GPU adapter: {}, subgroups {}", lorafuse::Backend::describe(&g), g.context().flags.subgroups);
        let mut checks = 0;
        for (i, case) in standard_cases().iter().enumerate() {
            checks += pollster::block_on(check_case(&g, case, i as u64)).unwrap();
        }
        eprintln!("gpu: {checks} checks");
        assert!(checks >= 100);
    }
}

/// Adapter factors stored in 16 bits (int16 with per-rank scales on both backends, f16 on
/// the GPU): exact (f32 tolerance) against the reference on the rounded factors, for every
/// routing case.
#[test]
fn sixteen_bit_adapters_match_f64_reference() {
    fn checks<B: lorafuse::Backend>(b: &B, stored: Rounding) {
        let mut checks = 0;
        for (i, case) in standard_cases().iter().enumerate() {
            checks += pollster::block_on(check_case(b, &case.with_factors(stored), i as u64)).unwrap();
        }
        assert!(checks >= 100, "{checks} checks");
    }
    checks(&CpuBackend { factors: FactorFormat::I16, ..CpuBackend }, i16_rounded);
    if let Some(g) = gpu(GpuOptions { factors: FactorFormat::F16, ..Default::default() }) {
        checks(&g, f16_rounded);
    }
    if let Some(g) = gpu(GpuOptions { factors: FactorFormat::I16, ..Default::default() }) {
        checks(&g, i16_rounded);
    }
}

#[test]
fn cpu_block_formats_match_f64_reference() {
    let mut checks = 0;
    for (i, case) in quant_cases().iter().enumerate() {
        checks += pollster::block_on(check_case(&CpuBackend, case, i as u64)).unwrap();
    }
    assert!(checks >= 300, "{checks} checks");
}

/// Every block format's WGSL decode (weights_quant.wgsl, weights_grouped.wgsl) in the
/// decode (matvec) and prefill (matmul) kernels against the f64 reference on the weights
/// as the scalar decoder reads them.
#[test]
fn gpu_block_formats_match_f64_reference() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    let mut checks = 0;
    for (i, case) in quant_cases().iter().enumerate() {
        checks += pollster::block_on(check_case(&g, case, i as u64)).unwrap();
    }
    assert!(checks >= 300, "{checks} checks");
}

/// Quantize → decode stays within half a quantization step of the input (the encoder and
/// the scalar decoder agree on the layout; GGUF fixtures check it against gguf-py).
#[test]
fn block_formats_round_trip_within_half_a_step() {
    let mut r = Rng::new(5);
    let v = r.vec(32 * 40, 3.0);
    for (format, steps) in [(WeightFormat::Q8_0, 254.0), (WeightFormat::Q4_0, 15.0), (WeightFormat::Q4_1, 15.0)] {
        let w = HostWeight::new(40, 32, lorafuse::WeightData::quantize(format, &v)).unwrap();
        for row in 0..40 {
            let got = w.row_f32(row);
            let src = &v[row * 32..(row + 1) * 32];
            let (lo, hi) = src.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            let step = match format {
                WeightFormat::Q4_1 => (hi - lo) / steps,
                _ => 2.0 * lo.abs().max(hi.abs()) / steps,
            };
            for (g, s) in got.iter().zip(src) {
                // Half a step, plus the f16 rounding of the scale times the largest code.
                let slack = steps / 2.0 * step * 2f32.powi(-11);
                // Q4_0 maps the largest magnitude to -8, so the other side clips at +7: one step.
                let bound = if format == WeightFormat::Q4_0 { step } else { 0.5 * step };
                assert!((g - s).abs() <= bound * 1.001 + slack, "{format:?} row {row}: {g} vs {s} (step {step})");
            }
        }
    }
}

#[test]
fn cpu_rejects_bad_input() {
    pollster::block_on(check_errors(&CpuBackend)).unwrap();
}

#[test]
fn gpu_rejects_bad_input() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    pollster::block_on(check_errors(&g)).unwrap();
}

/// Weights larger than one storage binding are split by rows; forced here with a small cap.
#[test]
fn gpu_splits_weights_over_the_binding_limit() {
    let Some(g) = gpu(GpuOptions { max_binding_bytes: Some(32768), ..Default::default() }) else { return };
    for (seed, (out, inp, n, format)) in
        [(300, 70, 3, WeightFormat::F32), (200, 201, 20, WeightFormat::F16), (250, 101, 1, WeightFormat::F16)]
            .into_iter()
            .enumerate()
    {
        let case = Case::new(seed as u64 + 500, out, inp, n, &[2, 3], format);
        let chunks = GpuBackend::weight_chunks(&lorafuse::Backend::weight(&g, case.host_weight()).unwrap());
        assert!(chunks > 1, "expected a split weight, got {chunks} chunk(s)");
        pollster::block_on(check_case(&g, &case, seed as u64)).unwrap();
    }
}

/// Growing the adapter arena (many adapters added one by one) keeps earlier ones intact.
#[test]
fn adapters_survive_arena_growth_and_removal() {
    fn run<B: lorafuse::Backend>(b: &B) {
        let case = Case::new(77, 45, 38, 5, &[3, 16, 1, 8, 12, 2, 32, 5], WeightFormat::F32);
        let mut layer = LoraLinear::new(b, case.host_weight()).unwrap();
        let ids: Vec<usize> = case
            .adapters
            .iter()
            .map(|a| layer.add_adapter(&a.a, &a.b, a.rank, a.scale).unwrap())
            .collect();
        layer.remove_adapter(ids[1]).unwrap();
        layer.remove_adapter(ids[4]).unwrap();
        for (k, &id) in ids.iter().enumerate() {
            if k == 1 || k == 4 {
                continue;
            }
            let mix = Mix::All(vec![(id, 1.0)]);
            let y = pollster::block_on(layer.run(&case.x, case.n, &mix)).unwrap();
            let want = case.reference(&case.w, &Mix::All(vec![(k, 1.0)]));
            assert!(rel_l2(&y, &want) <= TOL_F32, "adapter {k} wrong after growth");
        }
    }
    run(&CpuBackend);
    if let Some(g) = gpu(GpuOptions::default()) {
        run(&g);
    }
}

/// Every finite f16 bit pattern widens exactly.
#[test]
fn f16_widening_is_exact() {
    check_f16_widening().unwrap();
}

#[test]
fn simd_round_and_exp() {
    assert!(check_round_and_exp().unwrap() > 8000);
}

#[test]
fn cpu_integer_rows_are_exact_with_outliers() {
    assert!(pollster::block_on(check_integer_rows()).unwrap() >= 100);
}

/// The opt-in int8-activation path: close to the exact result, and really different.
#[test]
fn cpu_int8_activations_are_close() {
    pollster::block_on(check_int8()).unwrap();
}

/// f16 math in the prefill matmul (`GpuOptions::f16_math`, where the adapter has
/// shader-f16, as lavapipe does): every weight format at n >= 16 rows, with adapters, stays
/// within 3e-3 relative L2 of the f64 reference (the measured worst is 7.2e-4) and really
/// differs from it (f16 products ran). Without shader-f16 the option falls back to f32, at
/// the f32 tolerance.
#[test]
fn gpu_f16_math_is_close() {
    let Some(g) = gpu(GpuOptions { f16_math: true, ..Default::default() }) else { return };
    let f16 = g.context().flags.f16_math;
    let mut worst = 0f64;
    let cases: Vec<Case> = quant_cases().into_iter().chain(standard_cases()).filter(|c| c.n >= 16).collect();
    for (i, case) in cases.iter().enumerate() {
        let mut layer = LoraLinear::new(&g, case.host_weight()).unwrap();
        for a in &case.adapters {
            layer.add_adapter(&a.a, &a.b, a.rank, a.scale).unwrap();
        }
        let mix = Mix::All((0..case.adapters.len()).map(|id| (id, 1.0)).collect());
        let y = pollster::block_on(layer.run(&case.x, case.n, &mix)).unwrap();
        let err = rel_l2(&y, &case.reference(&case.stored_w(), &mix));
        let ok = if f16 { err <= 3e-3 && err > 1e-6 } else { err <= 1e-5 };
        assert!(ok, "case {i} {:?} {}x{} n={}: relative L2 {err:.2e} (f16 math: {f16})", case.format, case.out, case.inp, case.n);
        worst = worst.max(err);
    }
    eprintln!("f16 math {f16}: {} cases, worst relative L2 {worst:.2e}", cases.len());
    assert!(cases.len() >= 20);
}
