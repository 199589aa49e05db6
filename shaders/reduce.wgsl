// Workgroup-wide sum and max over 64 invocations (every invocation calls them, in uniform
// control flow, and gets the result), through a tree in workgroup memory: the fallback of
// reduce_subgroups.wgsl, which defines the same `Lane` and functions. Composed ahead of the
// kernels that reduce; their entry points take a `Lane`.

struct Lane {
    @builtin(local_invocation_index) l: u32,
}

var<workgroup> red: array<vec4<f32>, 64>;

fn reduce64(lane: Lane, v: vec4<f32>, is_max: bool) -> vec4<f32> {
    let l = lane.l;
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
