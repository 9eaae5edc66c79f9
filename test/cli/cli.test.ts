import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { join } from 'node:path';
import { test } from 'node:test';
import { readCheckpointFile } from '../../converters/formats/index.js';
import { encodeSafetensors } from '../../converters/formats/safetensors.js';
import { encodeZip } from '../../converters/formats/zip.js';
import { concatChunks } from '../../converters/io.js';
import type { StateDict } from '../../converters/tensor.js';
import { tensorsEqual } from '../../converters/tensor.js';
import { oneConvExternal, oneConvOnnx } from '../converters/onnx-models.js';
import { createSession } from '../../inference/runtime/providers.js';
import { assertClose, cli, detTensor, fixture, tempDir } from '../helpers.js';

test('cli: --help lists the commands', async () => {
  const r = await cli(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /acs-hub inspect/);
  assert.match(r.stdout, /acs-hub convert/);
});

test('cli: inspect prints one line per tensor and the parameter count', async () => {
  const r = await cli(['inspect', fixture('formats', 'wrapped_state_dict.pth')]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 8);
  assert.match(lines[0]!, /^conv1\.weight\s+F32\s+\[4, 3, 7, 7\]$/);
  assert.match(lines[6]!, /^6 tensors, pth \(state dict under 'state_dict'\)$/);
  assert.equal(lines[7], '596 parameters (trainable, as PyTorch counts them), 9 in buffers (BatchNorm statistics)');
});

test('cli: inspect --json is machine-readable', async () => {
  const r = await cli(['inspect', '--json', fixture('formats', 'dtypes.safetensors')]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { format: string; parameters: number; buffers: number; tensors: { name: string; dtype: string; shape: number[] }[] };
  assert.equal(out.format, 'safetensors');
  // 198 elements, one of them the scalar `num_batches_tracked`: a buffer.
  assert.equal(out.parameters, 197);
  assert.equal(out.buffers, 1);
  assert.deepEqual(out.tensors.find((t) => t.name === 'bf16'), { name: 'bf16', dtype: 'BF16', shape: [2, 7] });
});

test('cli: convert --mode none turns a pickle into safetensors and back', async (t) => {
  const dir = await tempDir(t);
  const st = join(dir, 'r.safetensors');
  let r = await cli(['convert', fixture('formats', 'resnet18_tiny.legacy.pth'), '--out', st, '--mode', 'none']);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['convert', st, '--out', join(dir, 'r.pth')]);
  assert.equal(r.code, 0, r.stderr);
  const a = await readCheckpointFile(fixture('formats', 'resnet18_tiny.legacy.pth'));
  const b = await readCheckpointFile(join(dir, 'r.pth'));
  for (const [k, tensor] of a.tensors) assert.ok(tensorsEqual(b.tensors.get(k)!, tensor), k);
});

