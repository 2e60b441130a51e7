// End-to-end tests of the web UI in headless Debian chromium (playwright-core, no browser
// download), against a real `radlab serve` with corpus radiographs catalogued. Driven by
// crates/radlab/tests/web_ui.rs, which makes the accounts, imports the images, starts the
// server and passes:
//   RADLAB_URL        the server, e.g. http://127.0.0.1:41234
//   RADLAB_PASSWORDS  JSON {admin, reader1, reader2, reviewer1: password}
//   RADLAB_ARTIFACTS  where screenshots and the report go
//   CHROMIUM          the browser (default /usr/bin/chromium)
// Exit status 0 when every check holds; each failure is printed with the step it broke.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const base = process.env.RADLAB_URL;
const pw = JSON.parse(process.env.RADLAB_PASSWORDS ?? '{}');
const out = process.env.RADLAB_ARTIFACTS ?? 'test-results';
mkdirSync(out, { recursive: true });
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const project = 'e2e-cxr';
const report = { steps: [], axe: {}, rendering: {}, layout: {} };
let shot = 0;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function step(name, f) {
  const t0 = Date.now();
  try {
    await f();
    report.steps.push({ name, ms: Date.now() - t0 });
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    report.steps.push({ name, error: String(e) });
    for (const p of openPages) if (!p.isClosed()) await p.screenshot({ path: join(out, `failed-${openPages.indexOf(p)}.png`) }).catch(() => {});
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
    writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 2));
    throw e;
  }
}

