// Test cases for the public JS API, shared by the Node tests and the browser page. The f64
// reference (www/reference.js) is written independently of the Rust one.

import { makeCase, reference, relL2 } from '../../www/reference.js';
export * from '../../www/reference.js';

/** Routing cases: [label, run options, per-row stacks of [adapterIndex, weight]]. */
export function mixes(c) {
  const k = c.adapters.length;
  const list = [['base', undefined, Array.from({ length: c.n }, () => [])]];
  if (k === 0) return list;
  const name = (i) => c.adapters[i].name;
  const all = (stack) => Array.from({ length: c.n }, () => stack);
  list.push(['one adapter', { adapter: name(k - 1) }, all([[k - 1, 1]])]);
  const stack = c.adapters.map((_, i) => [i, 0.3 + 0.4 * i]);
  list.push(['weighted stack', { adapters: stack.map(([i, w]) => ({ name: name(i), weight: w })) }, all(stack)]);
  const rows = Array.from({ length: c.n }, (_, i) => {
    const choice = i % (k + 2);
    if (choice === 0) return [null, []];
    if (choice <= k) return [name(choice - 1), [[choice - 1, 1]]];
    return [[{ name: name(0), weight: 0.6 }, { name: name(k - 1), weight: -0.45 }], [[0, 0.6], [k - 1, -0.45]]];
  });
  list.push(['per-row routing', { adapterPerRow: rows.map((r) => r[0]) }, rows.map((r) => r[1])]);
  return list;
}

/** Odd shapes, n = 1, 3, 17 (and 64 where `big`), ranks 1, 7, 16, 64, both dtypes. */
export function standardCases({ big = true } = {}) {
  const shapes = big ? [[37, 29], [70, 64], [130, 67], [5, 3]] : [[37, 29], [20, 12], [5, 3]];
  const ns = big ? [1, 3, 17, 64] : [1, 3, 17];
  const rankSets = big ? [[1, 7, 16], [64], [16, 7], []] : [[1, 7], [16], [7, 1, 16], []];
  const cases = [];
  let seed = 1;
  shapes.forEach(([out, inp], si) =>
    ns.forEach((n, ni) => {
      for (const dtype of ['f32', 'f16']) cases.push(makeCase(++seed, out, inp, n, rankSets[(si + ni) % rankSets.length], dtype));
    }),
  );
  return cases;
}

export const TOL_F32 = 1e-5;
export const TOL_F16 = 2e-3;

/** Runs every case through the public API; returns {checks, failures}. */
export async function runCases(api, rt, cases) {
  const failures = [];
  let checks = 0;
  for (const c of cases) {
    const label = `${rt.backend} out=${c.out} in=${c.inp} n=${c.n} ranks=[${c.ranks}] ${c.dtype}`;
    const layer = rt.loraLinear({ weight: c.weight, outFeatures: c.out, inFeatures: c.inp, dtype: c.dtype });
    for (const ad of c.adapters) layer.addAdapter(ad.name, ad);
    for (const [name, opts, rows] of mixes(c)) {
      const y = await layer.run(c.x, c.n, opts);
      if (y.length !== c.n * c.out) failures.push(`${label} ${name}: length ${y.length}`);
      const err = relL2(y, reference(c, c.stored, rows));
      if (!(err <= TOL_F32)) failures.push(`${label} ${name}: rel L2 ${err} vs stored weights`);
      if (c.dtype === 'f16') {
        const err16 = relL2(y, reference(c, c.w, rows));
        if (!(err16 <= TOL_F16)) failures.push(`${label} ${name}: rel L2 ${err16} vs f32 weights`);
      }
      checks++;
    }
    layer.dispose();
  }
  return { checks, failures };
}

