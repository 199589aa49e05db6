// The f64 reference for the fused LoRA linear, written independently of the Rust code,
// straight from the definition; plus deterministic test data. Used by the demo page to
// check its results and by the JS tests (tests/js/cases.mjs).

/** mulberry32: deterministic uniform numbers in [-1, 1). */
export function rng(seed) {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** f32 → IEEE half bits, round to nearest even (finite inputs in half range). */
export function toHalf(v) {
  f32buf[0] = v;
  const x = u32buf[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp - 127 + 15 >= 0x1f) return sign | 0x7c00;
  if (exp - 127 + 15 <= 0) {
    // Subnormal half: shift the full mantissa, round to nearest even.
    if (exp - 127 + 15 < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - (exp - 127 + 15);
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1))) h++;
    return sign | h;
  }
  let h = ((exp - 127 + 15) << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

export function fromHalf(h) {
  const e = (h >>> 10) & 0x1f, m = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function makeCase(seed, out, inp, n, ranks, dtype) {
  const r = rng(seed);
  const vec = (len, scale) => Float32Array.from({ length: len }, () => r() * scale);
  const ws = 1 / Math.sqrt(inp);
  const w = vec(out * inp, ws);
  const x = vec(n * inp, 1);
  const adapters = ranks.map((rank, i) => ({
    name: `ad${i}`,
    rank,
    a: vec(rank * inp, ws),
    b: vec(out * rank, 0.5),
    scale: 0.25 + 1.5 * (r() + 1) / 2,
  }));
  let weight = w, stored = w;
  if (dtype === 'f16') {
    weight = Uint16Array.from(w, toHalf);
    stored = Float32Array.from(weight, fromHalf);
  }
  return { out, inp, n, dtype, ranks, w, weight, stored, x, adapters };
}

export function reference(c, w, rowStacks) {
  const { n, inp, out } = c;
  const y = new Float64Array(n * out);
  for (let i = 0; i < n; i++) {
    const xo = i * inp;
    const ts = rowStacks[i].map(([ai, weight]) => {
      const ad = c.adapters[ai];
      const t = new Float64Array(ad.rank);
      for (let j = 0; j < ad.rank; j++) {
        let s = 0;
        for (let k = 0; k < inp; k++) s += c.x[xo + k] * ad.a[j * inp + k];
        t[j] = s * ad.scale * weight;
      }
      return [ad, t];
    });
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let k = 0; k < inp; k++) s += c.x[xo + k] * w[o * inp + k];
      for (const [ad, t] of ts) for (let j = 0; j < ad.rank; j++) s += t[j] * ad.b[o * ad.rank + j];
      y[i * out + o] = s;
    }
  }
  return y;
}

export function relL2(y, ref) {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (y[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}
