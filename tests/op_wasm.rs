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
async fn simd128_block_formats_match_f64_reference() {
    let mut checks = 0;
    for (i, case) in quant_cases().iter().enumerate() {
        checks += check_case(&CpuBackend, case, i as u64).await.unwrap();
    }
    assert!(checks >= 100, "only {checks} checks");
}

#[wasm_bindgen_test]
async fn simd128_rejects_bad_input() {
    check_errors(&CpuBackend).await.unwrap();
}

/// Every finite f16 bit pattern widens exactly.
#[wasm_bindgen_test]
fn simd128_f16_widening_is_exact() {
    check_f16_widening().unwrap();
}

#[wasm_bindgen_test]
async fn simd128_int8_activations_are_close() {
    assert!(check_int8().await.unwrap() >= 20);
}