test('cli: a bad file exits 1 with one line naming the file and the problem', async () => {
  const bad = fixture('formats', 'hostile', 'os_system_zip.pth');
  const r = await cli(['inspect', bad]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.ok(r.stderr.includes(bad));
  assert.match(r.stderr, /refused global 'posix\.system'/);
});

test('cli: a missing file and bad usage are clear', async () => {
  let r = await cli(['inspect', 'no-such-file.pth']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no-such-file\.pth/);
  r = await cli(['frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
  // Names every object has are not commands either.
  for (const name of ['constructor', 'toString', '__proto__']) {
    r = await cli([name]);
    assert.equal(r.code, 2, name);
    assert.match(r.stderr, new RegExp(`unknown command '${name}'`));
  }
  r = await cli(['convert', fixture('formats', 'dtypes.pth')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--out is required/);
  r = await cli(['convert', fixture('formats', 'dtypes.pth'), '--out', 'x.txt']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot tell the output format/);
});

test('cli: convert reads external ONNX data beside the model, and no location that leaves its folder', async (t) => {
  const dir = await tempDir(t);
  const folder = join(dir, 'model');
  await mkdir(folder);
  const good = oneConvExternal(3, 'weights.bin');
  await writeFile(join(folder, 'm.onnx'), good.model);
  await writeFile(join(folder, 'weights.bin'), good.data);
  const ok = await cli(['convert', join(folder, 'm.onnx'), '--out', join(dir, 'm3d.onnx'), '--mode', 'acs']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok((await stat(join(dir, 'm3d.onnx'))).size > good.data.byteLength);

  // The same bytes outside the folder, reached by a parent reference, an absolute path or a link.
  await writeFile(join(dir, 'secret.bin'), good.data);
  await symlink(join(dir, 'secret.bin'), join(folder, 'link.bin'));
  for (const location of ['../secret.bin', join(dir, 'secret.bin'), 'link.bin']) {
    const { model } = oneConvExternal(3, location);
    await writeFile(join(folder, 'x.onnx'), model);
    const out = join(dir, 'x3d.onnx');
    const r = await cli(['convert', join(folder, 'x.onnx'), '--out', out, '--mode', 'acs']);
    assert.equal(r.code, 1, `${location}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(r.stderr.includes(`external data location '${location}' escapes the model's folder`), r.stderr);
    await assert.rejects(stat(out), 'nothing written');
  }
});

test('cli: an i3d conversion whose output would pass budgets.conversionOutputBytes exits 1 with one line', async (t) => {
  const dir = await tempDir(t);
  // 4 MiB: one 1024x1024 kernel; i3d would make it 4 GiB, written three times.
  await writeFile(join(dir, 'big.onnx'), oneConvOnnx(1024));
  const out = join(dir, 'big3d.safetensors');
  const r = await cli(['convert', join(dir, 'big.onnx'), '--out', out, '--mode', 'i3d']);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /the i3d conversion of 'one_conv' would write up to \d+ bytes \(model\.safetensors \d+, model\.pth \d+, model\.onnx \d+\), more than 8589934592 \(budgets\.conversionOutputBytes\)/);
  await assert.rejects(stat(out), 'nothing written');
  // A lower budget from the environment is obeyed (ACS keeps the kernel's 4 MiB, three times).
  const low = await cli(['convert', join(dir, 'big.onnx'), '--out', join(dir, 'low.onnx'), '--mode', 'acs'], { env: { ACS_HUB_BUDGET_CONVERSION_OUTPUT_BYTES: String(8 * 1024 * 1024) } });
  assert.equal(low.code, 1, low.stderr);
  assert.match(low.stderr, /more than 8388608 \(budgets\.conversionOutputBytes\)/);
});

test('cli: names from a file reach the terminal with their control characters escaped', async (t) => {
  const dir = await tempDir(t);
  // A zip whose folder name colours the terminal red, then moves the cursor (C1 CSI).
  const zip = join(dir, 'evil.pth');
  await writeFile(zip, concatChunks(encodeZip([{ name: '\x1b[31mred\x9b2J/data', data: [new Uint8Array(1)] }])));
  let r = await cli(['inspect', zip]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.ok(!r.stderr.includes('\x1b') && !r.stderr.includes('\x9b'), 'no raw ESC or CSI');
  assert.ok(r.stderr.includes("has no '\\u001b[31mred\\u009b2J/data.pkl'"), r.stderr);
  // A tensor whose name clears the screen, listed and as JSON.
  const st = join(dir, 'evil.safetensors');
  const sd: StateDict = new Map([['\x1b[2Jwipe', { dtype: 'U8', shape: [1], data: new Uint8Array(1) }]]);
  await writeFile(st, concatChunks(encodeSafetensors(sd)));
  r = await cli(['inspect', st]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes('\x1b'));
  assert.equal(r.stdout.split('\n')[0], '\\u001b[2Jwipe  U8    [1]');
  r = await cli(['inspect', '--json', st]);
  assert.ok(!r.stdout.includes('\x1b'));
  assert.equal((JSON.parse(r.stdout) as { tensors: { name: string }[] }).tensors[0]!.name, '\x1b[2Jwipe');
});

test('cli: inspect lists a safetensors file of 300,000 tiny tensors', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'many.safetensors');
  const one = new Uint8Array(1);
  const sd: StateDict = new Map();
  for (let i = 0; i < 300_000; i++) sd.set(`t${i}`, { dtype: 'U8', shape: [1], data: one });
  await writeFile(path, concatChunks(encodeSafetensors(sd)));
  const r = await cli(['inspect', path]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 300_002);
  assert.equal(lines[0], 't0       U8    [1]');
  assert.equal(lines[300_000], '300000 tensors, safetensors');
  assert.match(lines[300_001]!, /^300,000 parameters /);
});

test('cli: convert --specialize writes model.onnx for one size (same outputs) and names it in the card', async (t) => {
  const dir = await tempDir(t);
  const src = fixture('goldens', 'resnet18', 'model.pth');
  const general = join(dir, 'g.onnx');
  const special = join(dir, 's.onnx');
  let r = await cli(['convert', src, '--out', general, '--in-channels', '1']);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['convert', src, '--out', special, '--in-channels', '1', '--specialize', '16,24,16']);
  assert.equal(r.code, 0, r.stderr);
  const card = JSON.parse(await readFile(join(dir, 's.card.json'), 'utf8')) as { onnx: { specializedFor: number[]; note: string; sha256: string } };
  assert.deepEqual(card.onnx.specializedFor, [16, 24, 16]);
  assert.match(card.onnx.note, /specialised for 16x24x16/);
  const bytes = await readFile(special);
  assert.equal(card.onnx.sha256, createHash('sha256').update(bytes).digest('hex'));
  const shape = [1, 1, 16, 24, 16];
  const data = detTensor(shape, 5);
  const outputs = await Promise.all([general, special].map(async (p) => {
    const { session } = await createSession(p, { threads: 1 });
    const out = Object.values(await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', data, shape) }))[0] as ort.Tensor;
    await session.release();
    return out.data as Float32Array;
  }));
  assertClose(outputs[1]!, outputs[0]!, { rtol: 1e-4, atol: 1e-4, what: 'specialised vs general' });
  r = await cli(['convert', src, '--out', join(dir, 'x.onnx'), '--specialize', '16,16']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /'--specialize' must be three positive integers/);
  r = await cli(['convert', src, '--out', join(dir, 'x.onnx'), '--specialize', '4096,4096,4096']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /budgets\.outputVoxels/);
  r = await cli(['convert', src, '--out', join(dir, 'x.safetensors'), '--specialize', '16,16,16']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--specialize applies to an \.onnx output/);
});
