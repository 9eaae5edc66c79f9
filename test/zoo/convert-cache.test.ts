import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { getOrConvert } from '../../zoo/get-or-convert.js';
import { listCached } from '../../zoo/list-cached.js';
import { conversionPrefix, type ConversionSpec } from '../../zoo/store.js';
import { openLocalStorage } from '../../zoo/storage/local.js';
import { openStorage, type StorageSettings } from '../../zoo/storage/open-storage.js';
import { readAll, type ObjectStorage } from '../../zoo/storage/storage.js';
import { ROOT, sha256, tempDir } from '../helpers.js';
import { spawnNode } from './child.js';
import { startS3rver, type S3rver } from './s3rver.js';

const CHILD = join(ROOT, 'dist', 'test', 'zoo', 'convert-child.js');
const SPEC: ConversionSpec = {
  sourceSha256: '0da4b633d5b73de1876136b8b68baaa9c826dda005c4761f3e3ba0d1edc70ec1',
  mode: 'acs',
  options: { axis: 'd', head: 'keep', inputSize: [32, 64, 64] },
  converterVersion: '0.1.0',
};
const FAST_CLAIMS = { pollMs: 20, settleMs: 300, leaseMs: 2_000 };

let s3: S3rver;
const stops: (() => Promise<void>)[] = [];
before(async () => {
  s3 = await startS3rver({ after: (fn) => stops.push(fn) });
});
after(() => Promise.all(stops.map((f) => f())));

async function prefixKeys(storage: ObjectStorage, prefix: string): Promise<string[]> {
  const out = [];
  for await (const o of storage.list(prefix)) out.push(o.key);
  return out.sort();
}

test('conversion key: option order does not matter; mode, options and converter version do', () => {
  const a = conversionPrefix(SPEC);
  assert.match(a, /^conversions\/0da4b633[0-9a-f]{56}\/acs\/[0-9a-f]{32}\/$/);
  assert.equal(conversionPrefix({ ...SPEC, options: { inputSize: [32, 64, 64], head: 'keep', axis: 'd' } }), a);
  assert.notEqual(conversionPrefix({ ...SPEC, converterVersion: '0.1.1' }), a);
  assert.notEqual(conversionPrefix({ ...SPEC, mode: 'i3d' }), a);
  assert.notEqual(conversionPrefix({ ...SPEC, options: { ...SPEC.options, axis: 'h' } }), a);
  assert.throws(() => conversionPrefix({ ...SPEC, sourceSha256: 'abc' }), RangeError);
  assert.throws(() => conversionPrefix({ ...SPEC, options: { x: Number.NaN } }), /options\.x/);
});

test('getOrConvert: concurrent identical requests run the producer once; later ones hit the cache', async (t) => {
  const storage = await openLocalStorage({ root: await tempDir(t) });
  let runs = 0;
  const produce = async (ctx: { writeFile(name: string, body: string | Uint8Array): Promise<unknown> }) => {
    runs++;
    await new Promise((r) => setTimeout(r, 50));
    await ctx.writeFile('model.safetensors', Buffer.from('weights'));
    return { params: 42 };
  };
  const results = await Promise.all(Array.from({ length: 6 }, () => getOrConvert({ storage, ...SPEC }, produce)));
  assert.equal(runs, 1);
  assert.equal(results.filter((r) => r.produced).length, 1);
  for (const r of results) assert.deepEqual(r.manifest, results[0]!.manifest);
  const file = results[0]!.manifest.files[0]!;
  assert.deepEqual(file, { name: 'model.safetensors', key: `${results[0]!.prefix}model.safetensors`, size: 7, sha256: sha256(Buffer.from('weights')) });
  assert.deepEqual(results[0]!.manifest.modelCard, { params: 42 });
  const later = await getOrConvert({ storage, ...SPEC }, produce);
  assert.equal(later.produced, false);
  assert.equal(runs, 1);
  const index = await listCached(storage);
  assert.deepEqual(index.conversions.map((c) => c.prefix), [results[0]!.prefix]);
});

