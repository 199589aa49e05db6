// Tiny fixture models through the public API, shared by Node and the browser page: every
// architecture and weight format, GGUF and Hugging Face folders, against PyTorch.
async function bytesAt(url) {
  if (url.protocol === 'file:') {
    const { readFile } = await import(/* @vite-ignore */ 'node:fs/promises');
    return new Uint8Array(await readFile(url));
  }
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

function argmax(v, off, n) {
  let b = 0;
  for (let j = 1; j < n; j++) if (v[off + j] > v[off + b]) b = j;
  return b;
}

/** Returns failure messages (empty when everything matches). `only` filters variants. */
export async function checkTinyModels(api, rt, base, { only = () => true } = {}) {
  const failures = [];
  const ref = JSON.parse(new TextDecoder().decode(await bytesAt(new URL('reference.json', base))));
  let checked = 0;
  for (const [arch, entry] of Object.entries(ref.models)) {
    for (const [variant, e] of Object.entries(entry)) {
      if (!only(arch, variant)) continue;
      const label = `${arch}/${variant}`;
      // GGUF by URL; HF folders by folder URL (the loader fetches what it needs).
      const src = variant.startsWith('hf') ? new URL(`${e.dir}/`, base).href : new URL(e.file, base).href;
      // No CPU fallback: a GPU failure must fail the check, not hide behind the CPU path.
      const model = await rt.loadModel(src, { fallback: false });
      if (model.info.backend !== rt.backend) failures.push(`${label}: ran on ${model.info.backend}, not ${rt.backend}`);
      const ids = model.tokenize(ref.prompt);
      if (JSON.stringify(ids) !== JSON.stringify(ref.prompt_ids)) failures.push(`${label}: prompt ids ${ids}`);
      const logits = await model.forward(ids);
      const want = new Float32Array((await bytesAt(new URL(e.logits, base))).buffer);
      const V = model.info.vocabSize;
      for (let p = 0; p < ids.length; p++) {
        let num = 0, den = 0;
        for (let j = 0; j < V; j++) {
          num += (logits[p * V + j] - want[p * V + j]) ** 2;
          den += want[p * V + j] ** 2;
        }
        const rel = Math.sqrt(num / den);
        if (!(rel <= 1e-4)) failures.push(`${label} position ${p}: rel err ${rel}`);
        if (argmax(logits, p * V, V) !== e.argmax[p]) failures.push(`${label}: argmax at ${p}`);
      }
      const gen = model.generate(ref.prompt, { maxTokens: 8 });
      await gen.text();
      if (JSON.stringify(gen.tokens) !== JSON.stringify(e.greedy_ids)) failures.push(`${label}: greedy ${gen.tokens} vs ${e.greedy_ids}`);
      model.dispose();
      checked++;
    }
  }
  return { checked, failures };
}
