// What every kernel of the fused linear takes (`gpu::layout::LinearParams`), and which of the
// group's weights (parts) a group row belongs to.

struct LinearParams {
    n: u32,         // input rows
    cols: u32,      // in features
    rows: u32,      // group rows this dispatch covers, from row0
    row0: u32,
    w_row0: u32,    // where group row row0 sits in the bound weight chunk
    out_cols: u32,  // row stride of the output
    col0: u32,      // the output column group row 0 lands in
    parts: u32,     // weights in the group, each ending at end0, end1, end2 (group rows)
    end0: u32,
    end1: u32,
    end2: u32,
    entries: u32,   // word where the route entries start in `lora`
    t_base: u32,    // word where the T scratch starts in `lora`
    dora: u32,      // some entry has a DoRA gain
    eps: f32,
    wg_x: u32,      // workgroups along x
}

fn part_of(row: u32) -> u32 {
    return select(select(2u, 1u, row < p.end1), 0u, row < p.end0);
}

fn part_start(pt: u32) -> u32 {
    return select(select(p.end1, p.end0, pt == 1u), 0u, pt == 0u);
}

fn part_rows(pt: u32) -> u32 {
    return select(select(p.end2, p.end1, pt == 1u), p.end0, pt == 0u) - part_start(pt);
}
