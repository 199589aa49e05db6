// Headless Chromium (Debian's, driven by playwright-core) for the browser tests.
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps dialing out on this closed network.
const BASE_ARGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches Chromium; `webgpu: true` adds the flag that exposes SwiftShader's WebGPU adapter. */
export async function launch({ webgpu = true } = {}) {
  // playwright gives every launch a fresh temporary profile.
  const args = [...BASE_ARGS];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

/** Opens `url`, forwards page errors to the test log, and waits for `window[readyFlag]`. */
export async function open(browser, url, readyFlag = 'suiteReady') {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(url);
  await page.waitForFunction((f) => window[f] === true, readyFlag, { timeout: 60_000 }).catch((e) => {
    throw new Error(`${url} never became ready: ${errors.join('; ') || e.message}`);
  });
  return { page, errors };
}