/** Bad input through the public API: each must throw the named class; the layer survives. */
export async function checkErrors(api, rt) {
  const failures = [];
  const c = makeCase(99, 19, 13, 3, [4], 'f32');
  const expect = async (what, Kind, fn) => {
    try {
      await fn();
      failures.push(`${what}: no error`);
    } catch (e) {
      if (!(e instanceof Kind) || !(e instanceof api.LoraError) || !e.message) {
        failures.push(`${what}: expected ${Kind.name}, got ${e?.name}: ${e?.message}`);
      }
    }
  };
  await expect('short weight', api.ShapeError, () => rt.loraLinear({ weight: c.w.subarray(1), outFeatures: 19, inFeatures: 13 }));
  await expect('f16 weight as Float32Array', api.ConfigError, () => rt.loraLinear({ weight: c.w, outFeatures: 19, inFeatures: 13, dtype: 'f16' }));
  await expect('unknown dtype', api.ConfigError, () => rt.loraLinear({ weight: c.w, outFeatures: 19, inFeatures: 13, dtype: 'q9' }));
  await expect('NaN weight', api.ConfigError, () => rt.loraLinear({ weight: Float32Array.of(1, NaN, 2, 3), outFeatures: 2, inFeatures: 2 }));
  const l = rt.loraLinear({ weight: c.w, outFeatures: 19, inFeatures: 13 });
  const ad = c.adapters[0];
  l.addAdapter('a', ad);
  await expect('duplicate name', api.AdapterError, () => l.addAdapter('a', ad));
  await expect('rank mismatch', api.ShapeError, () => l.addAdapter('b', { ...ad, rank: 5 }));
  await expect('short B', api.ShapeError, () => l.addAdapter('b', { ...ad, b: ad.b.subarray(2) }));
  await expect('NaN scale', api.ConfigError, () => l.addAdapter('b', { ...ad, scale: NaN }));
  await expect('Inf in A', api.ConfigError, () => l.addAdapter('b', { ...ad, a: Float32Array.from(ad.a, (v, i) => (i === 7 ? Infinity : v)) }));
  await expect('unknown adapter', api.AdapterError, () => l.run(c.x, 3, { adapter: 'nope' }));
  await expect('remove unknown', api.AdapterError, () => l.removeAdapter('nope'));
  await expect('x length', api.ShapeError, () => l.run(c.x.subarray(1), 3));
  await expect('fractional rows', api.ShapeError, () => l.run(c.x, 2.5));
  await expect('per-row length', api.ShapeError, () => l.run(c.x, 3, { adapterPerRow: ['a', null] }));
  await expect('two routing options', api.ConfigError, () => l.run(c.x, 3, { adapter: 'a', adapters: [] }));
  await expect('unknown option', api.ConfigError, () => l.run(c.x, 3, { adaptr: 'a' }));
  await expect('NaN mix weight', api.ConfigError, () => l.run(c.x, 3, { adapters: [{ name: 'a', weight: NaN }] }));
  await expect('NaN in x', api.ConfigError, () => l.run(Float32Array.from(c.x, (v, i) => (i === 4 ? NaN : v)), 3));
  // The failed calls lost nothing: adapter "a" still computes the right thing.
  const y = await l.run(c.x, 3, { adapter: 'a' });
  const err = relL2(y, reference(c, c.w, [[[0, 1]], [[0, 1]], [[0, 1]]]));
  if (!(err <= TOL_F32)) failures.push(`layer wrong after rejected input: ${err}`);
  // Replace swaps atomically; a failed replace keeps the old one.
  await expect('bad replace', api.ShapeError, () => l.addAdapter('a', { ...ad, rank: 3 }, { replace: true }));
  const y2 = await l.run(c.x, 3, { adapter: 'a' });
  if (relL2(y2, reference(c, c.w, [[[0, 1]], [[0, 1]], [[0, 1]]])) > TOL_F32) failures.push('failed replace changed the adapter');
  l.setAdapterScale('a', 0);
  const base = await l.run(c.x, 3);
  const zero = await l.run(c.x, 3, { adapter: 'a' });
  if (relL2(zero, Float64Array.from(base)) > 0) failures.push('scale 0 differs from base');
  l.removeAdapter('a');
  if (l.adapters().length !== 0) failures.push('adapter still listed after removal');
  l.dispose();
  return failures;
}
