#!/usr/bin/env node
// Viewer benchmark harness: time to first image (cold and warm) and window/level frame rate
// of a web DICOM viewer, in headless Debian chromium driven by playwright-core.
//
// What one run measures (each run starts a fresh browser with a fresh --user-data-dir):
//   coldMs   navigation start -> first image on screen, empty profile (empty HTTP cache)
//   warmMs   the same after page.reload() in that browser (HTTP cache filled; the page's own
//            revalidations still happen, as with a user pressing reload)
//   warm2Ms  a second reload (V8 may now use its code cache for the bundle)
//   wl*      window/level while dragging: the mouse is pressed on the viewport and moved in
//            `dragSteps` small steps (page.mouse.move); `wlFps` = frames the page reports it
//            redrew / elapsed seconds, `wlRafFps` = requestAnimationFrame ticks / elapsed
//            seconds (the browser's frame ceiling under that load), `wlMovesPerSec` = input
//            events the page accepted per second, `wlMainThreadBusy` = fraction of the drag
//            the renderer's main thread was busy (CDP Performance.TaskDuration).
//            Each move is awaited, and chromium delivers at most one mousemove per frame, so
//            an empty page takes ~60 moves/s here: W/L fps is capped near the rAF rate, and
//            below it the page's per-redraw cost sets the pace.
// Medians over `runs` are printed as JSON on stdout; progress goes to stderr.
//
// CLI:
//   node bench/viewer/measure.mjs --cornerstone --file PATH [--runs 5] [--render cpu|gpu]
//   node bench/viewer/measure.mjs --radlab --url URL [--drag SELECTOR] [--runs 5]
//   common: --drag-steps N (120)  --timeout MS (60000)  --chromium PATH  --size WxH (1024x1024)
// The Cornerstone page must be built first (bench/viewer/setup.sh); nothing is built here.
//
// ---------------------------------------------------------------------------------------
// How a page plugs in (the contract)
// ---------------------------------------------------------------------------------------
// The harness only needs two things from a page, both read through `hooks`:
//   hooks.ready(page, timeoutMs) -> Promise<number>
//       resolves when the first image is on screen, with that moment as performance.now()
//       in the page (i.e. ms since navigation start); throws on page error or timeout.
//   hooks.frames(page) -> Promise<number>
//       a counter the page increments on every window/level redraw that reached the screen.
// and a CSS selector for the element to drag on (`dragSelector`).
//
// The easy way is a page global: `globalHooks('__radlab', {firstImage: 'firstImageMs',
// frames: 'frames'})` waits until `window.__radlab.firstImageMs` is a number and reads
// `window.__radlab.frames`; an `error` field, if set, fails the run. Our own viewer exposes
// `window.__radlab = {firstImageMs, frames}`; the Cornerstone page exposes
// `window.__bench = {firstImageMs, renders, error, renderPath}`.
//
// To add a page: add an entry to PAGES below with
//   describe: one line,
//   async setup(opts) -> { url, hooks, dragSelector, info?, close? }
// where `opts` are the parsed CLI options (setup may start a server and return `close`).
// Or call measurePage() directly from another script:
//   import { measurePage, globalHooks } from './measure.mjs';
//   const r = await measurePage({ url, ...globalHooks('__radlab'), dragSelector: '#view' });
// ---------------------------------------------------------------------------------------
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startStaticServer } from './serve_static.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

// Flags that work on this machine (shared/guide/VIEWER.md, pitfall 5). --headless is added
// by playwright (headless: true); --user-data-dir by launchPersistentContext.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

/** Hooks reading a page global `window[name]`. */
export function globalHooks(name, { firstImage = 'firstImageMs', frames = 'frames', error = 'error' } = {}) {
  return {
    async ready(page, timeoutMs = 60000) {
      const handle = await page.waitForFunction(
        ([n, k, e]) => {
          const g = window[n];
          if (!g) return false;
          if (g[e]) return { error: String(g[e]) };
          return typeof g[k] === 'number' ? { t: g[k] } : false;
        },
        [name, firstImage, error],
        { timeout: timeoutMs, polling: 'raf' },
      );
      const v = await handle.jsonValue();
      if (v.error) throw new Error(`page error: ${v.error}`);
      return v.t;
    },
    async frames(page) {
      return page.evaluate(([n, k]) => Number(window[n]?.[k] ?? NaN), [name, frames]);
    },
  };
}

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

async function navTimings(page) {
  return page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return n ? { domContentLoadedMs: n.domContentLoadedEventEnd, loadMs: n.loadEventEnd } : {};
  });
}

