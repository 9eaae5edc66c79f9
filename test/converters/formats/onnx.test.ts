import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { CheckpointFormatError } from '../../../converters/errors.js';
import { readCheckpointFile } from '../../../converters/formats/index.js';
import { decodeOnnx, encodeOnnx, encodeOnnxChunks, encodeOnnxExternal, onnx, onnxToCheckpoint, readOnnxFile, tensorToProto } from '../../../converters/formats/onnx.js';
import { concatChunks } from '../../../converters/io.js';
import { tensorsEqual } from '../../../converters/tensor.js';
import { assertClose, fixture, prng, tempDir } from '../../helpers.js';

const SMALL = fixture('formats', 'small_cnn.onnx');

async function run(model: Uint8Array | string, input: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model as string);
  const out = await session.run({ input: new ort.Tensor('float32', input, [1, 3, 16, 16]) });
  return out['logits']!.data as Float32Array;
}

function randomInput(): Float32Array {
  const r = prng(7);
  return Float32Array.from({ length: 3 * 16 * 16 }, () => r() * 2 - 1);
}

test('ONNX: decode -> encode -> decode keeps the graph and every initializer byte', () => {
  const bytes = readFileSync(SMALL);
  const model = decodeOnnx(bytes, { file: SMALL });
  const again = decodeOnnx(encodeOnnx(model));
  assert.deepEqual(onnx.ModelProto.toObject(again, { longs: Number }), onnx.ModelProto.toObject(model, { longs: Number }));
  const a = onnxToCheckpoint(model);
  const b = onnxToCheckpoint(again);
  for (const [k, t] of a.tensors) assert.ok(tensorsEqual(b.tensors.get(k)!, t), k);
});

test('ONNX: a re-encoded model computes exactly what the original computes on onnxruntime', async () => {
  const input = randomInput();
  const original = await run(SMALL, input);
  const model = decodeOnnx(readFileSync(SMALL));
  const reencoded = await run(encodeOnnx(model), input);
  assertClose(reencoded, original, { rtol: 0, atol: 0, what: 'logits' });
});

test('ONNX: external data is written next to the model, read back and run', async (t) => {
  const dir = await tempDir(t);
  const model = decodeOnnx(readFileSync(SMALL));
  const { model: bytes, data } = encodeOnnxExternal(model, { location: 'weights.bin', threshold: 16 });
  await writeFile(join(dir, 'm.onnx'), bytes);
  await writeFile(join(dir, 'weights.bin'), concatChunks(data));
  const { model: back, loadExternal } = await readOnnxFile(join(dir, 'm.onnx'));
  const external = (back.graph?.initializer ?? []).filter((i) => i.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
  assert.ok(external.length >= 4, 'large initializers moved out');
  const a = onnxToCheckpoint(model);
  const b = onnxToCheckpoint(back, { loadExternal });
  for (const [k, tensor] of a.tensors) assert.ok(tensorsEqual(b.tensors.get(k)!, tensor), k);
  const input = randomInput();
  assertClose(await run(join(dir, 'm.onnx'), input), await run(SMALL, input), { rtol: 0, atol: 0 });
});

test('ONNX: reads initializers of a file saved with external data by the onnx package', async () => {
  const ckpt = await readCheckpointFile(fixture('formats', 'small_cnn_external.onnx'));
  const ref = await readCheckpointFile(SMALL);
  for (const [k, tensor] of ref.tensors) assert.ok(tensorsEqual(ckpt.tensors.get(k)!, tensor), k);
});

test('ONNX: an external location outside the model folder is refused', async (t) => {
  const dir = await tempDir(t);
  const init = { ...tensorToProto('w', { dtype: 'F32', shape: [1], data: new Float32Array(1) }), rawData: undefined };
  const model = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'g',
      initializer: [
        {
          ...init,
          dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
          externalData: [{ key: 'location', value: '../../outside.bin' }],
        },
      ],
    },
  };
  await writeFile(join(dir, 'm.onnx'), encodeOnnx(model));
  await assert.rejects(readOnnxFile(join(dir, 'm.onnx')), (err: unknown) => err instanceof CheckpointFormatError && /escapes/.test(err.message));
});

test('ONNX: the chunked encoder writes the same message without copying weights', () => {
  const model = decodeOnnx(readFileSync(SMALL));
  const chunks = encodeOnnxChunks(model);
  const init = model.graph!.initializer![0]!;
  assert.ok(chunks.some((c) => c.buffer === init.rawData!.buffer && c.byteOffset === init.rawData!.byteOffset), 'raw_data travels as a view');
  const back = decodeOnnx(concatChunks(chunks));
  assert.deepEqual(onnx.ModelProto.toObject(back, { longs: Number }), onnx.ModelProto.toObject(model, { longs: Number }));
});
