#!/usr/bin/env node
// Drives real Chromium RTCPeerConnections over JSON lines: commands on stdin, replies and
// events on stdout, logs on stderr. The protocol is in README.md; the in-page half is page.js.
//
// Run it in a loopback-only network namespace, as the Rust tests do:
//   unshare -n -- sh -c 'ip link set lo up && exec node tests/browser/harness.mjs'
//
// Environment: CHROMIUM (default /usr/bin/chromium), HARNESS_HEADLESS=0 to show the window,
// HARNESS_CHROMIUM_ARGS (extra flags, space separated), HARNESS_TRACE=1 to log every line,
// HARNESS_NO_MEDIA=1 to skip getUserMedia (no tracks then; candidates stay real IPs, because
// --use-fake-ui-for-media-stream alone is what turns mDNS obfuscation off).
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const trace = process.env.HARNESS_TRACE === '1';

// stdout carries protocol lines only; anything that would print there goes to stderr.
const log = (...a) => process.stderr.write(`[harness] ${a.join(' ')}\n`);
console.log = console.info = console.debug = (...a) => log(...a);
console.warn = console.error = (...a) => log(...a);
function out(obj) {
  const line = JSON.stringify(obj);
  if (trace) log('>>', line.length > 300 ? `${line.slice(0, 300)}...` : line);
  process.stdout.write(`${line}\n`);
}

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  ...(process.env.HARNESS_CHROMIUM_ARGS ?? '').split(/\s+/).filter(Boolean),
];

// Ops that may legitimately run long get a longer default; any command may set "timeout_ms".
const DEFAULT_TIMEOUT_MS = 30_000;
const LONG_TIMEOUT_MS = 300_000;
const LONG_OPS = new Set(['sendBulk', 'digest', 'waitGathering', 'waitFor', 'setInputFiles']);

const PAGE_URL = 'http://localhost/harness.html';

let browser = null;
let page = null;
/** Served pages (`open`), each in a browser context of its own, by tab number. */
const tabs = new Map();
let nextTab = 1;
let shuttingDown = false;
/** Commands still running; quit and end of input wait (a little) for them to reply. */
const inFlight = new Set();

async function drain(ms) {
  const deadline = new Promise((r) => setTimeout(r, ms));
  await Promise.race([Promise.allSettled([...inFlight]), deadline]);
}

async function shutdown(code, why, drainMs = 0) {
  if (shuttingDown) return;
  shuttingDown = true;
  if (why) log(why);
  if (drainMs) await drain(drainMs);
  const closing = browser ? browser.close().catch((e) => log('browser.close failed:', e.message)) : Promise.resolve();
  await Promise.race([closing, new Promise((r) => setTimeout(r, 10_000))]);
  process.exit(code);
}

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout: ${what} gave no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

async function handleLine(line) {
  if (trace) log('<<', line.length > 300 ? `${line.slice(0, 300)}...` : line);
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    out({ id: null, error: `invalid JSON: ${e.message}` });
    return;
  }
  if (cmd === null || typeof cmd !== 'object' || Array.isArray(cmd)) {
    out({ id: null, error: 'a command must be a JSON object' });
    return;
  }
  const id = cmd.id ?? null;
  if (typeof cmd.op !== 'string') {
    out({ id, error: 'missing "op"' });
    return;
  }
  if (shuttingDown) {
    out({ id, error: 'harness is shutting down' });
    return;
  }
  if (cmd.op === 'quit') {
    shuttingDown = true;
    await drain(5_000);
    const closing = browser.close().catch((e) => log('browser.close failed:', e.message));
    await Promise.race([closing, new Promise((r) => setTimeout(r, 10_000))]);
    out({ id, ok: true });
    process.exit(0);
  }
  if (cmd.op === 'ping') {
    out({ id, ok: { version: browser.version() } });
    return;
  }
  const ms = cmd.timeout_ms ?? (LONG_OPS.has(cmd.op) ? LONG_TIMEOUT_MS : DEFAULT_TIMEOUT_MS);
  if (TAB_OPS.has(cmd.op)) {
    const state = { last: undefined };
    try {
      const r = await withTimeout(tabOp(cmd, state), ms, `op ${cmd.op}`);
      out({ id, ok: r ?? null });
    } catch (e) {
      let msg = String(e?.message ?? e).split('\n')[0];
      if (state.last !== undefined) msg += ` (last value: ${JSON.stringify(state.last)?.slice(0, 2000)})`;
      out({ id, error: msg });
    }
    return;
  }
  if (!page) {
    out({ id, error: 'no harness page (HARNESS_NO_PAGE=1)' });
    return;
  }
  try {
    const r = await withTimeout(
      page.evaluate((c) => window.__h.handle(c), cmd),
      ms,
      `op ${cmd.op}`,
    );
    if (r && 'error' in r) out({ id, error: r.error });
    else out({ id, ok: r.ok });
  } catch (e) {
    out({ id, error: String(e?.message ?? e).split('\n')[0] });
  }
}

// Served pages: `open` a URL in a new tab (a browser context of its own, so two tabs are two
// users), then drive it. `js` is the body of an async function run in the page.
const TAB_OPS = new Set(['open', 'eval', 'waitFor', 'click', 'fill', 'check', 'setInputFiles', 'screenshot', 'closeTab']);
const runBody = (p, js) =>
  p.evaluate(async (src) => {
    const v = await new Function(`return (async () => {${src}})()`)();
    return v === undefined ? null : v;
  }, js);

