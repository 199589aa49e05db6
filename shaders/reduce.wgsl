// Workgroup-wide sum and max over 64 invocations (every invocation calls them, in uniform
// control flow, and gets the result). Composed ahead of the kernels that reduce.

var<workgroup> red: array<f32, 64>;

fn reduce64(l: u32, v: f32, is_max: bool) -> f32 {
    red[l] = v;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (l < stride) {
            red[l] = select(red[l] + red[l + stride], max(red[l], red[l + stride]), is_max);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn workgroup_sum(l: u32, v: f32) -> f32 {
    return reduce64(l, v, false);
}

fn workgroup_max(l: u32, v: f32) -> f32 {
    return reduce64(l, v, true);
}
