import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { readCheckpointFile, type LoadedCheckpoint } from '../../../converters/formats/index.js';
import { toFloat32 } from '../../../converters/dtypes.js';
import { fixture, tensorSha256 } from '../../helpers.js';

interface Expected {
  tensors: Record<string, { dtype: string; shape: number[]; sha256: string; sum: number; first: number[] }>;
  layout?: string;
  path?: string[];
  prefix?: string;
  metadata?: Record<string, string>;
}

const expected = JSON.parse(readFileSync(fixture('formats', 'expected.json'), 'utf8')) as Record<string, Expected>;

/** Compare a checkpoint read by this project with what PyTorch wrote down. */
export function assertMatchesExpected(ckpt: LoadedCheckpoint, exp: Expected, name: string): void {
  assert.deepEqual([...ckpt.tensors.keys()].sort(), Object.keys(exp.tensors).sort(), `${name}: tensor names`);
  for (const [key, e] of Object.entries(exp.tensors)) {
    const t = ckpt.tensors.get(key)!;
    assert.equal(t.dtype, e.dtype, `${name}:${key} dtype`);
    assert.deepEqual(t.shape, e.shape, `${name}:${key} shape`);
    assert.equal(tensorSha256(t), e.sha256, `${name}:${key} bytes`);
    if (t.dtype !== 'BOOL') {
      const values = toFloat32(t.dtype, t.data);
      const first = [...values.subarray(0, 4)];
      first.forEach((v, i) => assert.ok(Math.abs(v - e.first[i]!) <= 1e-6 * Math.max(1, Math.abs(e.first[i]!)), `${name}:${key}[${i}]`));
    }
  }
}

for (const [name, exp] of Object.entries(expected)) {
  test(`reads ${name} exactly as PyTorch wrote it`, async () => {
    const ckpt = await readCheckpointFile(fixture('formats', name));
    assertMatchesExpected(ckpt, exp, name);
    if (exp.path) assert.deepEqual(ckpt.origin?.path, exp.path);
    if (exp.prefix) assert.equal(ckpt.origin?.strippedPrefix, exp.prefix);
    if (exp.metadata) assert.deepEqual(ckpt.metadata, exp.metadata);
  });
}

test('keeps the state dict order of the file', async () => {
  const ckpt = await readCheckpointFile(fixture('formats', 'resnet18_tiny.pth'));
  assert.deepEqual([...ckpt.tensors.keys()], Object.keys(expected['resnet18_tiny.pth']!.tensors));
});

test('tensors are views into the file bytes where aligned (no copy)', async () => {
  const ckpt = await readCheckpointFile(fixture('formats', 'resnet18_tiny.pth'));
  const buffers = new Set([...ckpt.tensors.values()].map((t) => t.data.buffer));
  assert.equal(buffers.size, 1, 'every tensor shares the one buffer of the file');
  const st = await readCheckpointFile(fixture('formats', 'resnet18_tiny.safetensors'));
  assert.equal(new Set([...st.tensors.values()].map((t) => t.data.buffer)).size, 1);
});
