// The decode kernel's unit of weights (matvec.wgsl): group g of a row is 8 weights, `lo`
// multiplying the 4 inputs from k8(g).x and `hi` those from k8(g).y. Every weights_*.wgsl
// snippet defines k8 and w8; the float formats' groups are runs of 8 (k8_runs.wgsl).

struct W8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}
