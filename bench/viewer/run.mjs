#!/usr/bin/env node
// The viewer benchmark (issue 6): radlab's web UI against a minimal Cornerstone3D page on
// the same file, in the same run, in headless Debian chromium. Writes a BENCHMARKS.md
// section (markdown) to the path given, and the raw figures next to it as JSON.
//
//   node bench/viewer/run.mjs RADLAB_BIN CORPUS_DIR OUT.md [--runs 5]
//
// For radlab: a fresh catalog with the NEMA RG1 JPEG 2000 CR (1841 x 1955, 15 bits,
// MONOCHROME1) and two other radiographs, a VinDr-CXR project read by one reader, and
// `radlab serve` on a free port. Each run starts a fresh browser profile (empty cache), signs
// in through the API (no page load), opens the reader's task on the RG1 image and waits for
// its pixels on screen (cold), reloads twice (warm), drags the window tool over the image
// (window/level frame rate), then goes to the next task as Submit does and times its image
// (the UI fetched it ahead). Cornerstone: bench/viewer/cornerstone (5.14, CPU rendering,
// `wadouri:` of the same file from a static server), same drag.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { PAGES, measurePage, globalHooks } from './measure.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const [bin, corpus, outMd, ...rest] = process.argv.slice(2);
if (!bin || !corpus || !outMd) {
  console.error('usage: node bench/viewer/run.mjs RADLAB_BIN CORPUS_DIR OUT.md [--runs 5]');
  process.exit(2);
}
const runs = Number(rest[rest.indexOf('--runs') + 1] || 5) || 5;
const rg1 = join(corpus, 'dicom/cxr/nema_wg04_RG1_J2KI_cr_chest_pa_mono1.dcm');
const others = ['dicom/cxr/siim_acr_cr_chest_pa_jpeg_baseline.dcm', 'dicom/cxr/nih_cxr14_dx_sc_implicit_covid0000.dcm'].map((f) => join(corpus, f));

function run(args, input) {
  return new Promise((res, rej) => {
    const p = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`${args.join(' ')}: ${out}`))));
    p.stdin.end(input ?? '');
  });
}

async function serve(data) {
  const p = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', data], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((res, rej) => {
    let buf = '';
    p.stdout.on('data', (d) => {
      buf += d;
      const m = /radlab serving on (http:\/\/[^/\s]+)/.exec(buf);
      if (m) res(m[1]);
    });
    p.on('close', () => rej(new Error('radlab serve stopped: ' + buf)));
  });
  return { url, stop: () => p.kill() };
}

class Client {
  constructor(base) {
    this.base = base;
  }
  async login(username, password) {
    const r = await fetch(`${this.base}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }) });
    if (!r.ok) throw new Error(`login ${username}: ${r.status}`);
    this.cookie = r.headers.get('set-cookie').split(';')[0];
    this.csrf = (await r.json()).csrf_token;
    return this;
  }
  async call(method, path, body) {
    const r = await fetch(this.base + path, {
      method,
      headers: { 'Content-Type': 'application/json', Cookie: this.cookie, 'X-CSRF-Token': this.csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const j = await r.json().catch(() => null);
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
    return j;
  }
}

function gzipSizes(dir) {
  let raw = 0;
  let gz = 0;
  const files = [];
  const walk = (d) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (!p.endsWith('.map')) {
        const b = readFileSync(p);
        const g = gzipSync(b, { level: 9 }).length;
        raw += b.length;
        gz += g;
        files.push({ file: p.slice(dir.length + 1), raw: b.length, gzip: g });
      }
    }
  };
  walk(dir);
  return { raw, gzip: gz, files };
}

const tmp = mkdtempSync(join(tmpdir(), 'radlab-viewer-bench-'));
const data = join(tmp, 'data');
await run(['import', rg1, ...others, '--data-dir', data]);
const pw = 'bench-password-12345';
await run(['user', 'add', 'admin', '--admin', '--password-stdin', '--data-dir', data], pw + '\n');
await run(['user', 'add', 'reader', '--password-stdin', '--data-dir', data], pw + '\n');
const server = await serve(data);
let result;
try {
  const admin = await new Client(server.url).login('admin', pw);
  await admin.call('POST', '/api/v1/projects', { project_id: 'bench', template: 'vindr-cxr' });
  await admin.call('POST', '/api/v1/projects/bench/members', { username: 'reader', role: 'annotator' });
  await admin.call('POST', '/api/v1/projects/bench/images', { all: true, split: 'train' });
  await admin.call('PUT', '/api/v1/projects/bench/workflows/train', { kind: 'single', readers: 1, reviewers: 0 });
  await admin.call('POST', '/api/v1/projects/bench/assign', { split: 'train' });
  const reader = await new Client(server.url).login('reader', pw);
  const tasks = (await reader.call('GET', '/api/v1/tasks?limit=10')).tasks;
  let task;
  for (const t of tasks) {
    const meta = await reader.call('GET', `${t.dicomweb}/metadata`);
    if (meta[0]['00280010'].Value[0] === 1955) task = t;
  }
  if (!task) throw new Error('the RG1 image has no task');

  const radlab = await measurePage({
    url: `${server.url}/#/tasks/${task.task_id}`,
    ...globalHooks('__radlab', { firstImage: 'firstImageMs', frames: 'frames' }),
    dragSelector: '.viewport',
    runs,
    // A 1024 x 1024 viewport beside the label panel and under the toolbars.
    viewport: { width: 1354, height: 1117 },
    prepare: async (context) => {
      const r = await context.request.post(`${server.url}/api/v1/auth/login`, { data: { username: 'reader', password: pw } });
      if (!r.ok()) throw new Error(`sign-in: ${r.status()}`);
    },
    beforeDrag: async (page) => {
      await page.keyboard.press('w');
    },
    info: (page) =>
      page.evaluate(() => {
        const c = document.querySelector('.viewport canvas');
        return { canvas: `${c.width}x${c.height}` };
      }),
    after: async (page) => {
      // Submit lands on the next task: the UI fetched its image ahead.
      await page.waitForFunction(() => window.__radlab?.nextTaskId, null, { timeout: 10000 });
      await page.waitForTimeout(1500);
      const t0 = await page.evaluate(() => {
        const t = performance.now();
        location.hash = `#/tasks/${window.__radlab.nextTaskId}`;
        return t;
      });
      const t1 = await page.waitForFunction((t0) => (window.__radlab?.firstImageMs ?? 0) > t0 && window.__radlab.firstImageMs, t0, { timeout: 30000 });
      return { nextTaskMs: (await t1.jsonValue()) - t0 };
    },
  });

