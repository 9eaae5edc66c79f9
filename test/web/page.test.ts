/**
 * The web page end to end in headless Chromium (Debian's, driven by playwright-core) against a
 * real `acs-hub serve` process with the shipped catalogue, offline: load and search the
 * catalogue, open a model card, convert an uploaded checkpoint while its progress streams in
 * (the upload's bytes as they go out, then the conversion's phases),
 * download a converted file through its link, run inference on a NIfTI volume, work the main
 * controls from the keyboard, and render /docs. Every page request stays on the server itself.
 * Screenshots of each panel go to test-output/screenshots/.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { fixture, ROOT, sha256, tempDir, widerResnet18 } from '../helpers.js';
import { startServer } from '../server/serve.js';

const CHROMIUM = '/usr/bin/chromium';
const KEY = 'web-page-test-key';
const SHOTS = join(ROOT, 'test-output', 'screenshots');

/** A screenshot of what a 1366x768 screen shows, or of the whole page. */
async function shot(t: TestContext, page: Page, name: string, fullPage = false): Promise<void> {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage });
  t.diagnostic(`screenshot: ${path}`);
}

test('web page: catalogue, card, upload + conversion with live progress, download, inference, upload byte progress, keyboard, /docs', { timeout: 120_000 }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium package (as .ci/run does)`);
  mkdirSync(SHOTS, { recursive: true });
  const dir = await tempDir(t);
  const server = await startServer(t, {
    ACS_HUB_DATA_DIR: join(dir, 'data'),
    ACS_HUB_OFFLINE: '1',
    ACS_HUB_API_KEYS: KEY,
    ACS_HUB_LOG_LEVEL: 'warn',
    ACS_HUB_THREADS: '1',
  });
  const base = server.url;
  // Chromium will not start its sandbox as root (as in this CI container); elsewhere it keeps it.
  const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, acceptDownloads: true });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // The browser logs every 4xx answer: 401 before the key is set, 422 for the refused upload.
  const refused: string[] = [];
  page.on('console', (m) => {
    if (m.type() !== 'error' || /401 \(Unauthorized\)/.test(m.text())) return;
    if (/status of 422 \(Unprocessable/.test(m.text())) refused.push(m.text());
    else problems.push(`console: ${m.text()}`);
  });
  const foreign: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(`${base}/`) && !/^(blob|data):/.test(r.url())) foreign.push(r.url());
  });

  // 1. the catalogue: load, search, filter
  await page.goto(`${base}/`);
  const rows = page.locator('table.models tbody tr');
  await page.getByRole('heading', { level: 1, name: 'Model catalogue' }).waitFor();
  const all = await rows.count();
  assert.ok(all > 50, `${all} models listed`);
  assert.match(await page.locator('.count').textContent() ?? '', new RegExp(`^${all} of ${all} models`));
  assert.match(await page.locator('#server-state').textContent() ?? '', /Server ready/);
  await shot(t, page, '1-catalogue');
  await page.getByLabel('Search').fill('densenet');
  await page.getByLabel('Family').selectOption('densenet');
  const dense = await rows.count();
  assert.ok(dense >= 1 && dense < all, `${dense} densenets`);
  for (const text of await rows.locator('th code').allTextContents()) assert.match(text, /densenet/);
  await page.getByLabel('Task').selectOption('segmentation');
  assert.equal(await rows.textContent(), 'No model matches these filters.');
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.getByLabel('Task').selectOption('segmentation');
  assert.ok((await rows.count()) >= 1);
  for (const tag of await rows.locator('.tag').allTextContents()) assert.equal(tag, 'segmentation');
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.getByLabel('Parameters').selectOption({ label: 'Under 10 M' });
  for (const n of await rows.locator('td.num').allTextContents()) assert.ok(/ k$/.test(n) || Number.parseFloat(n) < 10, `${n} is under 10 M`);
  await page.getByRole('button', { name: 'Clear filters' }).click();

  // 2. a model card
  await page.getByLabel('Search').fill('resnet18');
  await page.getByRole('link', { name: 'resnet18 (IMAGENET1K_V1)' }).click();
  await page.getByRole('heading', { level: 1, name: 'resnet18 (IMAGENET1K_V1)' }).waitFor();
  const about = await page.locator('.facts').first().textContent();
  assert.match(about ?? '', /11,689,512/);
  assert.match(about ?? '', /1000 classes/);
  assert.match(about ?? '', /BSD-3-Clause/);
  assert.match(await page.locator('table.metrics').textContent() ?? '', /acc@1.*69\.758/);
  const curlLine = await page.getByRole('region', { name: 'Downloads' }).locator('pre').first().textContent();
  assert.equal(curlLine, `curl -fLO ${base}/v1/zoo/torchvision/resnet18.imagenet1k_v1/acs/model.safetensors`);
  await page.getByLabel('Mode', { exact: true }).selectOption('i3d');
  const hfLine = await page.locator('pre', { hasText: 'hf_hub_download' }).textContent();
  assert.match(hfLine ?? '', new RegExp(`hf_hub_download\\(repo_id="torchvision/resnet18.imagenet1k_v1", filename="model.safetensors", revision="i3d", endpoint="${base}"\\)`));
  await shot(t, page, '2-model-card', true);

  // 3. the API key, then a conversion of an uploaded checkpoint with its progress
  await page.getByLabel('API key', { exact: true }).fill(KEY);
  await page.getByRole('button', { name: 'Use' }).click();
  assert.equal(await page.locator('#key-state').textContent(), 'Key set');
  assert.equal(await page.evaluate("sessionStorage.getItem('acs-hub.apiKey')"), KEY, 'the key lives in sessionStorage');
  await page.getByRole('link', { name: 'Convert', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Convert a model' }).waitFor();
  await page.getByLabel('My own file').check();
  await page.getByLabel('Checkpoint file').setInputFiles(fixture('goldens', 'resnet18', 'model.pth'));
  await page.getByLabel('Input channels').fill('1');
  // Every text the live region announces, in order.
  // (browser code as a string: the tests compile without the DOM's types)
  await page.evaluate(`{
    window.announced = [];
    const status = document.querySelector('.progress-panel [role=status]');
    new MutationObserver(() => window.announced.push(status.textContent)).observe(status, { childList: true, characterData: true, subtree: true });
  }`);
  await page.getByRole('button', { name: 'Convert', exact: true }).click();
  const status = page.locator('.progress-panel [role=status]');
  await status.filter({ hasText: /^Done/ }).waitFor({ timeout: 60_000 });
  const announced = (await page.evaluate('window.announced')) as string[];
  t.diagnostic(`progress announced: ${JSON.stringify(announced)}`);
  assert.match(announced[0]!, /^Uploading model\.pth/);
  assert.ok(announced.some((a) => /^Uploaded model\.pth: pth/.test(a)), 'the upload was acknowledged');
  assert.ok(announced.some((a) => /^(queued|converting|storing)/.test(a)), 'the progress events of the stream were announced');
  assert.match(announced.at(-1)!, /^Done: converted and stored\./);
  assert.equal(await status.getAttribute('aria-live'), 'polite');
  const uploadBar = page.getByLabel('Upload', { exact: true });
  const pthSize = statSync(fixture('goldens', 'resnet18', 'model.pth')).size;
  assert.deepEqual(await uploadBar.evaluate((p: { value: number; max: number }) => [p.value, p.max]), [pthSize, pthSize], 'the upload bar is full');
  assert.deepEqual(await page.locator('.steps li').evaluateAll((lis) => lis.map((li) => li.className)), ['done', 'done', 'done', 'done', 'done']);
  const checkpointId = (await page.locator('.notice.ok code').textContent())!;
  assert.match(checkpointId, /^[0-9a-f]{32}$/);
  await shot(t, page, '3-conversion', true);

  // 4. a download through its link: the bytes are the file the API lists
  const files = (await (await fetch(`${base}/v1/checkpoints/${checkpointId}/files`)).json()) as { files: { name: string; sha256: string; url: string }[] };
  const onnx = files.files.find((f) => f.name === 'model.onnx')!;
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download model.onnx' }).click()]);
  assert.match(download.suggestedFilename(), /model\.onnx$/, 'named by the server (Content-Disposition)');
  assert.equal(sha256(readFileSync((await download.path())!)), onnx.sha256, 'the downloaded file is byte-exact');
  const href = await page.getByRole('link', { name: 'Download model.safetensors' }).getAttribute('href');
  const fetched = await fetch(new URL(href!, base));
  assert.equal(fetched.status, 200);
  assert.equal(sha256(Buffer.from(await fetched.arrayBuffer())), files.files.find((f) => f.name === 'model.safetensors')!.sha256);
  const lines = await page.locator('.result pre').allTextContents();
  assert.equal(lines[0], `curl -fLO -H "Authorization: Bearer $ACS_HUB_KEY" ${base}/v1/checkpoints/${checkpointId}/files/model.safetensors`);
  assert.match(lines[1]!, new RegExp(`^import os, urllib.request as u; .*u.Request\\("${base}/v1/checkpoints/${checkpointId}/files/model.safetensors", headers=\\{"Authorization": "Bearer " \\+ os.environ\\["ACS_HUB_KEY"\\]\\}`));
  assert.match(lines[2]!, new RegExp(`repo_id="checkpoints/${checkpointId}", filename="model.safetensors", revision="main"`));

  // 5. inference on a NIfTI volume: the preview image and the top-k
  await page.getByRole('link', { name: 'Run inference on it' }).click();
  await page.getByRole('heading', { level: 1, name: 'Run inference' }).waitFor();
  assert.equal(await page.getByLabel('Checkpoint').inputValue(), checkpointId);
  await page.getByLabel('Volume file').setInputFiles(fixture('inference', 'ct_phantom.nii.gz'));
  await page.getByLabel('Top classes').fill('3');
  await page.getByRole('button', { name: 'Run inference' }).click();
  await page.getByRole('status').filter({ hasText: /^Done: classification/ }).waitFor({ timeout: 30_000 });
  const preview = page.locator('img.preview');
  await preview.waitFor();
  assert.ok(await preview.evaluate((img: { complete: boolean; naturalWidth: number }) => img.complete && img.naturalWidth > 0), 'the preview image decoded');
  const topRows = page.locator('table.topk tbody tr');
  assert.equal(await topRows.count(), 3);
  const expected = JSON.parse(readFileSync(fixture('inference', 'expected.json'), 'utf8')) as { logits: number[] };
  assert.match((await topRows.first().locator('th').textContent())!, new RegExp(`#${expected.logits.indexOf(Math.max(...expected.logits))}\\b`));
  await shot(t, page, '4-inference', true);

  // 5b. the bytes of a larger upload as they go out: a checkpoint made here (ResNet-18 at 4 times
  // the tiny fixture's widths, 2.7 MiB), sent through a throttled link (2 MiB/s) so that the bar moves
  const wide = join(dir, 'resnet18_wide.safetensors');
  const wideBytes = widerResnet18(4);
  writeFileSync(wide, wideBytes);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 2 * 1024 * 1024 });
  await page.getByRole('link', { name: 'Convert', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Convert a model' }).waitFor();
  await page.getByLabel('My own file').check();
  await page.getByLabel('Checkpoint file').setInputFiles(wide);
  // Every value the upload bar takes and every text the live region announces, in order.
  await page.evaluate(`{
    window.announced = [];
    window.sent = [];
    const status = document.querySelector('.progress-panel [role=status]');
    new MutationObserver(() => window.announced.push(status.textContent)).observe(status, { childList: true, characterData: true, subtree: true });
    const bar = document.querySelector('.upload-progress progress');
    new MutationObserver(() => window.sent.push([bar.value, bar.max])).observe(bar, { attributes: true, attributeFilter: ['value'] });
  }`);
  await page.getByRole('button', { name: 'Convert', exact: true }).click();
  const bytes = page.locator('.upload-bytes');
  await bytes.filter({ hasText: /\(([1-9]|[1-9]\d)%\)$/ }).waitFor({ timeout: 20_000 });
  await shot(t, page, '5b-upload-progress');
  await status.filter({ hasText: /^Done/ }).waitFor({ timeout: 60_000 });
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  const sent = (await page.evaluate('window.sent')) as [number, number][];
  const uploadAnnounced = (await page.evaluate('window.announced')) as string[];
  t.diagnostic(`upload bar: ${sent.length} values; announced: ${JSON.stringify(uploadAnnounced)}`);
  assert.deepEqual(sent.at(-1), [wideBytes.length, wideBytes.length], 'the bar reaches the size of the file');
  assert.ok(sent.some(([v, max]) => v > 0 && v < max), 'the bar showed the upload part-way');
  assert.ok(sent.every(([v], i) => i === 0 || v >= sent[i - 1]![0]), 'the bar never goes back');
  const full = (await bytes.textContent())!;
  assert.match(full, /^(\d+\.\d MiB) of \1 sent \(100%\)$/);
  assert.ok(uploadAnnounced.some((a) => a === `Uploading resnet18_wide.safetensors: ${full}…`), 'the live region announced the whole upload');
  assert.ok(uploadAnnounced.some((a) => /^Uploading resnet18_wide\.safetensors: .* \(([1-9]|[1-9]\d)%\)…$/.test(a)), 'and a part of it');
  assert.ok(uploadAnnounced.length < 30, 'the live region speaks every tenth, not every event');
  assert.ok(uploadAnnounced.some((a) => /^Uploaded resnet18_wide\.safetensors: safetensors/.test(a)), 'the upload was acknowledged');
  assert.match(uploadAnnounced.at(-1)!, /^Done: converted and stored\./);
  assert.deepEqual(await uploadBar.evaluate((p: { value: number; max: number }) => [p.value, p.max]), [wideBytes.length, wideBytes.length]);
  await shot(t, page, '5c-upload-done', true);

  // An upload the server refuses once it has it all: the problem is shown, the bar stays honest.
  const garbage = join(dir, 'garbage.pth');
  writeFileSync(garbage, Buffer.alloc(1024 * 1024, 0x5a));
  await page.getByLabel('Checkpoint file').setInputFiles(garbage);
  await page.getByRole('button', { name: 'Convert', exact: true }).click();
  await status.filter({ hasText: /^Failed\.$/ }).waitFor({ timeout: 20_000 });
  const refusal = (await page.locator('.result .notice').textContent())!;
  t.diagnostic(`refused upload: ${refusal}`);
  assert.match(refusal, /\(CHECKPOINT_FORMAT\)$/);
  assert.equal(await bytes.textContent(), '1.0 MiB of 1.0 MiB sent (100%)');
  assert.equal(refused.length, 1, 'one refused request');

  // 6. keyboard: skip link, search, open a card with Enter, focus follows, focus is visible
  await page.goto(`${base}/`);
  await page.getByRole('heading', { level: 1, name: 'Model catalogue' }).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate('document.activeElement.textContent'), 'Skip to content');
  // `test`: a JavaScript expression on `el`, the focused element.
  const tabTo = async (test: string, what: string): Promise<void> => {
    for (let i = 0; i < 20; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(`(el => ${test})(document.activeElement)`)) return;
    }
    assert.fail(`${what} is not reachable with Tab`);
  };
  await tabTo(`el.getAttribute('name') === 'q'`, 'the search field');
  const ring = await page.evaluate('getComputedStyle(document.activeElement).outlineWidth');
  assert.notEqual(ring, '0px', 'the focused control shows a focus ring');
  await page.keyboard.type('convnext_tiny');
  await tabTo(`el.tagName === 'A' && el.closest('table') !== null`, 'the first model link');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: /convnext_tiny/ }).waitFor();
  assert.equal(await page.evaluate('document.activeElement.tagName'), 'H1', 'focus moves to the new view');
  await tabTo(`el.getAttribute('name') === 'mode'`, 'the mode selector');
  await page.keyboard.press('ArrowDown');
  assert.match(await page.locator('pre', { hasText: 'curl' }).first().textContent() ?? '', /\/2\.5d\/model\.safetensors$/);
  await tabTo(`el.textContent === 'Copy'`, 'a copy button');

  // 7. /docs: Swagger UI from the installed package, on this server's contract
  await page.goto(`${base}/docs`);
  await page.locator('.swagger-ui .info .title', { hasText: 'ACS Hub' }).waitFor({ timeout: 20_000 });
  await page.locator('.opblock-summary-path', { hasText: '/v1/conversions' }).first().waitFor();
  assert.equal(await page.locator('.servers select option').first().getAttribute('value'), base, '"Try it out" targets this server');
  await shot(t, page, '5-docs');

  assert.deepEqual(foreign, [], 'every request stayed on the server');
  assert.deepEqual(problems, [], 'no script errors, no refused resources');
});

test('web page on a server that protects reads: the catalogue asks for the key, and loads once it is given', { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  const server = await startServer(t, { ACS_HUB_DATA_DIR: join(dir, 'data'), ACS_HUB_OFFLINE: '1', ACS_HUB_API_KEYS: KEY, ACS_HUB_PROTECT_READS: '1', ACS_HUB_LOG_LEVEL: 'warn' });
  const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  t.after(() => browser.close());
  const page = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
  await page.goto(`${server.url}/`);
  await page.getByRole('alert').filter({ hasText: 'This needs an API key' }).waitFor();
  await page.getByLabel('API key', { exact: true }).fill(KEY);
  await page.getByRole('button', { name: 'Use' }).click();
  await page.getByRole('heading', { level: 1, name: 'Model catalogue' }).waitFor();
  assert.ok((await page.locator('table.models tbody tr').count()) > 50);
});
