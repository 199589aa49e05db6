// npm run bench, part 3: SmolLM2-135M-Instruct Q4_1 end to end on the CPU backend, in Node
// and in headless Chromium, beside wllama (llama.cpp in wasm) in the same Chromium.
import { access, readFile } from 'node:fs/promises';
import * as api from '../pkg-dev/index.js';
import { benchLorafuse } from './measure.mjs';
import { serve } from '../scripts/serve.mjs';
import { launch, open } from '../tests/js/browser.mjs';

const REF = JSON.parse(await readFile(new URL('../tests/fixtures/smollm2/reference.json', import.meta.url)));
const PROMPT = REF.prompt; // 20 tokens
const TOKENS = 32;
const MODEL = new URL('../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf', import.meta.url);
const MiB = (b) => (b / 2 ** 20).toFixed(1);

/** Cores kept busy by other processes over one idle second (Linux's /proc/stat; 0 elsewhere). */
async function busyCores() {
  const read = () => readFile('/proc/stat', 'utf8').then((t) => t.split('\n')[0].trim().split(/\s+/).slice(1).map(Number), () => null);
  const a = await read();
  await new Promise((r) => setTimeout(r, 1000));
  const b = await read();
  if (!a || !b) return 0;
  const d = b.map((v, i) => v - a[i]);
  const total = d.reduce((x, y) => x + y, 0);
  return ((total - d[3] - d[4]) / total) * (await import('node:os')).availableParallelism();
}

function table(rows, ceiling, ref) {
  console.log('| runtime | prompt tokens | load ms | prefill ms | prefill tok/s | decode tok/s | decode GB/s (weights) | % ceiling | vs wllama 1 thread (prefill, decode) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    if (r.error) {
      console.log(`| ${r.label} | error: ${r.error} |`);
      continue;
    }
    const gbps = r.weightBytes ? (r.decodeTokS * r.weightBytes) / 1e9 : undefined;
    const vs = ref && !r.label.startsWith('wllama') ? `${(r.prefillTokS / ref.prefillTokS).toFixed(1)}×, ${(r.decodeTokS / ref.decodeTokS).toFixed(1)}×` : '';
    console.log(
      `| ${r.label} | ${r.promptTokens} | ${r.loadMs.toFixed(0)} | ${r.prefillMs.toFixed(0)} | ${r.prefillTokS.toFixed(1)} | ${r.decodeTokS.toFixed(1)} | ${gbps ? gbps.toFixed(2) : ''} | ${gbps && ceiling ? ((100 * gbps) / ceiling).toFixed(0) + '%' : ''} | ${vs} |`,
    );
  }
}

// The model first: the ceiling's 256 MiB buffer would otherwise count as peak memory.
// Two threads first (the first runtime loads the threaded build), then the same capped at one.
const node2 = await benchLorafuse(api, MODEL, { prompt: PROMPT, tokens: TOKENS, threads: 2, label: 'lorafuse CPU, Node, Q4_1' });
const node = await benchLorafuse(api, MODEL, { prompt: PROMPT, tokens: TOKENS, threads: 1, label: 'lorafuse CPU, Node, Q4_1' });
// llama.cpp's Q4_K_M of the same model (scripts/make-kquant-model.sh), where it was made.
const KQ = new URL('../.cache/models/SmolLM2-135M-Instruct.Q4_K_M.gguf', import.meta.url);
const nodeKq = await access(KQ).then(() => benchLorafuse(api, KQ, { prompt: PROMPT, tokens: TOKENS, threads: 1, label: 'lorafuse CPU, Node, Q4_K_M (llama.cpp)' }), () => null);
const HF = [['f32', 'smollm2-hf-f32/'], ['f16', 'smollm2-hf-f16/']];
const nodeHf = [];
for (const [f, dir] of HF) {
  nodeHf.push(await benchLorafuse(api, new URL(`../.cache/models/${dir}`, import.meta.url), { prompt: PROMPT, tokens: TOKENS, threads: 1, label: `lorafuse CPU, Node, HF ${f}` }));
}
const ceiling = api.wasmGlue().benchReadCeiling(256, 3);
console.log(`\n### SmolLM2-135M-Instruct ${node.quantization}, greedy, ${TOKENS} tokens, 1 and 2 threads`);
console.log(`Node ${process.version}: wasm read ceiling ${ceiling.toFixed(1)} GB/s; peak wasm memory ${MiB(node.peakWasmBytes)} MiB for a ${MiB(node.fileBytes)} MiB file\n`);

// Chromium starts its own session, so Linux's autogroups schedule it as a peer of everything
// else here: a niced background job (a fuzzer) still takes half the cores from its threads,
// which halved both runtimes' 2-thread rows in sessions 18-19. Say so beside the figures.
const busy = await busyCores();
if (busy > 0.3) console.log(`**${busy.toFixed(1)} cores busy with other work before the Chromium runs (nice does not shield Chromium from it): its 2-thread rows are not comparable.**\n`);
const { server, url } = await serve('.');
const browser = await launch({ webgpu: false });
try {
  const { page } = await open(browser, `${url}/bench/page.html`, 'benchReady');
  const extra = HF.map(([f, dir]) => [`lorafuse CPU, Chromium, HF ${f}`, `/.cache/models/${dir}`]);
  const r = await page.evaluate(([p, n, x]) => window.runBench(p, n, x), [PROMPT, TOKENS, extra]);
  const wl1 = r.rows.find((x) => x.label === 'wllama, 1 thread' && !x.error);
  table([node2, node, ...(nodeKq ? [nodeKq] : []), ...nodeHf, ...r.rows], ceiling, wl1);
  const lf = r.rows[0];
  console.log(`\nChromium: peak wasm memory after the Q4_1 model ${MiB(lf.peakWasmBytes)} MiB (file ${MiB(lf.fileBytes)} MiB); cross-origin isolated: ${r.isolated}`);
} finally {
  await browser.close();
}
// The same model end to end on WebGPU (SwiftShader here): 4 tokens, one repetition.
const gpuBrowser = await launch({ webgpu: true });
try {
  const { page } = await open(gpuBrowser, `${url}/bench/page.html`, 'benchReady');
  const g = await page.evaluate(([p]) => window.runWebGpu(p, 4), [PROMPT]);
  console.log('');
  table([g]);
  console.log(`WebGPU: peak wasm memory ${MiB(g.peakWasmBytes)} MiB (the loader holds each tensor once until it is uploaded; wasm memory never shrinks, but nothing is kept after the upload)`);
  const c = g.gpuPerToken;
  if (c) {
    console.log('\nWebGPU counts per decode token (meaningful on any adapter; the times are the host\'s, in wasm, calls into JavaScript included):\n');
    console.log('| dispatches | workgroups / dispatch | KiB / dispatch | host µs in dispatch calls | host µs submitting | submits |');
    console.log('|---|---|---|---|---|---|');
    console.log(`| ${c.dispatches.toFixed(0)} | ${c.workgroupsPerDispatch.toFixed(1)} | ${c.kibPerDispatch.toFixed(1)} | ${c.recordUs.toFixed(0)} | ${c.submitUs.toFixed(0)} | ${c.submits.toFixed(0)} |`);
  }
} catch (e) {
  console.log(`WebGPU row: ${e.message}`);
} finally {
  await gpuBrowser.close();
  server.close();
}