async function measureDrag(page, { frames, dragSelector, dragSteps }) {
  const el = await page.waitForSelector(dragSelector, { state: 'visible' });
  const box = await el.boundingBox();
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  // Let the page go idle (late renders, workers) before the drag.
  await page.waitForTimeout(300);
  await page.evaluate(() => {
    window.__benchRaf = 0;
    window.__benchRafOn = true;
    const tick = () => {
      if (!window.__benchRafOn) return;
      window.__benchRaf++;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  // Main-thread busy time of the renderer over the drag (CDP Performance.TaskDuration).
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const taskSecs = async () =>
    (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'TaskDuration')?.value ?? NaN;
  await page.mouse.move(cx, cy);
  await page.mouse.down();
  const f0 = await frames(page);
  const busy0 = await taskSecs();
  const [t0, r0] = await page.evaluate(() => [performance.now(), window.__benchRaf]);
  // Zig-zag: 4 px right per step for the first half, back left for the second, 1 px down
  // per step; every step changes width and center, so every step asks for a redraw.
  const half = dragSteps >> 1;
  for (let i = 1; i <= dragSteps; i++) {
    const dx = i <= half ? 4 * i : 4 * (dragSteps - i);
    await page.mouse.move(cx + dx, cy + i);
  }
  await page.mouse.up();
  // Two animation frames so a redraw asked for by the last move can land.
  const [t1, r1] = await page.evaluate(
    () =>
      new Promise((res) =>
        requestAnimationFrame(() => requestAnimationFrame(() => res([performance.now(), window.__benchRaf]))),
      ),
  );
  const busy1 = await taskSecs();
  const f1 = await frames(page);
  await page.evaluate(() => (window.__benchRafOn = false));
  await cdp.detach().catch(() => {});
  const secs = (t1 - t0) / 1000;
  return {
    wlMs: t1 - t0,
    wlFrames: f1 - f0,
    wlFps: (f1 - f0) / secs,
    wlRafFps: (r1 - r0) / secs,
    wlMovesPerSec: dragSteps / secs,
    wlMainThreadBusy: (busy1 - busy0) / secs,
  };
}

/**
 * Measure one page `runs` times. Returns {medians, perRun, ...}.
 * @param {object} o
 * @param {string} o.url               page URL
 * @param {Function} o.ready           (page, timeoutMs) => firstImageMs (see header)
 * @param {Function} o.frames          (page) => redraw counter
 * @param {string} o.dragSelector      element to drag window/level on
 * @param {Function} [o.info]          (page) => extra JSON-able facts reported once
 * @param {Function} [o.prepare]       (context) => before the first navigation (e.g. sign in)
 * @param {Function} [o.beforeDrag]    (page) => before the drag (e.g. pick the window tool)
 * @param {Function} [o.after]         (page) => extra measurements on the warm page, merged
 *                                     into the run's figures (numbers get medians)
 */
export async function measurePage({
  url,
  ready,
  frames,
  dragSelector,
  info,
  prepare,
  beforeDrag,
  after,
  runs = 5,
  dragSteps = 120,
  timeoutMs = 60000,
  executablePath = DEFAULT_CHROMIUM,
  viewport = { width: 1024, height: 1024 },
  log = (...a) => console.error(...a),
}) {
  const perRun = [];
  let pageInfo = null;
  let browserVersion = null;
  for (let run = 1; run <= runs; run++) {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'radlab-viewer-bench-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport,
      deviceScaleFactor: 1,
    });
    const consoleErrors = [];
    try {
      browserVersion ??= context.browser()?.version() ?? null;
      const page = context.pages()[0] ?? (await context.newPage());
      page.on('pageerror', (e) => consoleErrors.push(String(e)));
      page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));

      if (prepare) await prepare(context);
      await page.goto(url, { waitUntil: 'commit', timeout: timeoutMs });
      const coldMs = await ready(page, timeoutMs);
      const coldNav = await navTimings(page);

      await page.reload({ waitUntil: 'commit', timeout: timeoutMs });
      const warmMs = await ready(page, timeoutMs);
      const warmNav = await navTimings(page);

      await page.reload({ waitUntil: 'commit', timeout: timeoutMs });
      const warm2Ms = await ready(page, timeoutMs);

      if (info && !pageInfo) pageInfo = await info(page);
      if (beforeDrag) await beforeDrag(page);
      const drag = await measureDrag(page, { frames, dragSelector, dragSteps });
      const more = after ? await after(page) : {};
      const r = {
        run,
        coldMs,
        warmMs,
        warm2Ms,
        coldDomContentLoadedMs: coldNav.domContentLoadedMs,
        warmDomContentLoadedMs: warmNav.domContentLoadedMs,
        ...drag,
        ...more,
      };
      if (!(drag.wlFrames > 0)) r.warning = 'no window/level redraws counted during the drag';
      if (consoleErrors.length) r.consoleErrors = consoleErrors.slice(0, 5);
      perRun.push(r);
      log(
        `run ${run}/${runs}: cold ${coldMs.toFixed(0)} ms, warm ${warmMs.toFixed(0)} ms, ` +
          `warm2 ${warm2Ms.toFixed(0)} ms, W/L ${drag.wlFps.toFixed(1)} fps ` +
          `(${drag.wlFrames} frames in ${drag.wlMs.toFixed(0)} ms, rAF ${drag.wlRafFps.toFixed(1)}/s)`,
      );
    } finally {
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    }
  }
  const keys = Object.keys(perRun[0]).filter((k) => typeof perRun[0][k] === 'number' && k !== 'run');
  const medians = Object.fromEntries(keys.map((k) => [k, round(median(perRun.map((r) => r[k])))]));
  return {
    url,
    runs,
    dragSteps,
    viewport,
    browser: browserVersion,
    chromiumArgs: CHROMIUM_ARGS,
    pageInfo,
    medians,
    perRun: perRun.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)]))),
  };
}

