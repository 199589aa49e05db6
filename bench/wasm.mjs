// npm run bench, part 1: the wasm SIMD128 CPU kernels in Node. Measures this runtime's own
// read-bandwidth ceiling, then each SmolLM2-135M layer shape at n = 1 and n = 64, base
// alone and with one rank-16 adapter on every row.
import { readFile } from 'node:fs/promises';
import init, { benchFlopCeiling, benchLinear, benchReadCeiling } from '../pkg-dev/wasm/lorafuse.js';

await init({ module_or_path: await readFile(new URL('../pkg-dev/wasm/lorafuse_bg.wasm', import.meta.url)) });

const SHAPES = [[576, 576], [192, 576], [1536, 576], [576, 1536], [49152, 576]];
// Block formats (q4_1, q4_k, ...) run the shapes whose rows are whole blocks (the K-quants'
// 256: the 1536-wide down projection, as llama.cpp's quantizer leaves them in SmolLM2).
const dtypes = (process.env.BENCH_DTYPES ?? 'f32,f16,q4_1,q5_0,q8_0,q4_k,q5_k,q6_k').split(',');
const blockOf = (dtype) => (/_k$/.test(dtype) ? 256 : /^(q|iq)/.test(dtype) ? 32 : 1);
const minMs = Number(process.env.BENCH_MIN_MS ?? 300);
// Weights cycle through this much memory per call sequence, as a real model's 30 layers do.
const coldMiB = Number(process.env.BENCH_COLD_MIB ?? 256);

const ceilingMiB = Number(process.env.BENCH_CEILING_MIB ?? 256);
const ceiling = benchReadCeiling(ceilingMiB, 5);
const flops = benchFlopCeiling(5);
console.log(`wasm (Node ${process.version}, 1 thread): read ceiling ${ceiling.toFixed(1)} GB/s (SIMD sum over ${ceilingMiB} MiB); compute ceiling ${flops.toFixed(1)} GFLOP/s (4-lane multiply + add into 6 register accumulators)`);
console.log('| in→out | n | dtype | base ms | GFLOP/s | % compute ceiling | weight GB/s | % read ceiling | r16 overhead | physical share | overhead / share |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const dtype of dtypes) {
  for (const n of [1, 64]) {
    for (const [out, inp] of SHAPES) {
      if (inp % blockOf(dtype)) continue;
      const r = benchLinear(out, inp, n, dtype, [16], n === 1 ? coldMiB : 0, minMs, false);
      const gflops = (2 * n * out * inp) / (r.base_ms * 1e6);
      const gbps = r.weight_bytes / (r.base_ms * 1e6);
      const overhead = r.lora_ms / r.base_ms - 1;
      // Decode is bandwidth-bound (bytes added), prefill compute-bound (FLOPs added).
      const share = n === 1 ? r.adapter_bytes / r.weight_bytes : (16 * (inp + out)) / (inp * out);
      console.log(
        `| ${inp}→${out} | ${n} | ${dtype} | ${r.base_ms.toFixed(3)} | ${gflops.toFixed(2)} | ${((100 * gflops) / flops).toFixed(0)}% | ${gbps.toFixed(2)} | ${((100 * gbps) / ceiling).toFixed(0)}% | ${(100 * overhead).toFixed(1)}% | ${(100 * share).toFixed(1)}% (${n === 1 ? 'bytes' : 'FLOPs'}) | ${(overhead / share).toFixed(2)} |`,
      );
    }
  }
}
