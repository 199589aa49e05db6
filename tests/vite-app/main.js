// A minimal app bundled by Vite from the installed tarball: the main-thread API on WebGPU and
// the CPU, and lorafuse/worker (a bundled worker loading the bundled wasm) running a tiny model
// with a PEFT adapter. The test compares the logits against PEFT's.
import { LoraRuntime, AdapterError } from 'lorafuse';
import { LoraWorker } from 'lorafuse/worker';

async function linear(backend) {
  // Exact factors, so the small example gives its exact values.
  const rt = await LoraRuntime.create({ backend, adapterPrecision: 'f32' });
  const layer = rt.loraLinear({ weight: Float32Array.of(1, 2, 3, 4, 5, 6), outFeatures: 2, inFeatures: 3 });
  layer.addAdapter('user', { a: [1, 0, -1], b: [2, -1], rank: 1, scale: 0.5 });
  const x = Float32Array.of(0.5, -1, 2);
  return { backend: rt.backend, base: [...(await layer.run(x, 1))], lora: [...(await layer.run(x, 1, { adapter: 'user' }))], threads: rt.threads };
}

async function workerModel(promptIds) {
  const rt = await LoraWorker.create({ backend: 'cpu', adapterPrecision: 'f32' });
  const progress = [];
  const model = await rt.loadModel('/tiny/llama-hf/', { onProgress: (p) => progress.push(p.loaded) });
  await model.loadAdapter('qv', '/tiny/qv-r4/');
  let refused = '';
  try {
    await model.loadAdapter('bad', { files: { 'adapter_config.json': new TextEncoder().encode('{') } });
  } catch (e) {
    refused = `${e.name}: ${e.message}`;
  }
  const logits = await model.forward(promptIds, { adapter: 'qv' });
  const text = await model.generate('Hello', { maxTokens: 4, temperature: 0 }).text();
  await model.dispose();
  rt.dispose();
  return { logits: [...logits], vocab: model.info.vocabSize, refused, progress: progress.length, text, adapterErrorExported: typeof AdapterError, threads: rt.threads, threadsNote: rt.threadsNote };
}

window.runApp = async (promptIds) => ({
  webgpu: await linear('webgpu'),
  cpu: await linear('cpu'),
  worker: await workerModel(promptIds),
  cores: navigator.hardwareConcurrency,
});
window.appReady = true;
document.getElementById('out').textContent = 'ready';
