//! The SIMD128 CPU kernels, compiled to wasm and run in Node by wasm-bindgen-test, on the
//! same cases and f64 reference as the native tests.
#![cfg(target_arch = "wasm32")]

mod common;
use common::*;
use lorafuse::CpuBackend;
use wasm_bindgen_test::*;

#[wasm_bindgen_test]
async fn simd128_kernels_match_f64_reference() {
    let mut checks = 0;
    for (i, case) in standard_cases().iter().enumerate() {
        checks += check_case(&CpuBackend, case, i as u64).await.unwrap();
    }
    assert!(checks >= 100, "only {checks} checks");
}

#[wasm_bindgen_test]
async fn simd128_rejects_bad_input() {
    check_errors(&CpuBackend).await.unwrap();
}

/// The SIMD f16 widening (bit tricks, not the half crate) on every finite pattern.
#[wasm_bindgen_test]
fn simd128_f16_widening_is_exact() {
    let bits: Vec<u16> = (0..=u16::MAX).filter(|&h| h & 0x7c00 != 0x7c00).collect();
    for chunk in bits.chunks_exact(4) {
        let v = unsafe { lorafuse::cpu::simd::F32x4::load_f16(chunk.as_ptr()) }.to_array();
        for (h, got) in chunk.iter().zip(v) {
            assert_eq!(got.to_bits(), half::f16::from_bits(*h).to_f32().to_bits(), "f16 {h:#06x}");
        }
    }
}
