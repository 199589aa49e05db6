// Parameters and bindings shared by the fused LoRA linear kernels (lora_matvec, lora_matmul).
// Binding 0 (the base weight) belongs to the weights_*.wgsl snippet. A route entry is 8
// words: row, a_off, b_off, rank | format << 16 (arena.wgsl), t_off, coef, g_off (NO_GAIN:
// plain LoRA), gw; a DoRA entry
// adds gw·(g − 1)·base + g·lora, plain ones add lora.

const NO_GAIN: u32 = 0xffffffffu;

struct Params {
    n: u32,         // input rows
    cols: u32,      // in features
    rows: u32,      // weight rows in this chunk
    out_base: u32,  // first output index of this chunk
    y_stride: u32,  // out features
    wg_x: u32,      // workgroups along x (outputs are spread over x and y)
    dora: u32,      // some entry is DoRA: the base term is kept apart to be scaled
    pad1: u32,
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> arena: array<u32>; // arena.wgsl: lora_at; gains are f32 words
@group(0) @binding(3) var<storage, read> t: array<f32>;
@group(0) @binding(4) var<storage, read> routes: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
