// The bindings of the fused linear's main kernels (matvec.wgsl, matmul.wgsl); binding 0, the
// base weight, belongs to the weights_*.wgsl snippet. Every binding is bound on every call
// (a 16-byte stand-in where unused), so one layout serves every variant; the variants are
// override constants:
//   NORM: 0 none; 1 RMSNorm of each input row computed in the kernel (decode); 2 each row's
//         1/RMS read from `rs` (prefill: rms.wgsl ran first). The gain is `gain`.
//   EPILOGUE: 0 store at column col0 + o (+ bias[o] when BIAS); 1 add into the output;
//         2 out[o] = silu(y[o])·y[end0 + o], 3 the same with GELU (matvec only: a workgroup
//         holds both rows; act.wgsl's glu).

override NORM: u32 = 0u;
override EPILOGUE: u32 = 0u;
override BIAS: bool = false;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> arena: array<u32>; // arena.wgsl: lora_at; DoRA gains are f32 words
@group(0) @binding(3) var<storage, read> lora: array<u32>;  // routes.wgsl
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> gain: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read> rs: array<f32>;
@group(0) @binding(8) var<uniform> p: LinearParams;

// Output (group row) o of input row r is y: store, add or (EPILOGUE 2 and 3, called for the
// gate row with the up row's value in `y_up`) the gated activation.
fn write_out(o: u32, r: u32, y: f32, y_up: f32) {
    let at = r * p.out_cols;
    switch EPILOGUE {
        case 1u: {
            out[at + o] += y;
        }
        case 2u, 3u: {
            out[at + o] = glu(y, y_up, EPILOGUE == 3u);
        }
        default: {
            var v = y;
            if (BIAS) {
                v += bias[o];
            }
            out[at + p.col0 + o] = v;
        }
    }
}
