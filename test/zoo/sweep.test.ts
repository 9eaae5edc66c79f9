/**
 * Nothing left behind: writers killed with SIGKILL mid-download and mid-conversion leave
 * leftovers; once they are older than the bound, the next start of the store (a real
 * `acs-hub serve`, or any CLI command) removes them and says so in one line, while a live
 * replica's files and a partial download young enough to resume stay.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import type { ClaimRecord } from '../../zoo/storage/claim.js';
import { claimKey, conversionPrefix, type ConversionSpec } from '../../zoo/store.js';
import { openLocalStorage } from '../../zoo/storage/local.js';
import { CLI, ROOT, tempDir } from '../helpers.js';
import { startServer } from '../server/serve.js';
import { runCli, spawnNode } from './child.js';
import { startFakeZoo, TEST_CATALOGUE } from './fake-zoo.js';

const CHILD = join(ROOT, 'dist', 'test', 'zoo', 'convert-child.js');
const DAY = 24 * 3_600_000;
const spec = (mode: string): ConversionSpec => ({ sourceSha256: 'b'.repeat(64), mode, options: {}, converterVersion: 'sweep-test' });

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
  return out.sort();
}

async function age(dir: string, except: (path: string) => boolean): Promise<void> {
  const then = new Date(Date.now() - 2 * DAY);
  for (const f of await walk(dir)) if (!except(f)) await utimes(join(dir, f), then, then);
}

test('after SIGKILLs mid-download and mid-conversion, a restarted server sweeps the old leftovers, logs them, and keeps a live replica\'s and a young partial', async (t) => {
  const zoo = await startFakeZoo(t);
  const data = await tempDir(t);
  const env = { ACS_HUB_CATALOGUE: TEST_CATALOGUE, ACS_HUB_TORCHVISION_URL: `${zoo.origin}/models`, ACS_HUB_DATA_DIR: data, ACS_HUB_DOWNLOAD_BACKOFF_MS: '20' };
  const child = (s: ConversionSpec, extra: object) => spawnNode([CHILD, JSON.stringify({ store: { dataDir: data }, spec: s, claims: { pollMs: 20, settleMs: 50, leaseMs: 2_000 }, ...extra })]);

  zoo.fail('/models/resnet152-73fdccd0.pth', { kind: 'trickle', chunk: 8192, intervalMs: 30 });
  const pull = spawnNode([CLI, 'pull', 'torchvision/resnet152.imagenet1k_v1', '--json'], env);
  const writing = child(spec('acs'), { chunks: 200, chunkDelayMs: 20 });
  const between = child(spec('i3d'), { chunks: 2, chunkDelayMs: 1, pauseAfterFirstMs: 60_000 });
  await Promise.all([
    pull.waitFor((l) => l['event'] === 'progress' && (l['bytes'] as number) >= 40_000).then(() => pull.proc.kill('SIGKILL')),
    writing.waitFor((l) => l['event'] === 'writing').then(async () => {
      // Killed once its first output is half-written (a temporary on disk).
      for (let i = 0; i < 200 && !(await walk(data)).some((f) => f.includes('.tmp-')); i++) await new Promise((r) => setTimeout(r, 10));
      writing.proc.kill('SIGKILL');
    }),
    between.waitFor((l) => l['event'] === 'first-file').then(() => between.proc.kill('SIGKILL')),
  ]);
  assert.deepEqual([await pull.exited, await writing.exited, await between.exited], ['SIGKILL', 'SIGKILL', 'SIGKILL']);

  // An upload cut off, a live replica's conversion in progress, and a partial of this hour.
  await mkdir(join(data, 'staging', 'uploads'), { recursive: true });
  await writeFile(join(data, 'staging', 'uploads', '0123abcd.part'), 'half an upload');
  const store = await openLocalStorage({ root: join(data, 'objects') });
  const replica = conversionPrefix(spec('2.5d'));
  await store.write(`${replica}model.bin`, 'being written by another replica');
  const now = new Date().toISOString();
  const claim: ClaimRecord = { token: 'r', host: 'replica-b', pid: 1, claimedAt: now, heartbeatAt: now };
  await store.write(claimKey('conversion', replica), JSON.stringify(claim));
  await writeFile(join(data, 'staging', 'torchvision--resnet34.imagenet1k_v1.partial'), 'resume me');

  const before = await walk(data);
  const acs = conversionPrefix(spec('acs'));
  const i3d = conversionPrefix(spec('i3d'));
  assert.ok(before.some((f) => f.startsWith(join('objects', acs)) && /\.model\.bin\.tmp-\d+-/.test(f)), `a temporary: ${before.join(', ')}`);
  assert.ok(before.includes(join('objects', i3d, 'model.bin')), 'an orphan output');
  assert.ok(before.includes(join('staging', 'torchvision--resnet152.imagenet1k_v1.partial')));
  await age(data, (f) => f.endsWith('resnet34.imagenet1k_v1.partial'));

  const server = await startServer(t, { ...env, ACS_HUB_LOG_LEVEL: 'info' });
  let line: Record<string, unknown> | undefined;
  for (let i = 0; i < 100 && !line; i++) {
    line = server
      .stdout()
      .split('\n')
      .filter((l) => l.includes('swept leftovers'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)[0];
    if (!line) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(line, `no sweep line in: ${server.stdout()}`);
  assert.equal(line['level'], 30, 'at info');
  assert.deepEqual(line['removed'], { staging: 3, temporaries: 1, orphans: 1 });
  const keys = line['keys'] as string[];
  assert.ok(keys.includes('staging/torchvision--resnet152.imagenet1k_v1.partial'), keys.join(', '));
  assert.ok(keys.includes('staging/torchvision--resnet152.imagenet1k_v1.partial.meta.json'), keys.join(', '));
  assert.ok(keys.includes('staging/uploads/0123abcd.part'));
  assert.ok(keys.includes(`${i3d}model.bin`));
  assert.ok(keys.some((k) => k.startsWith(`${acs}model.bin (.model.bin.tmp-`)), keys.join(', '));
  assert.deepEqual(line['kept'], [replica]);

  const after = await walk(data);
  assert.deepEqual(after.filter((f) => f.startsWith('staging')), [join('staging', 'torchvision--resnet34.imagenet1k_v1.partial')], 'the young partial stays, to be resumed');
  assert.deepEqual(after.filter((f) => f.includes('.tmp-')), []);
  assert.deepEqual(after.filter((f) => f.startsWith(join('objects', 'conversions'))), [join('objects', replica, 'model.bin')], "only the live replica's output stays");
  server.proc.kill('SIGTERM');
  await server.exited;
});

test('a CLI command sweeps too, and says what it removed in one line on stderr', async (t) => {
  const zoo = await startFakeZoo(t);
  const data = await tempDir(t);
  await mkdir(join(data, 'staging', 'uploads'), { recursive: true });
  await writeFile(join(data, 'staging', 'uploads', 'cut.part'), 'x');
  await writeFile(join(data, 'staging', 'uploads', 'fresh.part'), 'y');
  await age(data, (f) => f.endsWith('fresh.part'));
  const r = await runCli(CLI, ['pull', 'torchvision/resnet18', '--json'], { ACS_HUB_CATALOGUE: TEST_CATALOGUE, ACS_HUB_TORCHVISION_URL: `${zoo.origin}/models`, ACS_HUB_DATA_DIR: data });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.includes('swept leftovers'));
  assert.equal(lines.length, 1, r.stderr);
  assert.deepEqual((JSON.parse(lines[0]!) as { keys: string[] }).keys, ['staging/uploads/cut.part']);
  assert.deepEqual(await readdir(join(data, 'staging', 'uploads')), ['fresh.part']);
});
