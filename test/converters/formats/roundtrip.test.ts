import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeCheckpoint, encodeCheckpoint, readCheckpointFile, writeCheckpointFile, type CheckpointFormat } from '../../../converters/formats/index.js';
import { concatChunks } from '../../../converters/io.js';
import { tensorsEqual, type StateDict } from '../../../converters/tensor.js';
import { fixture, sha256, tempDir } from '../../helpers.js';

const expected = JSON.parse(readFileSync(fixture('formats', 'expected.json'), 'utf8')) as Record<string, unknown>;
const FORMATS: CheckpointFormat[] = ['safetensors', 'pth'];

for (const name of Object.keys(expected)) {
  for (const format of FORMATS) {
    test(`${name} -> ${format} -> read back: every tensor byte-equal`, async () => {
      const original = await readCheckpointFile(fixture('formats', name));
      const bytes = concatChunks(encodeCheckpoint(format, original.tensors, { source: name }));
      const back = decodeCheckpoint(bytes, { file: `${name}.${format}` });
      assert.equal(back.format, format);
      assert.deepEqual([...back.tensors.keys()].sort(), [...original.tensors.keys()].sort());
      for (const [k, t] of original.tensors) assert.ok(tensorsEqual(back.tensors.get(k)!, t), `${k} differs`);
      if (format === 'safetensors') assert.deepEqual(back.metadata, { source: name });
    });
  }
}

test('.pth -> .safetensors -> .pth through files keeps every byte, in order', async (t) => {
  const dir = await tempDir(t);
  const original = await readCheckpointFile(fixture('formats', 'dtypes.legacy.pth'));
  await writeCheckpointFile(join(dir, 'a.safetensors'), original.tensors);
  const mid = await readCheckpointFile(join(dir, 'a.safetensors'));
  await writeCheckpointFile(join(dir, 'b.pth'), mid.tensors);
  const back = await readCheckpointFile(join(dir, 'b.pth'));
  for (const [k, tensor] of original.tensors) assert.ok(tensorsEqual(back.tensors.get(k)!, tensor), k);
});

test('the writers are deterministic', async () => {
  const ckpt = await readCheckpointFile(fixture('formats', 'resnet18_tiny.pth'));
  for (const format of FORMATS) {
    const a = sha256(concatChunks(encodeCheckpoint(format, ckpt.tensors)));
    const b = sha256(concatChunks(encodeCheckpoint(format, ckpt.tensors)));
    assert.equal(a, b, format);
  }
});

test('safetensors header is padded to 8 bytes and every tensor is aligned', async () => {
  const ckpt = await readCheckpointFile(fixture('formats', 'dtypes.pth'));
  const bytes = concatChunks(encodeCheckpoint('safetensors', ckpt.tensors));
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const back = decodeCheckpoint(bytes);
  for (const [k, tensor] of back.tensors) {
    assert.equal(tensor.data.buffer, bytes.buffer, `${k} is a view (aligned)`);
  }
});

test('pth writer: torch.load(weights_only=True) accepted these exact files', async () => {
  // tools/fixtures/verify_written.py loaded each file with torch.load(weights_only=True),
  // compared every tensor with PyTorch's own copy and recorded the file's sha256.
  const verified = JSON.parse(readFileSync(fixture('formats', 'torch-verified.json'), 'utf8')) as Record<string, string>;
  assert.ok(Object.keys(verified).length >= 10);
  for (const [name, hash] of Object.entries(verified)) {
    const ckpt = await readCheckpointFile(fixture('formats', name));
    const written = concatChunks(encodeCheckpoint('pth', ckpt.tensors));
    assert.equal(sha256(written), hash, `${name}: the written .pth changed since PyTorch verified it; rerun tools/fixtures/verify_written.py`);
  }
});

test('safetensors keeps the state dict order in its header, even for integer-like names', () => {
  const names = ['10', 'b.weight', '2', 'a.num_batches_tracked', 'a.weight'];
  const sd: StateDict = new Map();
  names.forEach((n, i) => sd.set(n, i % 2 ? { dtype: 'I64', shape: [1], data: new BigInt64Array(1) } : { dtype: 'F16', shape: [1], data: new Uint16Array(1) }));
  const back = decodeCheckpoint(concatChunks(encodeCheckpoint('safetensors', sd)), { file: 'x.safetensors' });
  assert.deepEqual([...back.tensors.keys()], names);
});
