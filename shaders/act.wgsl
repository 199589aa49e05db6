// Activations shared by the linear epilogues, combine.wgsl and the attention kernels.

// tanh from one exp of a non-positive argument: no overflow for large |x| (tanh lowered to
// exps of 2x turns x > 44 into NaN on some drivers).
fn tanh_safe(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// act(g)·u of a gated MLP: SiLU, or (gelu) GELU's tanh form with PyTorch's constants.
fn glu(g: f32, u: f32, gelu: bool) -> f32 {
    if (gelu) {
        return 0.5 * g * (1.0 + tanh_safe(0.7978845608028654 * (g + 0.044715 * (g * g * g)))) * u;
    }
    return g / (1.0 + exp(-g)) * u;
}
