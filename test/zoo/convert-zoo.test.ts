import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { SUPPORTED_ARCHITECTURES } from '../../converters/arch/index.js';
import { loadCatalogue } from '../../zoo/catalogue.js';
import { KNOWN_ARCHITECTURES } from '../../zoo/architectures.js';
import { convertModel } from '../../zoo/convert-model.js';
import { openLocalStorage } from '../../zoo/storage/local.js';
import { encodeNpy } from '../../inference/volumes/index.js';
import { encodePth } from '../../converters/formats/pth.js';
import { DEFAULT_CATALOGUE_PATH, findModel } from '../../zoo/catalogue.js';
import { templateEntry, templateWeights } from '../converters/arch/template-weights.js';
import { cli, tempDir } from '../helpers.js';
import { startFakeZoo, TEST_CATALOGUE } from './fake-zoo.js';

test('every architecture the catalogue may name has a builder', async () => {
  for (const arch of KNOWN_ARCHITECTURES) assert.ok(SUPPORTED_ARCHITECTURES.includes(arch), `no builder for ${arch}`);
  const catalogue = await loadCatalogue();
  for (const m of catalogue.models) assert.ok(SUPPORTED_ARCHITECTURES.includes(m.arch), `${m.id}: no builder for ${m.arch}`);
});

test('acs-hub convert <zoo-id>: fetched, verified, converted once, then served from the cache (also offline)', async (t) => {
  const zoo = await startFakeZoo(t);
  const dir = await tempDir(t);
  const env = { ACS_HUB_CATALOGUE: TEST_CATALOGUE, ACS_HUB_TORCHVISION_URL: `${zoo.origin}/models`, ACS_HUB_DATA_DIR: join(dir, 'data') };
  const out = join(dir, 'resnet18-acs.onnx');
  let r = await cli(['convert', 'torchvision/resnet18', '--out', out, '--mode', 'acs'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^converted: /m);
  const card = JSON.parse(readFileSync(join(dir, 'resnet18-acs.card.json'), 'utf8')) as { source: { id: string; sha256: string; licence: string }; mode: string };
  assert.equal(card.source.id, 'torchvision/resnet18.imagenet1k_v1');
  assert.equal(card.source.licence, 'BSD-3-Clause');
  const session = await ort.InferenceSession.create(out);
  const y = await session.run({ input: new ort.Tensor('float32', new Float32Array(3 * 16 ** 3), [1, 3, 16, 16, 16]) });
  assert.equal(y['output']!.dims.length, 2);
  await session.release();
  const downloads = zoo.requests.length;
  r = await cli(['convert', 'torchvision/resnet18', '--out', join(dir, 'again.safetensors'), '--offline'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^from the cache: /m);
  assert.equal(zoo.requests.length, downloads, 'no request to the zoo');
  assert.ok(existsSync(join(dir, 'again.safetensors')));
  // (the loopback zoo serves a shrunk checkpoint with random BatchNorm statistics: only shapes are meaningful)
  writeFileSync(join(dir, 'x.npy'), encodeNpy({ data: new Float32Array(3 * 16 ** 3), shape: [3, 16, 16, 16] }));
  r = await cli(['infer', 'torchvision/resnet18', '--input', join(dir, 'x.npy'), '--raw', '--output', join(dir, 'y.npy'), '--offline'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(dir, 'y.npy')));
  r = await cli(['convert', 'torchvision/nope', '--out', join(dir, 'x.onnx')], { env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /nope/);
});

test('zoo networks that only a template knows: their .pth is recognised without --arch and converted; a segmentation network keeps its VOC labels', async (t) => {
  const zoo = await startFakeZoo(t);
  const dir = await tempDir(t);
  const real = await loadCatalogue({ path: DEFAULT_CATALOGUE_PATH });
  const models = [];
  for (const arch of ['squeezenet1_1', 'lraspp_mobilenet_v3_large']) {
    const sd = templateWeights(templateEntry(arch));
    for (const k of [...sd.keys()]) if (k.endsWith('.running_mean')) sd.set(k.replace(/running_mean$/, 'num_batches_tracked'), { dtype: 'I64', shape: [], data: new BigInt64Array([5n]) });
    const bytes = Buffer.concat(encodePth(sd));
    const file = `${arch}-${createHash('sha256').update(bytes).digest('hex').slice(0, 8)}.pth`;
    zoo.torchvision(file, bytes);
    const entry = findModel(real, `torchvision/${arch}`);
    models.push({ ...entry, source: { type: 'torchvision', file }, url: `https://download.pytorch.org/models/${file}` });
  }
  const catalogue = join(dir, 'catalogue.json');
  writeFileSync(catalogue, JSON.stringify({ version: 1, models }));
  const env = { ACS_HUB_CATALOGUE: catalogue, ACS_HUB_TORCHVISION_URL: `${zoo.origin}/models`, ACS_HUB_DATA_DIR: join(dir, 'data') };
  const cases: [string, number[], number[]][] = [
    ['squeezenet1_1', [1, 3, 24, 24, 24], [1, 1000]],
    ['lraspp_mobilenet_v3_large', [1, 3, 32, 32, 32], [1, 21, 32, 32, 32]],
  ];
  for (const [arch, input, output] of cases) {
    const out = join(dir, `${arch}.onnx`);
    const r = await cli(['convert', `torchvision/${arch}`, '--out', out, '--mode', 'acs'], { env });
    assert.equal(r.code, 0, r.stderr);
    const card = JSON.parse(readFileSync(join(dir, `${arch}.card.json`), 'utf8')) as { architecture: { arch: string; family: string }; labels: string[] | null };
    assert.equal(card.architecture.arch, arch);
    if (arch.startsWith('lraspp')) assert.deepEqual([card.labels?.length, card.labels?.[0]], [21, '__background__']);
    const session = await ort.InferenceSession.create(out);
    const y = await session.run({ input: new ort.Tensor('float32', new Float32Array(input.reduce((a, b) => a * b, 1)), input) });
    assert.deepEqual(y['output']!.dims, output, arch);
    await session.release();
  }
});

test('a URL source converts through the cache too; simultaneous requests convert once', async (t) => {
  const zoo = await startFakeZoo(t);
  const dir = await tempDir(t);
  const url = `${zoo.origin}/models/resnet18-0da4b633.pth`;
  const r = await cli(['convert', url, '--out', join(dir, 'u.pth'), '--mode', '2.5d'], { env: { ACS_HUB_DATA_DIR: join(dir, 'data') } });
  assert.equal(r.code, 0, r.stderr);
  const storage = await openLocalStorage({ root: join(dir, 'data2') });
  const params = { storage, source: { kind: 'url' as const, url }, options: { mode: 'i3d' as const }, sources: zoo.sources, stagingDir: join(dir, 'staging') };
  const results = await Promise.all([convertModel(params), convertModel(params), convertModel(params)]);
  assert.equal(results.filter((x) => x.produced).length, 1);
  assert.deepEqual(results.map((x) => x.prefix), [results[0]!.prefix, results[0]!.prefix, results[0]!.prefix]);
  assert.deepEqual(results[0]!.manifest.files.map((f) => f.name).sort(), ['model.onnx', 'model.pth', 'model.py', 'model.safetensors']);
  await storage.close();
});