  const cs = await PAGES.cornerstone.setup({ file: rg1, render: 'cpu' });
  let cornerstone;
  try {
    cornerstone = await measurePage({ url: cs.url, ready: cs.ready, frames: cs.frames, dragSelector: cs.dragSelector, info: cs.info, runs, viewport: { width: 1024, height: 1024 } });
  } finally {
    await cs.close?.();
  }
  const ours = gzipSizes(resolve(HERE, '../../web/dist'));
  const theirs = gzipSizes(resolve(HERE, 'cornerstone/dist'));
  result = { radlab, cornerstone, bundle: { radlab: ours, cornerstone: theirs } };
} finally {
  server.stop();
  rmSync(tmp, { recursive: true, force: true });
}

writeFileSync(outMd.replace(/\.md$/, '.json'), JSON.stringify(result, null, 2));
const r = result.radlab.medians;
const c = result.cornerstone.medians;
const kb = (b) => `${(b / 1024).toFixed(0)} KB`;
// A median with the range over the runs.
const span = (page, key, unit) => {
  const v = result[page].perRun.map((x) => x[key]).filter((x) => Number.isFinite(x));
  const m = result[page].medians[key];
  return `${m} ${unit} (${Math.min(...v)}-${Math.max(...v)})`;
};
const x = (a, b) => `${(a / b).toFixed(1)}x`;
const md = `## The viewer: time to image and window/level (radlab web UI vs a minimal Cornerstone3D page)

\`bench/viewer/run.mjs\`, headless Debian chromium ${result.radlab.browser} (CPU, no GPU), ${runs} runs each, medians; every run a fresh browser profile. The file: the NEMA RG1 JPEG 2000 CR (1841 x 1955, 15 bits, MONOCHROME1), the issue's "2,000 x 2,000 16-bit JPEG 2000 CXR". radlab: a reader's task opened in the web UI served by \`radlab serve\` (the server decodes the frame); Cornerstone3D 5.14: \`bench/viewer/cornerstone\`, \`wadouri:\` of the same file from a static server, decoded in the browser (OpenJPEG WASM), CPU rendering (its GPU path is slower here). Both draw into a ${result.radlab.pageInfo?.canvas ?? '?'} (radlab) and ${result.cornerstone.pageInfo?.canvas ?? '?'} (Cornerstone) canvas.

| median (range) | radlab | Cornerstone3D | ratio |
|---|---|---|---|
| open to image on screen, cold (empty cache) | ${span('radlab', 'coldMs', 'ms')} | ${span('cornerstone', 'coldMs', 'ms')} | ${x(c.coldMs, r.coldMs)} faster (goal: 2x) |
| the same, reloaded (warm cache) | ${span('radlab', 'warmMs', 'ms')} | ${span('cornerstone', 'warmMs', 'ms')} | ${x(c.warmMs, r.warmMs)} |
| next task's image after Submit (fetched ahead) | ${span('radlab', 'nextTaskMs', 'ms')} | - | goal: under 200 ms |
| window/level while dragging | ${span('radlab', 'wlFps', 'fps')} | ${span('cornerstone', 'wlFps', 'fps')} | goal: 30 fps or more |
| main thread busy during the drag | ${Math.round(r.wlMainThreadBusy * 100)}% | ${Math.round(c.wlMainThreadBusy * 100)}% | |
| production bundle, gzip (raw) | ${kb(result.bundle.radlab.gzip)} (${kb(result.bundle.radlab.raw)}) | ${kb(result.bundle.cornerstone.gzip)} (${kb(result.bundle.cornerstone.raw)}) | ${x(result.bundle.cornerstone.gzip, result.bundle.radlab.gzip)} smaller |

Chromium delivers at most one mouse move per frame and the harness awaits each move, so about 60 fps is the ceiling of the drag figure. The session cookie is set through the API before the page loads, so radlab's cold figure counts the page, its bundle, the task, the metadata and the decoded frame (7.2 MB of 16-bit values over loopback), not the sign-in. Per-run figures: \`bench/out/viewer.json\`.
`;
writeFileSync(outMd, md);
console.log(md);
