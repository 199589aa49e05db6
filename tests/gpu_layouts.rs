//! Rust and WGSL agree on every GPU-side layout: each struct of `gpu::layout` exists in the
//! composed kernels with the same fields at the same offsets and the same size, and every
//! struct a kernel binds as a uniform or storage buffer has its Rust twin there.
#![cfg(not(target_arch = "wasm32"))]

use lorafuse::gpu::layout::LAYOUTS;
use lorafuse::gpu::pipelines::{Epi, Kernel, Norm};
use lorafuse::gpu::ShaderFlags;
use lorafuse::WeightFormat;
use std::collections::BTreeMap;

/// Every kernel (one variant each: the structs do not depend on them).
fn kernels() -> Vec<Kernel> {
    let f = WeightFormat::Q4_1;
    vec![
        Kernel::Shrink(Norm::Inline),
        Kernel::Matvec(f, Norm::Inline, Epi::Store { bias: true }),
        Kernel::Matmul(f, Norm::Rows, Epi::Add),
        Kernel::RowNorms,
        Kernel::NormAdd,
        Kernel::Map(1),
        Kernel::HeadNorm,
        Kernel::Combine(2),
        Kernel::Embed(f),
        Kernel::RopeAppend,
        Kernel::AttentionSplit(true),
        Kernel::AttentionMerge,
        Kernel::AttentionPrefill,
        Kernel::Penalize,
        Kernel::Mask,
        Kernel::TopK,
        Kernel::Pick,
        Kernel::DoraGain(f),
    ]
}

/// name → (size, [(field, offset)]) of every struct in the kernels, and the names of those
/// bound as uniform or storage buffers.
fn wgsl_structs() -> (BTreeMap<String, (usize, Vec<(String, usize)>)>, Vec<String>) {
    let (mut structs, mut bound) = (BTreeMap::new(), Vec::new());
    for k in kernels() {
        let src = k.source(ShaderFlags::default());
        let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{k:?}: {}", e.emit_to_string(&src)));
        for (_, ty) in module.types.iter() {
            if let (Some(name), naga::TypeInner::Struct { members, span }) = (&ty.name, &ty.inner) {
                let fields = members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize)).collect();
                structs.insert(name.clone(), (*span as usize, fields));
            }
        }
        for (_, g) in module.global_variables.iter() {
            let host = matches!(g.space, naga::AddressSpace::Uniform | naga::AddressSpace::Storage { .. });
            if let (true, Some(name)) = (host, &module.types[g.ty].name) {
                bound.push(name.clone());
            }
        }
    }
    (structs, bound)
}

#[test]
fn rust_and_wgsl_layouts_agree() {
    let (structs, bound) = wgsl_structs();
    for (name, size, fields) in LAYOUTS {
        let (wsize, wfields) = structs.get(*name).unwrap_or_else(|| panic!("struct {name} is in gpu::layout but in no kernel"));
        let rust: Vec<(String, usize)> = fields.iter().map(|(f, o)| (f.to_string(), *o)).collect();
        assert_eq!(&rust, wfields, "{name}: Rust fields and offsets vs WGSL");
        assert_eq!(size, wsize, "{name}: size");
    }
    for name in bound {
        assert!(LAYOUTS.iter().any(|l| l.0 == name), "WGSL binds struct {name}, which has no twin in gpu::layout");
    }
    assert!(LAYOUTS.len() >= 10);
}
