// Node built-ins for the Node code paths, reached without a literal `import('node:…')`:
// bundlers would resolve one for the browser (Vite stubs it out as an extra chunk, which
// breaks its default worker build).
export async function nodeBuiltin(name) {
  const get = globalThis.process?.getBuiltinModule;
  if (get) return get(`node:${name}`);
  const spec = `node:${name}`;
  return import(/* @vite-ignore */ /* webpackIgnore: true */ spec);
}
