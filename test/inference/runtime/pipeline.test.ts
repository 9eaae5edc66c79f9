import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeOnnx } from '../../../converters/formats/onnx.js';
import { A, graphToModel, type Graph } from '../../../converters/graph/ir.js';
import { InferenceEngine } from '../../../inference/runtime/engine.js';
import { loadModelFile } from '../../../inference/runtime/model-file.js';
import { infer } from '../../../inference/runtime/pipeline.js';
import { readVolume } from '../../../inference/volumes/index.js';
import { assertClose, cli, fixture, tempDir } from '../../helpers.js';

const expected = JSON.parse(readFileSync(fixture('inference', 'expected.json'), 'utf8')) as {
  logits: number[];
  canonical_shape: number[];
  canonical_affine: number[][];
  input_sum: number;
};

test('inference golden: NIfTI CT volume -> read, preprocess, ACS network -> the logits PyTorch computes (rtol 1e-4)', async () => {
  const volume = await readVolume(fixture('inference', 'ct_phantom.nii.gz'));
  assert.deepEqual(volume.shape.slice(1), expected.canonical_shape);
  assertClose(volume.affine, expected.canonical_affine.flat(), { rtol: 1e-6, atol: 1e-5, what: 'affine' });
  const model = await loadModelFile(fixture('goldens', 'resnet18', 'model.pth'), { mode: 'acs', inChannels: 1 });
  const engine = new InferenceEngine({ threads: 1 });
  try {
    const result = await infer(engine, model, volume);
    assert.equal(result.kind, 'classification');
    assert.deepEqual(result.steps, ['window lung [-1000,400] -> [0, 1]', 'normalise mean [0.449] std [0.226]']);
    assertClose(result.output.data!, expected.logits, { rtol: 1e-4, atol: 1e-4 * Math.max(...expected.logits.map(Math.abs)), what: 'logits' });
    assert.equal(result.topK![0]!.index, expected.logits.indexOf(Math.max(...expected.logits)));
  } finally {
    await engine.close();
  }
});

/** A 3D "segmentation" network: a 1x1x1 convolution scoring background vs foreground. */
function segmentationModel(): Uint8Array {
  const g: Graph = {
    name: 'seg',
    opset: 17,
    metadata: {},
    inputs: [{ name: 'input', dtype: 'F32', shape: ['N', 1, 'D', 'H', 'W'] }],
    outputs: [{ name: 'scores', dtype: 'F32', shape: ['N', 2, 'D', 'H', 'W'] }],
    initializers: new Map([
      ['w', { dtype: 'F32', shape: [2, 1, 1, 1, 1], data: Float32Array.from([-1, 1]) }],
      ['b', { dtype: 'F32', shape: [2], data: Float32Array.from([0, 0]) }],
    ]),
    nodes: [{ name: 'conv', op: 'Conv', domain: '', inputs: ['input', 'w', 'b'], outputs: ['scores'], attrs: { kernel_shape: A.ints([1, 1, 1]) } }],
  };
  return encodeOnnx(graphToModel(g));
}

test('segmentation networks: the label volume comes back on the input grid (NIfTI with the input affine)', async (t) => {
  const dir = await tempDir(t);
  const onnx = join(dir, 'seg.onnx');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(onnx, segmentationModel());
  const out = join(dir, 'labels.nii.gz');
  const input = fixture('inference', 'ct_phantom.nii.gz');
  const r = await cli(['infer', onnx, '--input', input, '--output', out, '--mean', '0.5', '--std', '1', '--size', '18,20,22']);
  assert.equal(r.code, 0, r.stderr);
  const labels = await readVolume(out);
  const volume = await readVolume(input);
  assert.deepEqual(labels.shape, volume.shape, 'resampled back to the input size');
  assertClose(labels.affine, volume.affine, { rtol: 1e-6, atol: 1e-5, what: 'affine' });
  // foreground = window value above the mean 0.5, i.e. HU above -300: the body, not air or lungs
  let agree = 0;
  for (let i = 0; i < volume.data.length; i++) if ((volume.data[i]! > -300 ? 1 : 0) === labels.data[i]) agree++;
  assert.ok(agree / volume.data.length > 0.9, `labels follow the tissue (${(100 * agree / volume.data.length).toFixed(1)}%)`);
  const png = join(dir, 'preview.png');
  assert.equal((await cli(['infer', onnx, '--input', input, '--output', png, '--mean', '0.5', '--std', '1'])).code, 0);
  assert.deepEqual([...readFileSync(png).subarray(1, 4)], [0x50, 0x4e, 0x47]);
});