test('getOrConvert: a failed producer publishes nothing, and the next request produces again', async (t) => {
  const storage = await openLocalStorage({ root: await tempDir(t) });
  await assert.rejects(
    getOrConvert({ storage, ...SPEC }, async (ctx) => {
      await ctx.writeFile('model.safetensors', 'half');
      throw new Error('converter crashed');
    }),
    /converter crashed/,
  );
  assert.deepEqual((await listCached(storage)).conversions, []);
  assert.deepEqual(await prefixKeys(storage, 'claims/'), [], 'the claim is released');
  const r = await getOrConvert({ storage, ...SPEC }, async (ctx) => {
    await ctx.writeFile('model.safetensors', 'whole');
    return {};
  });
  assert.equal(r.produced, true);
  assert.equal((await readAll(storage, r.manifest.files[0]!.key)).toString(), 'whole');
});

test('getOrConvert: a conversion whose file went missing is produced again', async (t) => {
  const storage = await openLocalStorage({ root: await tempDir(t) });
  const produce = async (ctx: { writeFile(n: string, b: string): Promise<unknown> }) => {
    await ctx.writeFile('model.onnx', 'graph');
    return {};
  };
  const first = await getOrConvert({ storage, ...SPEC }, produce);
  await storage.delete(first.manifest.files[0]!.key);
  const second = await getOrConvert({ storage, ...SPEC }, produce);
  assert.equal(second.produced, true);
});

function childParams(store: StorageSettings, extra: { chunks?: number; chunkDelayMs?: number } = {}) {
  return JSON.stringify({ store, spec: SPEC, chunks: extra.chunks ?? 8, chunkDelayMs: extra.chunkDelayMs ?? 20, claims: FAST_CLAIMS });
}

function s3Store(prefix: string): StorageSettings {
  return { dataDir: '/nonexistent', s3: { url: `s3://acs-hub/${prefix}`, endpoint: s3.endpoint, forcePathStyle: true, conditionalWrites: 'auto', partSize: 5 * 1024 * 1024 } };
}

for (const backend of ['local', 's3'] as const) {
  test(`getOrConvert (${backend}): two OS processes asked at once run the producer exactly once, and both get the result`, async (t) => {
    const store = backend === 'local' ? { dataDir: await tempDir(t) } : s3Store(`two-${backend}-${process.pid}`);
    const args = [CHILD, childParams(store)];
    const [a, b] = [spawnNode(args, s3.env), spawnNode(args, s3.env)];
    const [da, db] = await Promise.all([a.waitFor((l) => l['event'] === 'done'), b.waitFor((l) => l['event'] === 'done')]);
    assert.deepEqual([await a.exited, await b.exited], [0, 0], a.stderr() + b.stderr());
    const producing = [...a.lines, ...b.lines].filter((l) => l['event'] === 'producing');
    assert.equal(producing.length, 1, 'exactly one process ran the producer');
    assert.equal([da['produced'], db['produced']].filter(Boolean).length, 1);
    assert.deepEqual(da['files'], db['files']);
    assert.equal(da['createdAt'], db['createdAt']);
  });

  test(`getOrConvert (${backend}): SIGKILL while writing leaves no conversion visible; the next start produces it`, async (t) => {
    const store = backend === 'local' ? { dataDir: await tempDir(t) } : s3Store(`kill-${backend}-${process.pid}`);
    const slow = spawnNode([CHILD, childParams(store, { chunks: 200, chunkDelayMs: 20 })], s3.env);
    await slow.waitFor((l) => l['event'] === 'writing');
    slow.proc.kill('SIGKILL');
    assert.equal(await slow.exited, 'SIGKILL');
    const storage = await openStorage(store, { credentials: s3.credentials });
    t.after(() => storage.close());
    const prefix = conversionPrefix(SPEC);
    assert.deepEqual(await prefixKeys(storage, prefix), [], 'no object of the conversion is visible');
    assert.deepEqual((await listCached(storage)).conversions, []);
    const again = spawnNode([CHILD, childParams(store, { chunks: 4, chunkDelayMs: 1 })], s3.env);
    const done = await again.waitFor((l) => l['event'] === 'done', 20_000);
    assert.equal(done['produced'], true, again.stderr());
    assert.deepEqual(await prefixKeys(storage, prefix), [`${prefix}manifest.json`, `${prefix}model.bin`, `${prefix}notes.txt`]);
    assert.equal((await storage.stat(`${prefix}model.bin`))?.size, 4 * 65536);
  });
}
