// A CPU worker thread: instantiates the threaded build on the page's shared memory and joins
// the kernels' pool (workerLoop never returns). threads.js starts it: in browsers as a module
// Worker, in Node as a worker_threads Worker.
import init, { workerLoop } from './wasm-mt/lorafuse.js';
import { nodeBuiltin } from './node.js';

async function run({ module, memory }, reply) {
  try {
    await init({ module_or_path: module, memory });
  } catch (e) {
    reply({ error: String(e?.message ?? e) });
    return;
  }
  reply({ ready: true });
  workerLoop();
}

if (typeof WorkerGlobalScope !== 'undefined' && globalThis instanceof WorkerGlobalScope) {
  self.onmessage = (e) => run(e.data, (m) => self.postMessage(m));
} else {
  // No top-level await: bundlers build workers as classic scripts by default.
  nodeBuiltin('worker_threads').then(({ parentPort, workerData }) => run(workerData, (m) => parentPort.postMessage(m)));
}