async function snap(page, name) {
  shot++;
  await page.screenshot({ path: join(out, `${String(shot).padStart(2, '0')}-${name}.png`) });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

const problems = [];
const openPages = [];
async function session(user) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  openPages.push(page);
  page.on('pageerror', (e) => problems.push(`${user}: page error: ${e.stack ?? e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of (401|404|409)|ERR_INTERNET_DISCONNECTED|ERR_FAILED/.test(m.text())) problems.push(`${user}: console: ${m.text()}`);
  });
  await page.goto(base + '/');
  return { context, page };
}

async function signIn(page, user) {
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(pw[user]);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('who').waitFor();
}

async function axe(page, name) {
  await page.evaluate(axeSource);
  const r = await page.evaluate(async () => {
    const res = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } });
    return res.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help, targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  report.axe[name] = r;
  check(r.length === 0, `axe on ${name}: ${JSON.stringify(r)}`);
}

/** Wait until the viewer has an image on screen (non-black pixels in the canvas). */
async function imageOnScreen(page, taskId) {
  await page.waitForFunction((taskId) => {
    const r = window.__radlab;
    if (!r?.firstImageMs || (taskId && r.taskId !== taskId)) return false;
    const c = document.querySelector('.viewport canvas');
    if (!c) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4 * 97) if (d[i] > 16) return true;
    return false;
  }, taskId);
}

async function dragOnImage(page, from, to) {
  const box = await page.locator('.viewport').boundingBox();
  await page.mouse.move(box.x + from[0], box.y + from[1]);
  await page.mouse.down();
  for (let i = 1; i <= 8; i++) await page.mouse.move(box.x + from[0] + ((to[0] - from[0]) * i) / 8, box.y + from[1] + ((to[1] - from[1]) * i) / 8);
  await page.mouse.up();
}

async function saved(page) {
  await page.getByTestId('save-state').filter({ hasText: 'All changes saved' }).waitFor({ timeout: 10000 });
}

async function api(page, method, path, body) {
  return page.evaluate(
    async ([method, path, body]) => {
      const csrf = sessionStorage.getItem('radlab.csrf') ?? '';
      const r = await fetch(path, { method, headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body: body ? JSON.stringify(body) : undefined });
      return { status: r.status, body: await r.json().catch(() => null) };
    },
    [method, path, body],
  );
}

let exitCode = 0;
try {
  let firstImage;
  let reader1Task;
  await step('the first page fits 1366x768 and passes axe (WCAG 2.1 AA)', async () => {
    const { page, context } = await session('anon');
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    const fit = await page.evaluate(() => {
      const b = [...document.querySelectorAll('button')].find((x) => x.textContent.includes('Sign in')).getBoundingClientRect();
      return { scrollW: document.documentElement.scrollWidth, scrollH: document.documentElement.scrollHeight, button: b.bottom, w: innerWidth, h: innerHeight };
    });
    report.layout.signin = fit;
    check(fit.scrollW <= 1366 && fit.button <= 768, `sign-in fits the screen: ${JSON.stringify(fit)}`);
    await snap(page, 'sign-in');
    await axe(page, 'sign-in');
    await context.close();
  });

  await step('an admin creates a VinDr-CXR project, adds chest radiographs and assigns readers', async () => {
    const { page, context } = await session('admin');
    await signIn(page, 'admin');
    await axe(page, 'worklist');
    await page.getByRole('link', { name: 'Projects' }).click();
    await page.getByLabel('Project id').fill(project);
    await page.getByLabel('Template').selectOption('vindr-cxr');
    await snap(page, 'admin-new-project');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name: project }).waitFor();
    // A window preset of the project's own.
    await page.getByRole('link', { name: 'Labels' }).click();
    await page.getByRole('button', { name: 'Start from lung / mediastinum / bone' }).click();
    await page.getByRole('button', { name: 'Add a preset' }).click();
    await page.locator('input[name=preset-name-3]').fill('Wide');
    await page.locator('input[name=preset-width-3]').fill('1.6');
    await page.getByRole('button', { name: 'Save labels and presets' }).click();
    await page.getByText('Labels and window presets saved.').waitFor();
    await page.getByRole('link', { name: 'Images' }).click();
    await page.locator('select[name=split]').selectOption('test');
    await page.getByLabel('Body part').fill('CHEST');
    await page.getByRole('button', { name: 'Add the matching images' }).click();
    await page.getByText(/images added to test/).waitFor();
    const added = Number((await page.getByText(/images added to test/).textContent()).match(/(\d+) images added/)[1]);
    check(added >= 3, `at least 3 chest images added, got ${added}`);
    await snap(page, 'admin-images');
    // Splits: one image to train and back.
    await page.getByRole('checkbox', { name: /^Select [0-9a-f]{32}$/ }).first().check();
    await page.locator('select[name=move-to]').selectOption('train');
    await page.getByRole('button', { name: 'Move', exact: true }).click();
    await page.getByText('1 images moved to train.').waitFor();
    await page.getByRole('checkbox', { name: /^Select [0-9a-f]{32}$/ }).first().check();
    await page.locator('select[name=move-to]').selectOption('test');
    await page.getByRole('button', { name: 'Move', exact: true }).click();
    await page.getByText('1 images moved to test.').waitFor();
    // An upload from the browser (a form, multipart/form-data): a corpus CR hip radiograph,
    // kept out of the reading (unassigned).
    await page.locator('select[name=split]').selectOption('unassigned');
    await page.locator('input[name=files]').setInputFiles(process.env.RADLAB_UPLOAD_FILE);
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.getByText('1 files uploaded: 1 images added to unassigned.').waitFor();
    await page.getByRole('link', { name: 'Readers and workflows' }).click();
    for (const [u, role] of [
      ['reader1', 'annotator'],
      ['reader2', 'annotator'],
      ['reviewer1', 'reviewer'],
    ]) {
      await page.locator('input[name=member]').fill(u);
      await page.locator('select[name=role]').selectOption(role);
      await page.getByRole('button', { name: 'Add member' }).click();
      await page.getByText(`${u} is now ${role} of the project.`).waitFor();
    }
    await page.locator('select[name=wf-split]').selectOption('test');
    await page.locator('select[name=wf-kind]').selectOption('consensus');
    await page.locator('input[name=wf-readers]').fill('2');
    await page.locator('input[name=wf-reviewers]').fill('1');
    await page.getByRole('button', { name: 'Set workflow' }).click();
    await page.getByText('Workflow of test set.').waitFor();
    await page.getByTestId('assign-test').click();
    await page.getByText(/Assigned test: \d+ tasks/).waitFor();
    const text = await page.getByText(/Assigned test: \d+ tasks/).textContent();
    check(text.includes(`${added * 2} tasks`), `two readers per image: ${text}`);
    await snap(page, 'admin-assigned');
    await axe(page, 'project-admin');
    await context.close();
  });

  await step('triage on the server rejects the uploaded hip; the admin reads why and keeps it, then takes that back', async () => {
    // The rules alone: the flow under test is the admin's, whatever the network says of the radiographs.
    const said = execFileSync(process.env.RADLAB_BIN, ['triage', '--rules-only', '--project', project, '--data-dir', process.env.RADLAB_DATA_DIR], { encoding: 'utf8' });
    check(/rejected: body-part/.test(said), `the hip rejected by its body part: ${said}`);
    const { page } = await session('admin');
    await signIn(page, 'admin');
    await page.goto(`${base}/#/projects/${project}/triage`);
    const counts = page.getByTestId('triage-counts');
    await counts.waitFor();
    check(/ 1 rejected of /.test(await counts.textContent()), `counts: ${await counts.textContent()}`);
    const table = page.getByRole('table', { name: 'Triage verdicts' });
    await table.getByText(/Body Part Examined "HIP" is not the chest/).waitFor();
    await axe(page, 'triage');
    await snap(page, 'admin-triage');
    await table.getByRole('button', { name: 'Keep' }).click();
    await table.getByText('kept by admin').waitFor();
    check(/ 0 rejected of /.test(await counts.textContent()), `after keeping: ${await counts.textContent()}`);
    const r = await api(page, 'GET', `/api/v1/projects/${project}/triage`);
    check(r.body.verdicts.filter((v) => v.overruled === true).length === 1, `one overruled: ${JSON.stringify(r.body)}`);
    await table.getByRole('button', { name: 'Undo' }).click();
    await table.getByRole('button', { name: 'Keep' }).waitFor();
    check(/ 1 rejected of /.test(await counts.textContent()), `after undo: ${await counts.textContent()}`);
  });

  await step('reader1 opens a CXR, changes the window, draws two labelled boxes, ticks an image label, reloads, finds it all, submits', async () => {
    const { page, context } = await session('reader1');
    await signIn(page, 'reader1');
    await page.getByTestId('start-next').filter({ hasText: 'Start reading' }).waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid=count-todo]').textContent !== '0');
    await snap(page, 'reader1-worklist');
    await page.getByTestId('start-next').filter({ hasText: 'Start reading' }).click();
    await imageOnScreen(page);
    reader1Task = await page.evaluate(() => window.__radlab.taskId);
    firstImage = await page.evaluate(async (t) => (await (await fetch(`/api/v1/tasks/${t}/annotations`)).json()).image, reader1Task);
    await snap(page, 'reader1-image');
    await axe(page, 'task');
    // The window: a preset from the keyboard, then a right-button drag.
    const wl0 = await page.getByTestId('wl').textContent();
    await page.locator('.viewport').click({ position: { x: 5, y: 5 }, button: 'middle' });
    await page.keyboard.press('Shift+Digit2');
    await page.waitForFunction((w) => document.querySelector('[data-testid=wl]').textContent !== w, wl0);
    const wl1 = await page.getByTestId('wl').textContent();
    check(wl1.includes('Auto') || wl1 !== wl0, `window preset applied: ${wl0} -> ${wl1}`);
    const vp = await page.locator('.viewport').boundingBox();
    await page.mouse.move(vp.x + 300, vp.y + 300);
    await page.mouse.down({ button: 'right' });
    await page.mouse.move(vp.x + 360, vp.y + 330, { steps: 6 });
    await page.mouse.up({ button: 'right' });
    await page.waitForFunction((w) => document.querySelector('[data-testid=wl]').textContent !== w, wl1, { timeout: 5000 });
    // The project's own preset, from the menu.
    const wide = await page.getByTestId('window-preset').locator('option', { hasText: 'Wide' }).getAttribute('value');
    await page.getByTestId('window-preset').selectOption(wide);
    await page.getByTestId('wl').filter({ hasText: '(Wide)' }).waitFor({ timeout: 5000 });
    await snap(page, 'reader1-window');
    // Box 1: drawn, then label by its key (1: Aortic enlargement).
    await dragOnImage(page, [300, 200], [420, 320]);
    await page.getByRole('dialog', { name: 'Choose a label' }).waitFor();
    await page.keyboard.press('1');
    // Box 2: label by typing.
    await dragOnImage(page, [480, 380], [600, 520]);
    await page.getByRole('dialog', { name: 'Choose a label' }).waitFor();
    await page.getByLabel('Filter labels').fill('cardio');
    await page.keyboard.press('Enter');
    await page.getByRole('checkbox', { name: /Other disease/ }).check();
    await saved(page);
    const boxes = await page.getByTestId('boxes').locator('li').allTextContents();
    check(boxes.length === 2, `two boxes: ${boxes}`);
    check(boxes[0].includes('Aortic enlargement') && boxes[1].includes('Cardiomegaly'), `labels: ${boxes}`);
    await snap(page, 'reader1-two-boxes');
    await page.reload();
    await imageOnScreen(page);
    const after = await page.getByTestId('boxes').locator('li').allTextContents();
    check(after.length === 2 && after[0].includes('Aortic enlargement') && after[1].includes('Cardiomegaly'), `after reload: ${after}`);
    check(await page.getByRole('checkbox', { name: /Other disease/ }).isChecked(), 'image label kept');
    await snap(page, 'reader1-after-reload');
    // Undo and redo of a third box.
    await dragOnImage(page, [200, 500], [260, 560]);
    await page.getByRole('dialog', { name: 'Choose a label' }).waitFor();
    await page.keyboard.press('2');
    await saved(page);
    check((await page.getByTestId('boxes').locator('li').count()) === 3, 'third box');
    await page.locator('.viewport').click({ position: { x: 5, y: 5 }, button: 'middle' });
    await page.keyboard.press('Control+z');
    await saved(page);
    check((await page.getByTestId('boxes').locator('li').count()) === 2, 'undo removed it');
    // Select box 1, resize it by its corner, move it, give it a second label, a note.
    const selectedText = async () => (await page.locator('.side p.small').filter({ hasText: 'Selected:' }).textContent()) ?? '';
    await page.mouse.click(vp.x + 360, vp.y + 260);
    await page.locator('.side p.small').filter({ hasText: 'Selected: Aortic enlargement' }).waitFor();
    const before = await selectedText();
    await dragOnImage(page, [420, 320], [460, 350]);
    await page.waitForFunction((b) => document.querySelector('.side p.small')?.textContent !== b, before);
    const resized = await selectedText();
    await dragOnImage(page, [350, 250], [370, 262]);
    await page.waitForFunction((b) => document.querySelector('.side p.small')?.textContent !== b, resized);
    const moved = await selectedText();
    const nums = (t) => t.split('·')[1].split(',').map(Number);
    const [b0, b1, b2] = [before, resized, moved].map(nums);
    check(b1[0] === b0[0] && b1[1] === b0[1] && b1[2] > b0[2] && b1[3] > b0[3], `resized by the corner: ${b0} -> ${b1}`);
    check(b2[0] > b1[0] && b2[1] > b1[1] && Math.abs(b2[2] - b2[0] - (b1[2] - b1[0])) <= 1 && Math.abs(b2[3] - b2[1] - (b1[3] - b1[1])) <= 1, `moved, same size: ${b1} -> ${b2}`);
    await page.keyboard.press('3');
    await page.getByTestId('boxes').locator('li.selected').filter({ hasText: 'Calcification' }).waitFor();
    await page.keyboard.press('n');
    await page.keyboard.type('calcified arch');
    await page.keyboard.press('Escape');
    await page.keyboard.press('c');
    await page.keyboard.type('PA view, good inspiration');
    await page.keyboard.press('Escape');
    // "No finding" stands alone: refused while there are boxes.
    await page.getByRole('checkbox', { name: /No finding/ }).click();
    await page.getByText('excludes every other label').waitFor();
    check(!(await page.getByRole('checkbox', { name: /No finding/ }).isChecked()), 'No finding refused beside boxes');
    await saved(page);
    const layer = (await api(page, 'GET', `/api/v1/tasks/${reader1Task}/annotations`)).body;
    const onBox1 = layer.annotations.filter((a) => a.bbox && a.note === 'calcified arch').map((a) => a.label).sort();
    check(JSON.stringify(onBox1) === JSON.stringify(['Aortic enlargement', 'Calcification']), `two labels on one box with its note: ${JSON.stringify(layer.annotations)}`);
    check(layer.comment === 'PA view, good inspiration', `comment: ${layer.comment}`);
    await snap(page, 'reader1-edited');
    await page.keyboard.press('?');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    await snap(page, 'reader1-shortcuts');
    await page.keyboard.press('Escape');
    await page.getByTestId('submit').click();
    await page.waitForFunction((t) => window.__radlab?.taskId !== t || location.hash === '#/', reader1Task);
    const done = await api(page, 'GET', `/api/v1/tasks?state=SUBMITTED`);
    check(done.body.tasks.some((t) => t.task_id === reader1Task), 'task submitted');
    await snap(page, 'reader1-next-task');
    await context.close();
  });

  await step('a change made offline is kept and sent on reconnect; one from a closed tab is sent when the task is opened again', async () => {
    const { page, context } = await session('reader1');
    await signIn(page, 'reader1');
    await page.getByTestId('start-next').filter({ hasText: 'Start reading' }).click();
    await imageOnScreen(page);
    const task = await page.evaluate(() => window.__radlab.taskId);
    await context.setOffline(true);
    await dragOnImage(page, [300, 300], [400, 400]);
    await page.getByRole('dialog', { name: 'Choose a label' }).waitFor();
    await page.keyboard.press('3');
    await page.getByTestId('save-state').filter({ hasText: 'Offline' }).waitFor({ timeout: 10000 });
    await snap(page, 'offline');
    await context.setOffline(false);
    await saved(page);
    let r = await api(page, 'GET', `/api/v1/tasks/${task}/annotations`);
    check(r.body.annotations.length === 1, `sent on reconnect: ${JSON.stringify(r.body.annotations)}`);
    // Writes fail (the server unreachable for them), the tab is closed, the task opened again.
    await page.route('**/annotations', (route) => (route.request().method() === 'PUT' ? route.abort() : route.continue()));
    await dragOnImage(page, [250, 150], [320, 230]);
    await page.getByRole('dialog', { name: 'Choose a label' }).waitFor();
    await page.keyboard.press('4');
    await page.getByTestId('save-state').filter({ hasText: 'Offline' }).waitFor({ timeout: 10000 });
    const page2 = await context.newPage();
    await page.close({ runBeforeUnload: false });
    await page2.goto(`${base}/#/tasks/${task}`);
    await imageOnScreen(page2);
    await saved(page2);
    r = await api(page2, 'GET', `/api/v1/tasks/${task}/annotations`);
    check(r.body.annotations.length === 2, `sent from the new tab: ${JSON.stringify(r.body.annotations)}`);
    await context.close();
  });

  await step("reader2 reads the same image and cannot see reader1's boxes", async () => {
    const { page, context } = await session('reader2');
    await signIn(page, 'reader2');
    const mine = await api(page, 'GET', `/api/v1/tasks?limit=100`);
    const same = mine.body.tasks.find((t) => t.image_id === firstImage.image_id);
    check(same, 'reader2 has the image');
    const other = await api(page, 'GET', `/api/v1/tasks/${reader1Task}/annotations`);
    check(other.status === 404, `reader1's task answers 404 to reader2, got ${other.status}`);
    await page.goto(`${base}/#/tasks/${same.task_id}`);
    await imageOnScreen(page);
    check((await page.getByTestId('boxes').locator('li').count()) === 0, 'no box of reader1 shows');
    check((await page.locator('.overlay rect').count()) === 0, 'nothing drawn on the image');
    await snap(page, 'reader2-blind');
    // A study of two images shows both in the strip; the other one is for viewing only.
    for (const t of mine.body.tasks.filter((t) => t.study_instance_uid.endsWith('.850818')).slice(0, 1)) {
      await page.goto(`${base}/#/tasks/${t.task_id}`);
      await imageOnScreen(page);
      const thumbs = page.getByRole('navigation', { name: 'Images of the study' }).getByRole('button');
      await thumbs.nth(1).waitFor();
      check((await thumbs.count()) === 2, 'two images in the strip');
      await thumbs.filter({ hasNotText: 'task' }).click();
      await page.getByText('Another image of the study').waitFor();
      await page.waitForFunction(() => window.__radlab?.firstImageMs);
      check((await page.locator('.overlay rect').count()) === 0, 'no boxes on the other image');
      await snap(page, 'reader2-study-strip');
      await thumbs.filter({ hasText: 'task' }).click();
      await page.getByText('Another image of the study').waitFor({ state: 'detached' });
      report.strip = true;
    }
    check(report.strip || !process.env.RADLAB_TWO_IMAGE_STUDY, 'the two-image study was opened');
    await page.goto(`${base}/#/tasks/${same.task_id}`);
    await imageOnScreen(page, same.task_id);
    // The same finding, about where reader1 left it (drawn, resized, moved).
    await dragOnImage(page, [322, 214], [478, 360]);
    await page.getByRole('dialog', { name: 'Choose a label' }).waitFor();
    await page.keyboard.press('1');
    await saved(page);
    await page.getByTestId('submit').click();
    await page.waitForFunction((t) => !location.hash.includes(t), same.task_id);
    await context.close();
  });

  await step('the reviewer sees both layers and the fused proposal, accepts it and submits the consensus', async () => {
    const { page, context } = await session('reviewer1');
    await signIn(page, 'reviewer1');
    await page.getByTestId('start-next').filter({ hasText: 'Start reading' }).click();
    await imageOnScreen(page);
    const layers = await page.getByRole('region', { name: 'Layers' }).getByRole('checkbox').count();
    check(layers === 4, `two reader layers, the proposal, the consensus: ${layers}`);
    const proposal = await page.getByTestId('proposal').locator('li').allTextContents();
    check(proposal.some((p) => p.includes('Aortic enlargement') && p.includes('· 2 of 2 readers')), `proposal: ${proposal}`);
    check(proposal.some((p) => p.includes('Cardiomegaly') && p.includes('· 1 of 2 readers')), `proposal: ${proposal}`);
    const overlayHas = (reader, shown) =>
      page.waitForFunction(
        ([reader, shown]) => [...document.querySelectorAll('.overlay text')].some((t) => t.textContent.startsWith(`${reader}:`)) === shown,
        [reader, shown],
        { timeout: 5000 },
      );
    await overlayHas('reader1', true);
    await overlayHas('reader2', true);
    // Each reader's layer can be hidden.
    await page.getByRole('region', { name: 'Layers' }).getByRole('checkbox', { name: /reader1/ }).uncheck();
    await overlayHas('reader1', false);
    await overlayHas('reader2', true);
    await page.getByRole('region', { name: 'Layers' }).getByRole('checkbox', { name: /reader1/ }).check();
    await overlayHas('reader1', true);
    // The same from the keyboard: Alt+2 hides reader2's layer, again shows it.
    await page.keyboard.press('Alt+Digit2');
    await overlayHas('reader2', false);
    await page.keyboard.press('Alt+Digit2');
    await overlayHas('reader2', true);
    await snap(page, 'review-layers');
    await page.getByTestId('accept-all').click();
    await saved(page);
    check((await page.getByTestId('boxes').locator('li').count()) >= 2, 'the proposed boxes accepted into the consensus');
    const left = await page.getByTestId('proposal').getByRole('button', { name: 'Accept' }).count();
    check(left === 0, `every proposal accepted (${left} left)`);
    await snap(page, 'review-accepted');
    await axe(page, 'review');
    const task = await page.evaluate(() => window.__radlab.taskId);
    await page.getByTestId('submit').click();
    await page.waitForFunction((t) => !location.hash.includes(t), task);
    await context.close();
    const admin = await session('admin');
    await signIn(admin.page, 'admin');
    const all = await api(admin.page, 'GET', `/api/v1/projects/${project}/annotations`);
    const consensus = all.body.annotations.filter((a) => a.reader == null);
    check(consensus.some((a) => a.label === 'Aortic enlargement'), `consensus stored: ${JSON.stringify(all.body.annotations.slice(0, 5))}`);
    // Progress, then an export of the labels, downloaded.
    await admin.page.goto(`${base}/#/projects/${project}/overview`);
    await admin.page.getByText('Images by split and state').waitFor();
    await snap(admin.page, 'admin-progress');
    await admin.page.getByRole('link', { name: 'Export' }).click();
    await admin.page.getByTestId('start-export').click();
    await admin.page.getByTestId('download').first().waitFor({ timeout: 30000 });
    const [download] = await Promise.all([admin.page.waitForEvent('download'), admin.page.getByTestId('download').first().click()]);
    const csv = readFileSync(await download.path(), 'utf8');
    check(csv.split('\n')[0].includes('image_id') && csv.includes('Aortic enlargement') && csv.includes('Other disease'), `exported CSV: ${csv.slice(0, 300)}`);
    await snap(admin.page, 'admin-export');
    await admin.context.close();
  });

  await step('the canvas shows a MONOCHROME1 CXR as the server renders it at the same window', async () => {
    const { page, context } = await session('reader2');
    await signIn(page, 'reader2');
    const tasks = (await api(page, 'GET', `/api/v1/tasks?limit=100`)).body.tasks;
    let target;
    for (const t of tasks) {
      const meta = await page.evaluate(async (u) => (await fetch(`${u}/metadata`)).json(), t.dicomweb);
      if (meta[0]['00280004'].Value[0] === 'MONOCHROME1' && meta[0]['00280010'].Value[0] > 1000) target = t;
    }
    check(target, 'a MONOCHROME1 radiograph among the tasks');
    await page.goto(`${base}/#/tasks/${target.task_id}`);
    await imageOnScreen(page);
    const result = await page.evaluate(async (url) => {
      const v = window.__radlab.viewer;
      const img = v.image;
      const windows = [
        { center: (img.min + img.max) / 2, width: (img.max - img.min) / 2 },
        { center: img.min + (img.max - img.min) * 0.3, width: 700 },
      ];
      const out = [];
      for (const w of windows) {
        v.setWindow({ center: w.center, width: w.width, fn: 'LINEAR' });
        v.oneToOne();
        v.render();
        const c = v.canvas;
        const shown = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const res = await fetch(`${url}/rendered?window=${w.center},${w.width}`, { headers: { Accept: 'image/png' } });
        const bmp = await createImageBitmap(await res.blob());
        const oc = new OffscreenCanvas(bmp.width, bmp.height);
        const octx = oc.getContext('2d');
        octx.drawImage(bmp, 0, 0);
        const server = octx.getImageData(0, 0, bmp.width, bmp.height).data;
        let n = 0;
        let max = 0;
        let sum = 0;
        for (let py = 0; py < c.height; py++) {
          for (let px = 0; px < c.width; px++) {
            const [ix, iy] = v.toImage(px + 0.5, py + 0.5);
            const x = Math.floor(ix);
            const y = Math.floor(iy);
            if (x < 0 || y < 0 || x >= bmp.width || y >= bmp.height) continue;
            const d = Math.abs(shown[(py * c.width + px) * 4] - server[(y * bmp.width + x) * 4]);
            n++;
            sum += d;
            if (d > max) max = d;
          }
        }
        out.push({ window: w, pixels: n, maxDiff: max, meanDiff: sum / n, size: [bmp.width, bmp.height] });
      }
      return out;
    }, target.dicomweb);
    report.rendering = result;
    await snap(page, 'rendering-1to1');
    for (const r of result) check(r.pixels > 100000 && r.maxDiff <= 1, `canvas vs server: ${JSON.stringify(r)}`);
    await context.close();
  });

  check(problems.length === 0, `no page errors or console errors: ${problems.join('\n')}`);
} catch (e) {
  exitCode = 1;
  if (problems.length) console.log('page problems:\n' + problems.join('\n'));
} finally {
  writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 2));
  await browser.close();
}
process.exit(exitCode);
