// Group g of a float format's row is weights 8g .. 8g + 8, one run (weights_w8.wgsl).

fn k8(g: u32) -> vec2<u32> {
    return vec2<u32>(8u * g, 8u * g + 4u);
}
