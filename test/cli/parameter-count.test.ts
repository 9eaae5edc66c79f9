/**
 * One parameter count everywhere: `inspect` on a 2D checkpoint and on the converted
 * `.safetensors` and `.onnx`, the model card, and the API's upload record all give trainable
 * parameters as PyTorch counts them (`sum(p.numel() for p in model.parameters())`, recorded by
 * the goldens' PyTorch script as `param_count`, and by torchvision in the catalogue's
 * `params`), with the BatchNorm buffers apart.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import request from 'supertest';
import type { DType } from '../../converters/dtypes.js';
import { encodeSafetensors } from '../../converters/formats/safetensors.js';
import { concatChunks } from '../../converters/io.js';
import { zeros, type StateDict } from '../../converters/tensor.js';
import { finishedJob, testHub } from '../server/hub.js';
import { cli, fixture, ROOT, tempDir } from '../helpers.js';

interface Golden {
  cases: { name: string; param_count: number }[];
  state_dicts: { '2d': Record<string, { dtype: DType; shape: number[] }> };
}

interface Inspected {
  parameters: number;
  buffers: number;
  countedFrom: string;
}

function golden(family: string): Golden {
  return JSON.parse(readFileSync(fixture('goldens', family, 'golden.json'), 'utf8')) as Golden;
}

async function inspect(file: string): Promise<Inspected> {
  const r = await cli(['inspect', '--json', file]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Inspected;
}

test('inspect counts what PyTorch counts, for every golden family', async () => {
  const families = readdirSync(fixture('goldens')).filter((f) => existsSync(fixture('goldens', f, 'model.pth')) && existsSync(fixture('goldens', f, 'golden.json')));
  assert.ok(families.length >= 10, families.join());
  for (const family of families) {
    const torch = golden(family).cases.find((c) => c.name === '2d')?.param_count;
    if (torch === undefined) continue;
    const got = await inspect(fixture('goldens', family, 'model.pth'));
    assert.equal(got.parameters, torch, `${family}: inspect says ${got.parameters}, PyTorch ${torch}`);
    assert.equal(got.countedFrom, 'state dict');
  }
});

test('resnet18: the 2D checkpoint, the converted .safetensors and .onnx, and the card agree', async (t) => {
  const dir = await tempDir(t);
  const torch = golden('resnet18').cases.find((c) => c.name === 'acs')!.param_count;
  const source = await inspect(fixture('goldens', 'resnet18', 'model.pth'));
  assert.equal(source.parameters, torch);
  // 20 BatchNorms of 4..32 channels: running_mean + running_var per channel, one num_batches_tracked each.
  assert.equal(source.buffers, 620);
  for (const out of ['r18.safetensors', 'r18.onnx']) {
    const r = await cli(['convert', fixture('goldens', 'resnet18', 'model.pth'), '--out', join(dir, out), '--mode', 'acs']);
    assert.equal(r.code, 0, r.stderr);
    const got = await inspect(join(dir, out));
    assert.deepEqual([got.parameters, got.buffers], [torch, source.buffers], out);
    assert.equal(got.countedFrom, out.endsWith('.onnx') ? 'card' : 'state dict');
    const card = JSON.parse(readFileSync(join(dir, 'r18.card.json'), 'utf8')) as { parameters: { source2d: number; converted: number }; buffers: { source2d: number; converted: number } };
    assert.deepEqual(card.parameters, { source2d: torch, converted: torch });
    assert.deepEqual(card.buffers, { source2d: source.buffers, converted: source.buffers });
  }
  // Without its card, an .onnx is counted from its initializers, and says so.
  const r = await cli(['inspect', join(dir, 'r18.onnx')]);
  assert.match(r.stdout, /\(from r18\.card\.json\)\n$/);
  await writeFile(join(dir, 'r18.card.json'), '{}');
  const bare = await inspect(join(dir, 'r18.onnx'));
  assert.equal(bare.countedFrom, 'onnx initializers');
});

test('the API: an upload record and the card of its conversion give the same counts', async (t) => {
  const { hub } = await testHub(t);
  const torch = golden('resnet18').cases.find((c) => c.name === 'acs')!.param_count;
  const up = await request(hub.app).post('/v1/uploads?filename=resnet18.pth').set('Content-Type', 'application/octet-stream').send(readFileSync(fixture('goldens', 'resnet18', 'model.pth'))).expect(201);
  assert.equal(up.body.parameters, torch);
  assert.equal(up.body.buffers, 620);
  const again = await request(hub.app).get(`/v1/uploads/${up.body.id}`).expect(200);
  assert.deepEqual([again.body.parameters, again.body.buffers], [torch, 620]);
  const job = await request(hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'acs' }).expect(202);
  const done = await finishedJob(hub.app, job.body.id as string);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
  const card = await request(hub.app).get(`/v1/checkpoints/${done.checkpointId}/files/card.json`).expect(200);
  const body = JSON.parse(Buffer.isBuffer(card.body) ? card.body.toString() : card.text) as { parameters: unknown; buffers: unknown };
  assert.deepEqual(body.parameters, { source2d: torch, converted: torch });
  assert.deepEqual(body.buffers, { source2d: 620, converted: 620 });
});

test('a full-size ResNet-18 counts 11,689,512 parameters, as torchvision says in the catalogue', async (t) => {
  // The golden ResNet-18 is torchvision's with every channel count c > 3 divided by 16 and a
  // 10-class head: the full network has the same keys, channels times 16 and 1000 classes.
  const sd: StateDict = new Map();
  for (const [key, { dtype, shape }] of Object.entries(golden('resnet18').state_dicts['2d'])) {
    const full = key.startsWith('fc.') ? (shape.length === 2 ? [1000, shape[1]! * 16] : [1000]) : shape.map((d, i) => (i < 2 && d > 3 ? d * 16 : d));
    sd.set(key, zeros(dtype, full));
  }
  const dir = await tempDir(t);
  await writeFile(join(dir, 'resnet18.safetensors'), concatChunks(encodeSafetensors(sd)));
  const catalogue = JSON.parse(readFileSync(join(ROOT, 'zoo', 'catalogue.json'), 'utf8')) as { models: { id: string; params?: number }[] };
  const params = catalogue.models.find((m) => m.id === 'torchvision/resnet18.imagenet1k_v1')?.params;
  assert.equal(params, 11_689_512);
  const got = await inspect(join(dir, 'resnet18.safetensors'));
  assert.equal(got.parameters, params);
  // 4,800 BatchNorm channels (20 layers): a running mean and variance each, and 20 counters.
  assert.equal(got.buffers, 2 * 4_800 + 20);
});
