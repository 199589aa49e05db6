// npm run bench, part 4: adapters on SmolLM2-135M (CPU backend, Node; BENCH_THREADS, 'auto' by default): decode
// with no adapter, one all-linear r16, four stacked r16; a 4-row batch with 4 different
// adapters vs the same adapter; switching cost; loading a ~10 MB PEFT adapter.
import * as api from '../pkg-dev/index.js';
import { best } from './measure.mjs';
import { peftAdapter as randomAdapter, SMOLLM2 } from '../tests/js/random-adapter.mjs';

/** A random all-linear PEFT adapter for SmolLM2 as {files}, seeded. */
const peftAdapter = (r, seed) => randomAdapter(r, seed, SMOLLM2);

const MODEL = new URL('../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf', import.meta.url);
const { L, D, F, KV, MODULES } = SMOLLM2;
const now = () => performance.now();

// The model on two runtimes, one per adapterPrecision (how adapter factors are stored):
// exact f32 (the default; the batch, switch and load figures below use it) and int16 (opt-in).
const PRECISIONS = ['f32', 'i16'];
const models = [];
const threads = process.env.BENCH_THREADS ? Number(process.env.BENCH_THREADS) : 'auto';
const runtimes = [];
for (const adapterPrecision of PRECISIONS) runtimes.push(await api.LoraRuntime.create({ backend: 'cpu', adapterPrecision, threads }));
for (const rt of runtimes) models.push(await rt.loadModel(MODEL));
const model = models[0];
const prompt = 'Write a haiku about foxes.';
const TOK = 32;
// Decode time per token: (time of a 33-token generation − a 1-token one) / 32. The cases
// take turns in each of REPS rounds, so the machine's drift hits them alike: tok/s is the
// best round of each case, and a case's overhead over its base case is the median over
// rounds of the same round's time ratio (load drifting between rounds cancels), with the
// rounds' spread.
const REPS = Number(process.env.BENCH_ROUNDS ?? 7); // more rounds: BENCH_ROUNDS=15 node bench/adapters.mjs
async function decode(cases) {
  const per = cases.map(() => []);
  for (const { m, opts } of cases) await m.generate(prompt, { maxTokens: 2, ignoreEos: true, ...opts }).text();
  for (let i = 0; i < REPS; i++) {
    for (const [j, { m, opts }] of cases.entries()) {
      const pre = await best(1, () => m.generate(prompt, { maxTokens: 1, ignoreEos: true, ...opts }).text());
      const all = await best(1, () => m.generate(prompt, { maxTokens: TOK + 1, ignoreEos: true, ...opts }).text());
      per[j].push((all - pre) / TOK);
    }
  }
  const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
  return per.map((d, j) => {
    const base = per[cases[j].base ?? j];
    const ratios = d.map((t, i) => t / base[i]);
    return { rate: 1000 / Math.min(...d), overhead: median(ratios) - 1, lo: Math.min(...ratios) - 1, hi: Math.max(...ratios) - 1 };
  });
}
for (const m of models) for (let i = 0; i < 4; i++) await m.loadAdapter(`r16-${i}`, peftAdapter(16, 11 + i));
const stack = { adapters: [0, 1, 2, 3].map((i) => ({ name: `r16-${i}`, weight: 0.25 })) };
// Per precision: base, one r16, four stacked, the last two against the first.
const times = await decode(models.flatMap((m, i) => [{ m, opts: {} }, { m, opts: { adapter: 'r16-0' }, base: 3 * i }, { m, opts: stack, base: 3 * i }]));
const base = times[0];
const baseMs = 1000 / base.rate; // a base token's time
// Physical share on the CPU. The Q4_1 base is compute-bound in wasm (it reads its weights at
// a fraction of the memory ceiling), so the adapter's share of the FLOPs is one floor. But f32
// factors cost 4 bytes per multiply-add against the base's 0.625, so the adapter's own work is
// bandwidth-bound: the time to read its bytes once at this machine's read ceiling (measured
// in this run), over a base token's time, is the other. The physical share is the larger.
const baseMacs = L * (2 * D * D + 2 * KV * D + 3 * F * D) + 49152 * D;
const loraMacs = (r) => L * Object.values(MODULES).reduce((a, [o, i]) => a + r * (o + i), 0);
const ceiling = api.wasmGlue().benchReadCeiling(256, 5); // GB/s: a SIMD sum over 256 MiB
const byteShare = (r, bytes = 4) => (bytes * loraMacs(r)) / (ceiling * 1e9) / (baseMs / 1000); // read time / base token time
console.log(`### Adapters on SmolLM2-135M Q4_1, CPU backend, Node ${process.version}, ${runtimes[0].threads} thread(s), ${TOK} tokens greedy`);
console.log(`wasm read ceiling ${ceiling.toFixed(1)} GB/s; one r16 adds ${((4 * loraMacs(16)) / 2 ** 20).toFixed(1)} MiB of f32 factors per token (half that in 16 bits)`);
console.log(`| case | decode tok/s | overhead: median of ${REPS} rounds (range) | FLOP share | byte share at the ceiling | overhead / FLOP share | overhead / physical share (the larger) |`);
console.log('|---|---|---|---|---|---|---|');
const pct = (v) => `${(100 * v).toFixed(1)}%`;
for (const [label, c, n, size] of PRECISIONS.flatMap((p, i) => [
  [`base (${p} runtime${i === 0 ? ', the default' : ''})`, times[3 * i]],
  [`one all-linear r16, ${p} factors`, times[3 * i + 1], 1, p === 'f32' ? 4 : 2],
  [`4 stacked all-linear r16, ${p} factors`, times[3 * i + 2], 4, p === 'f32' ? 4 : 2],
])) {
  if (!n) {
    console.log(`| ${label} | ${c.rate.toFixed(1)} | | | | | |`);
    continue;
  }
  const ov = c.overhead;
  const flop = (n * loraMacs(16)) / baseMacs, bytes = n * byteShare(16, size);
  console.log(`| ${label} | ${c.rate.toFixed(1)} | ${pct(ov)} (${pct(c.lo)} to ${pct(c.hi)}) | ${pct(flop)} | ${pct(bytes)} | ${(ov / flop).toFixed(2)} | ${(ov / Math.max(flop, bytes)).toFixed(2)} |`);
}
// Batches of 4 rows: 4 different adapters vs the same one.
async function batchRate(adapters) {
  const items = adapters.map((a) => ({ prompt, adapter: a }));
  await model.generateBatch(items, { maxTokens: 2, ignoreEos: true }).texts();
  const t = await best(2, () => model.generateBatch(items, { maxTokens: TOK, ignoreEos: true }).texts());
  return (4 * TOK) / (t / 1000);
}
const mixed = await batchRate(['r16-0', 'r16-1', 'r16-2', 'r16-3']);
const same = await batchRate(['r16-0', 'r16-0', 'r16-0', 'r16-0']);
console.log(`\n4-row batch, ${TOK} tokens each: 4 different adapters ${mixed.toFixed(1)} tok/s, the same adapter ${same.toFixed(1)} tok/s: mixed/same time ratio ${(same / mixed).toFixed(2)} (target ≤ 1.1)`);
// Switching: a 1-token generation after one with another adapter vs after the same one.
const gen1 = (a) => model.generate('Hi', { maxTokens: 1, adapter: a }).text();
let sw = 0, st = 0;
for (let i = 0; i < 10; i++) {
  await gen1('r16-0');
  let t0 = now();
  await gen1('r16-1');
  sw += now() - t0;
  t0 = now();
  await gen1('r16-1');
  st += now() - t0;
}
console.log(`switching adapters between generate calls: ${((sw - st) / 10).toFixed(2)} ms extra per switch (a 1-token call takes ${(st / 10).toFixed(1)} ms; target ≤ 1 ms)`);
// Loading a ~10 MB adapter (r = 8, all-linear): time and wasm memory growth.
const ten = peftAdapter(8, 99);
const size = ten.files['adapter_model.safetensors'].length;
const m0 = api.LoraRuntime.wasmMemoryBytes();
const t0 = now();
await model.loadAdapter('ten', ten);
const loadMs = now() - t0;
const grew = api.LoraRuntime.wasmMemoryBytes() - m0;
const held = model.adapters().find((a) => a.name === 'ten').bytes;
console.log(`loading a ${(size / 2 ** 20).toFixed(1)} MiB PEFT adapter: ${loadMs.toFixed(1)} ms (target ≤ 50 ms); held ${(held / 2 ** 20).toFixed(1)} MiB (${PRECISIONS[0]} factors: about the file's size; int16 holds half); wasm memory grew ${(grew / 2 ** 20).toFixed(1)} MiB`);