test('cli infer: JSON answer, --raw .npy, sliding windows, clear errors', async (t) => {
  const dir = await tempDir(t);
  const model = fixture('goldens', 'resnet18', 'model.pth');
  const volume = fixture('inference', 'ct_phantom.nii.gz');
  let r = await cli(['infer', model, '--input', volume, '--top-k', '3']);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as { kind: string; topK: unknown[]; preprocessing: string[] };
  assert.equal(json.kind, 'classification');
  assert.equal(json.topK.length, 3);
  assert.ok(json.preprocessing.includes('channels 1 -> 3'));
  r = await cli(['infer', model, '--input', volume, '--patch', '24,24,24', '--output', join(dir, 'a.json')]);
  assert.equal(r.code, 0, r.stderr);
  const sw = JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8')) as { preprocessing: string[] };
  assert.ok(sw.preprocessing.some((s) => s.startsWith('sliding windows 24x24x24')));
  const npy = join(dir, 'in.npy');
  const { encodeNpy } = await import('../../../inference/volumes/index.js');
  await (await import('node:fs/promises')).writeFile(npy, encodeNpy({ data: new Float32Array(2 * 3 * 16 ** 3).fill(0.5), shape: [2, 3, 16, 16, 16] }));
  r = await cli(['infer', model, '--input', npy, '--raw', '--output', join(dir, 'out.npy')]);
  assert.equal(r.code, 0, r.stderr);
  const { decodeNpy } = await import('../../../inference/volumes/index.js');
  const out = decodeNpy(readFileSync(join(dir, 'out.npy')));
  assert.deepEqual(out.shape, [1, 1, 2, 10], 'the first output (2, 10), as float32');
  r = await cli(['infer', model, '--input', join(dir, 'missing.nii')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /missing\.nii/);
  r = await cli(['infer', model, '--input', volume, '--output', join(dir, 'x.txt')]);
  assert.equal(r.code, 2);
  r = await cli(['infer', model, '--input', volume, '--device', 'tpu']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--device must be one of/);
  r = await cli(['infer', model, '--input', volume, '--output', join(dir, 'x.nii.gz')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /gives no volume/);
});

test('class-activation maps for GAP + Linear heads, on the volume grid in [0, 1]; none for other heads', async () => {
  const { withFeatureMap, activationMap } = await import('../../../inference/runtime/cam.js');
  const model = await loadModelFile(fixture('goldens', 'resnet18', 'model.pth'), { mode: 'acs', inChannels: 1 });
  const bytes = (await model.source.load()) as Uint8Array;
  assert.ok(withFeatureMap(bytes), 'ResNet: global average pool, flatten, Linear');
  const convnext = await loadModelFile(fixture('goldens', 'convnext_tiny', 'model.pth'), { mode: 'acs' });
  assert.equal(withFeatureMap((await convnext.source.load()) as Uint8Array), undefined, 'ConvNeXt normalises after pooling: no CAM');
  const volume = await readVolume(fixture('inference', 'ct_phantom.nii.gz'));
  const engine = new InferenceEngine({ threads: 1 });
  try {
    const result = await infer(engine, model, volume);
    const cam = await activationMap(engine, model, result, volume, {});
    assert.ok(cam);
    assert.equal(cam.length, volume.shape[1] * volume.shape[2] * volume.shape[3]);
    assert.ok(cam.every((v) => v >= 0 && v <= 1 + 1e-6));
    assert.ok(cam.some((v) => v > 0.5));
  } finally {
    await engine.close();
  }
});
