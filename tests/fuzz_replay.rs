//! Replays every kept fuzz input (fuzz/corpus: seeds and what campaigns found worth keeping;
//! fuzz/artifacts: inputs that once crashed) through the fuzz targets (`dev::fuzz`), natively
//! and on wasm32 in Node: each must return, with its properties holding (npm test; the
//! campaigns themselves are scripts/fuzz.sh).
#![cfg(feature = "dev")]

use lorafuse::dev::fuzz::TARGETS;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[cfg(not(target_arch = "wasm32"))]
mod files {
    pub fn list(dir: &str) -> Vec<String> {
        std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
    }
    pub fn read(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }
}

/// Node's fs, for the wasm32 build (the tests run in Node).
#[cfg(target_arch = "wasm32")]
mod files {
    use wasm_bindgen::prelude::*;
    #[wasm_bindgen(module = "fs")]
    extern "C" {
        #[wasm_bindgen(js_name = readdirSync, catch)]
        fn readdir(path: &str) -> Result<Vec<String>, JsValue>;
        #[wasm_bindgen(js_name = readFileSync)]
        fn read_file(path: &str) -> Vec<u8>;
    }
    pub fn list(dir: &str) -> Vec<String> {
        readdir(dir).unwrap_or_default()
    }
    pub fn read(path: &str) -> Vec<u8> {
        read_file(path)
    }
}

#[test]
fn every_kept_fuzz_input_runs_cleanly() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");
    let mut counts = Vec::new();
    for (name, target) in TARGETS {
        let (mut n, mut accepted) = (0, 0);
        for kind in ["corpus", "artifacts"] {
            let dir = format!("{root}/{kind}/{name}");
            let mut inputs = files::list(&dir);
            inputs.sort();
            for f in inputs {
                accepted += target(&files::read(&format!("{dir}/{f}"))) as usize;
                n += 1;
            }
        }
        // The seeds are valid files: each target gets past its parser at least once.
        assert!(accepted > 0, "fuzz target {name}: none of {n} kept inputs was accepted");
        counts.push(format!("{name} {accepted}/{n}"));
    }
    eprintln!("replayed (accepted/kept): {}", counts.join(", "));
}