async function tabOp(cmd, state) {
  if (cmd.op === 'open') {
    const context = await browser.newContext({
      permissions: ['camera', 'microphone'],
      viewport: cmd.viewport ?? { width: 1280, height: 800 },
    });
    const n = nextTab++;
    const p = await context.newPage();
    p.on('console', (m) => log(`tab ${n} ${m.type()}: ${m.text()}`));
    p.on('pageerror', (e) => log(`tab ${n} page error: ${e.message}`));
    p.on('crash', () => {
      out({ event: 'fatal', error: `tab ${n} crashed` });
      shutdown(3, `tab ${n} crashed`);
    });
    tabs.set(n, { context, page: p });
    await p.goto(cmd.url, { waitUntil: 'load' });
    return { tab: n };
  }
  const t = tabs.get(cmd.tab);
  if (!t) throw new Error(`no tab ${cmd.tab}`);
  const p = t.page;
  switch (cmd.op) {
    case 'eval':
      return await runBody(p, cmd.js);
    case 'waitFor': {
      const poll = cmd.poll_ms ?? 100;
      for (;;) {
        const v = await runBody(p, cmd.js);
        state.last = v;
        if (v) return v;
        await new Promise((r) => setTimeout(r, poll));
      }
    }
    case 'click':
      await p.locator(cmd.selector).click();
      return true;
    case 'fill':
      await p.locator(cmd.selector).fill(cmd.value);
      return true;
    case 'check':
      await p.locator(cmd.selector).setChecked(cmd.on ?? true);
      return true;
    case 'setInputFiles':
      await p.locator(cmd.selector).setInputFiles(cmd.path);
      return true;
    case 'screenshot':
      await p.screenshot({ path: cmd.path, fullPage: cmd.fullPage ?? false });
      return { path: cmd.path };
    case 'closeTab':
      await t.context.close();
      tabs.delete(cmd.tab);
      return true;
    default:
      throw new Error(`unknown tab op ${cmd.op}`);
  }
}

async function main() {
  const t0 = performance.now();
  const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  try {
    browser = await chromium.launch({
      executablePath,
      headless: process.env.HARNESS_HEADLESS !== '0',
      args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
  } catch (e) {
    log(`cannot start Chromium (${executablePath}): ${e.message}`);
    process.exit(2);
  }
  const launchMs = performance.now() - t0;
  browser.on('disconnected', () => {
    if (!shuttingDown) {
      out({ event: 'fatal', error: 'browser disconnected' });
      shutdown(3, 'Chromium went away');
    }
  });

  let info = { media: null, mediaError: 'HARNESS_NO_PAGE=1', secureContext: null };
  if (process.env.HARNESS_NO_PAGE !== '1') try {
    const context = await browser.newContext();
    page = await context.newPage();
    page.on('console', (m) => log(`page ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log(`page error: ${e.message}`));
    page.on('crash', () => {
      out({ event: 'fatal', error: 'page crashed' });
      shutdown(3, 'the page crashed');
    });
    await page.exposeFunction('__emit', (ev) => out(ev));
    // getUserMedia needs a secure context, which about:blank and setContent are not; an
    // http://localhost page is, and Playwright serves it from memory, with no server.
    await page.route(PAGE_URL, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><html><body></body></html>' }),
    );
    await page.goto(PAGE_URL);
    await page.addScriptTag({ path: path.join(here, 'page.js') });
    info = await withTimeout(
      page.evaluate((o) => window.__h.init(o), { noMedia: process.env.HARNESS_NO_MEDIA === '1' }),
      30_000,
      'getUserMedia',
    );
  } catch (e) {
    log(`cannot set up the page: ${e.message}`);
    await shutdown(2);
    return;
  }
  if (!info.media && page) log(`no fake media (${info.mediaError}): addTrack and addTransceiver with a track will fail`);
  const startupMs = Math.round(performance.now() - t0);
  log(`Chromium ${browser.version()} up in ${startupMs} ms (launch ${Math.round(launchMs)} ms), ${Math.round(performance.now())} ms after node started`);
  out({
    event: 'ready',
    version: browser.version(),
    startup_ms: startupMs,
    launch_ms: Math.round(launchMs),
    // Since the node process started (performance.now() counts from there): adds Node's own
    // start and loading playwright-core, about 1 s.
    process_ms: Math.round(performance.now()),
    media: info.media,
    mediaError: info.mediaError,
    secureContext: info.secureContext,
  });

  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (line) => {
    const p = handleLine(line).catch((e) => log('handler failed:', e.stack ?? e));
    inFlight.add(p);
    p.finally(() => inFlight.delete(p));
  });
  rl.on('close', () => shutdown(0, 'stdin closed; closing Chromium', 5_000));
}

process.on('SIGTERM', () => shutdown(0, 'SIGTERM'));
process.on('SIGINT', () => shutdown(130, 'SIGINT'));
process.on('unhandledRejection', (e) => log('unhandled rejection:', e?.stack ?? e));
process.stdout.on('error', (e) => {
  // The reader went away (EPIPE): nobody to talk to any more.
  shutdown(0, `stdout closed (${e.code})`);
});

main().catch((e) => {
  log('fatal:', e?.stack ?? e);
  process.exit(1);
});
