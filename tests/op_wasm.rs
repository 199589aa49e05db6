//! The SIMD128 CPU kernels, compiled to wasm and run in Node by wasm-bindgen-test, on the
//! same cases and f64 reference as the native tests.
#![cfg(target_arch = "wasm32")]

mod common;
use common::*;
use lorafuse::{CpuBackend, FactorFormat};
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

/// int16 adapter factors (the JS default): exact against the reference on the factors
/// rounded as stored, over every routing case and the block formats.
#[wasm_bindgen_test]
async fn simd128_int16_factors_match_f64_reference_on_rounded_factors() {
    let b = CpuBackend { factors: FactorFormat::I16, ..CpuBackend };
    let mut checks = 0;
    for (i, case) in standard_cases().iter().chain(quant_cases().iter()).enumerate() {
        checks += check_case(&b, &case.with_factors(i16_rounded), i as u64).await.unwrap();
    }
    assert!(checks >= 200, "only {checks} checks");
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
fn simd128_round_and_exp() {
    assert!(check_round_and_exp().unwrap() > 8000);
}

#[wasm_bindgen_test]
async fn simd128_integer_rows_are_exact_with_outliers() {
    assert!(check_integer_rows().await.unwrap() >= 100);
}

#[wasm_bindgen_test]
async fn simd128_int8_activations_are_close() {
    assert!(check_int8().await.unwrap() >= 20);
}
