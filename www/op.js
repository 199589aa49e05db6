// Demo page: runs the fused LoRA linear on every backend this browser offers and checks each
// routing mode against an f64 reference. Served by `npm run demo` (package at /pkg/).
import { LoraRuntime } from '/pkg/index.js';
import { makeCase, reference, relL2 } from './reference.js';

const $ = (s) => document.querySelector(s);
const status = (msg, bad = false) => {
  $('#status').textContent = msg;
  $('#status').className = bad ? 'bad' : '';
};

const runtimes = [];
async function detect() {
  const auto = await LoraRuntime.create({ backend: 'auto', adapterPrecision: 'f32' }); // exact: checked at 1e-5 below
  runtimes.push(auto);
  if (auto.backend === 'webgpu') runtimes.push(await LoraRuntime.create({ backend: 'cpu', adapterPrecision: 'f32' }));
  $('#backend').textContent =
    `auto chose ${auto.backend} (${auto.device})` +
    (auto.fallbackReason ? `: WebGPU unavailable: ${auto.fallbackReason}` : '; the CPU path runs too for comparison.');
  $('#run').disabled = false;
}

async function timed(fn) {
  await fn(); // warm-up: pipelines, buffers
  let best = Infinity, result;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    result = await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return [result, best];
}

async function run(form) {
  const p = Object.fromEntries(new FormData(form));
  const [inp, out, rows, rank] = ['inp', 'out', 'rows', 'rank'].map((k) => Number(p[k]));
  const c = makeCase(7, out, inp, rows, [rank, Math.max(1, rank >> 1), rank], p.dtype);
  const names = ['alice', 'bob', 'carol'];
  const modes = [
    ['base only', undefined, Array.from({ length: rows }, () => [])],
    ['alice on all rows', { adapter: 'alice' }, Array.from({ length: rows }, () => [[0, 1]])],
    ['0.7·bob + 0.3·carol', { adapters: [{ name: 'bob', weight: 0.7 }, { name: 'carol', weight: 0.3 }] }, Array.from({ length: rows }, () => [[1, 0.7], [2, 0.3]])],
    ['per row: alice, bob, carol, none…', { adapterPerRow: Array.from({ length: rows }, (_, i) => names[i % 4] ?? null) }, Array.from({ length: rows }, (_, i) => (i % 4 < 3 ? [[i % 4, 1]] : []))],
  ];
  const body = $('#results tbody');
  body.replaceChildren();
  $('#results').hidden = false;
  for (const rt of runtimes) {
    const layer = rt.loraLinear({ weight: c.weight, outFeatures: out, inFeatures: inp, dtype: p.dtype });
    c.adapters.forEach((ad, i) => layer.addAdapter(names[i], ad));
    for (const [label, opts, stacks] of modes) {
      status(`${rt.backend}: ${label}…`);
      const [y, ms] = await timed(() => layer.run(c.x, rows, opts));
      const err = relL2(y, reference(c, c.stored, stacks));
      const flops = 2 * rows * out * inp;
      const ok = err <= 1e-5;
      const tr = document.createElement('tr');
      for (const [text, cls] of [[`${rt.backend}`], [label], [ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`], [(flops / ms / 1e6).toPrecision(3)], [err.toExponential(1)], [ok ? 'ok' : 'MISMATCH', ok ? 'ok' : 'bad']]) {
        const td = document.createElement('td');
        td.textContent = text;
        if (cls) td.className = cls;
        tr.append(td);
      }
      body.append(tr);
    }
    layer.dispose();
  }
  status('Done: every row checked against the f64 reference.');
}

$('#form').addEventListener('submit', (e) => {
  e.preventDefault();
  $('#run').disabled = true;
  run(e.target)
    .catch((err) => status(`${err.name}: ${err.message}`, true))
    .finally(() => ($('#run').disabled = false));
});
detect().catch((err) => status(`Could not start: ${err.name}: ${err.message}`, true));
