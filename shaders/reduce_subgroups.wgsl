// Workgroup-wide sum and max over 64 invocations with subgroup operations (the device has
// the `subgroups` feature; in browsers the module starts with `enable subgroups;`): two barriers instead
// of reduce.wgsl's seven. Each subgroup's first lane leaves its subgroup's result in its own
// slot (the others leave the identity); then every subgroup combines all 64 slots, a
// strided share per lane, so nothing is assumed about how lanes map to subgroups or about
// the subgroup size (a subgroup larger than the workgroup reads each slot once).

struct Lane {
    @builtin(local_invocation_index) l: u32,
    @builtin(subgroup_invocation_id) sl: u32,
    @builtin(subgroup_size) size: u32,
}

var<workgroup> red: array<vec4<f32>, 64>;

fn reduce64(lane: Lane, v: vec4<f32>, is_max: bool) -> vec4<f32> {
    // -f32::MAX, by its bits: Tint rejects the decimal literal, rounded up, as out of range.
    let none = select(vec4<f32>(0.0), vec4<f32>(bitcast<f32>(0xff7fffffu)), is_max);
    let own = select(subgroupAdd(v), subgroupMax(v), is_max);
    red[lane.l] = select(none, own, lane.sl == 0u);
    workgroupBarrier();
    var acc = none;
    for (var j = lane.sl; j < 64u; j += lane.size) {
        acc = select(acc + red[j], max(acc, red[j]), is_max);
    }
    let r = select(subgroupAdd(acc), subgroupMax(acc), is_max);
    workgroupBarrier();
    return r;
}