function round(v) {
  return typeof v === 'number' ? Math.round(v * 10) / 10 : v;
}

// ------------------------------------------------------------------ pages
export const DEFAULT_FILE = '/work/shared/data/dicom/cxr/nema_wg04_RG1_J2KI_cr_chest_pa_mono1.dcm';

export const PAGES = {
  cornerstone: {
    describe: 'Cornerstone3D 5.14 reference viewer (bench/viewer/cornerstone/dist), served by serve_static.mjs',
    async setup(opts) {
      const dist = path.join(HERE, 'cornerstone', 'dist');
      if (!fs.existsSync(path.join(dist, 'index.html'))) {
        throw new Error(`${dist}/index.html missing: run bench/viewer/setup.sh first`);
      }
      const file = path.resolve(opts.file || DEFAULT_FILE);
      if (!fs.existsSync(file)) throw new Error(`DICOM file not found: ${file}`);
      const srv = await startStaticServer({ root: dist, files: { '/file.dcm': file } });
      const render = opts.render || 'cpu';
      return {
        url: `${srv.url}/index.html?url=/file.dcm&render=${encodeURIComponent(render)}`,
        ...globalHooks('__bench', { firstImage: 'firstImageMs', frames: 'renders' }),
        dragSelector: opts.drag || '#viewport',
        info: (page) =>
          page.evaluate(() => ({
            renderPath: window.__bench?.renderPath,
            loadedMs: window.__bench?.loadedMs,
            canvas: (() => {
              const c = document.querySelector('#viewport canvas');
              return c ? `${c.width}x${c.height}` : null;
            })(),
          })),
        extra: { file, render },
        close: () => srv.close(),
      };
    },
  },
  radlab: {
    describe: "radlab's own viewer at --url (served by the real server); window.__radlab = {firstImageMs, frames}",
    async setup(opts) {
      if (!opts.url) throw new Error('--radlab needs --url URL');
      return {
        url: opts.url,
        ...globalHooks('__radlab', { firstImage: 'firstImageMs', frames: 'frames' }),
        dragSelector: opts.drag || 'canvas',
        extra: {},
      };
    },
  },
};

// ------------------------------------------------------------------ CLI
function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const k = a.slice(2);
    if (Object.hasOwn(PAGES, k)) {
      o.page = k;
    } else if (['file', 'runs', 'render', 'url', 'drag', 'drag-steps', 'timeout', 'chromium', 'size'].includes(k)) {
      o[k] = argv[++i];
    } else {
      throw new Error(`unknown option ${a}`);
    }
  }
  return o;
}

async function cli() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
    if (!o.page) throw new Error(`choose a page: ${Object.keys(PAGES).map((k) => '--' + k).join(' | ')}`);
  } catch (e) {
    console.error(String(e.message));
    console.error('usage: node bench/viewer/measure.mjs --cornerstone --file PATH [--runs 5] [--render cpu|gpu]');
    console.error('       node bench/viewer/measure.mjs --radlab --url URL [--drag SELECTOR] [--runs 5]');
    process.exit(2);
  }
  const def = PAGES[o.page];
  const s = await def.setup(o);
  const [w, h] = (o.size || '1024x1024').split('x').map(Number);
  try {
    console.error(`${o.page}: ${s.url}`);
    const result = await measurePage({
      url: s.url,
      ready: s.ready,
      frames: s.frames,
      dragSelector: s.dragSelector,
      info: s.info,
      runs: Number(o.runs || 5),
      dragSteps: Number(o['drag-steps'] || 120),
      timeoutMs: Number(o.timeout || 60000),
      executablePath: o.chromium || DEFAULT_CHROMIUM,
      viewport: { width: w, height: h },
    });
    console.log(JSON.stringify({ page: o.page, describe: def.describe, ...s.extra, ...result }, null, 2));
  } finally {
    await s.close?.();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  cli().catch((e) => {
    console.error(e.stack || String(e));
    process.exit(1);
  });
}
