// Scalar sum and max on top of reduce.wgsl or reduce_subgroups.wgsl (composed after either).

fn workgroup_sum(lane: Lane, v: f32) -> f32 {
    return reduce64(lane, vec4<f32>(v, 0.0, 0.0, 0.0), false).x;
}

fn workgroup_max(lane: Lane, v: f32) -> f32 {
    return reduce64(lane, vec4<f32>(v, 0.0, 0.0, 0.0), true).x;
}
