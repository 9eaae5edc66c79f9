import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { AcsHubError } from '../../../converters/errors.js';
import { concatChunks } from '../../../converters/io.js';
import { encodeZip } from '../../../converters/formats/zip.js';
import { renderPreview } from '../../../inference/predictions/index.js';
import type { LoadedModel } from '../../../inference/runtime/pipeline.js';
import { preprocess } from '../../../inference/runtime/pipeline.js';
import { gridToVolume } from '../../../inference/volumes/grid-volume.js';
import { encodeNifti, readVolume } from '../../../inference/volumes/index.js';
import { deflatedZip, fixture, prng, rssGrowth, tempDir } from '../../helpers.js';

const MiB = 1024 * 1024;

/** The refusal of a budget: 413 LIMIT_EXCEEDED, naming its setting and the input. */
function refusedBy(setting: string, ...mentions: string[]) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AcsHubError, `expected a typed error, got ${String(err)}`);
    assert.equal(err.code, 'LIMIT_EXCEEDED', err.message);
    assert.equal(err.code, 'LIMIT_EXCEEDED');
    assert.ok(err.message.includes(`budgets.${setting}`), `'${err.message}' names budgets.${setting}`);
    for (const m of mentions) assert.ok(err.message.includes(m), `'${err.message}' mentions '${m}'`);
    return true;
  };
}

/** A NIfTI-1 of `[D, H, W]` with voxels of `spacing` mm, optionally gzipped. */
function nifti(data: Float32Array | Int16Array | Uint8Array, shape: [number, number, number], opts: { spacing?: number; gzip?: boolean } = {}): Buffer {
  const s = opts.spacing ?? 1;
  return Buffer.from(encodeNifti({ data, shape, affine: [s, 0, 0, 0, 0, s, 0, 0, 0, 0, s, 0, 0, 0, 0, 1], gzip: opts.gzip ?? false }));
}

/** A one-channel model as the pipeline sees it; preprocessing never loads its network. */
const oneChannel: LoadedModel = { source: { key: 'preprocessing-only', bytes: 0, load: () => Promise.reject(new Error('not loaded in these tests')) }, channels: 1 };

test('.nii.gz: what the header says it inflates to is held against the budgets before inflating', async () => {
  // 128^3 zeros: 2 MiB that gzip packs into a few kilobytes
  const bomb = nifti(new Uint8Array(128 ** 3), [128, 128, 128], { gzip: true });
  assert.ok(bomb.length < 64 * 1024, `${bomb.length} bytes`);
  const { growth } = await rssGrowth(() => assert.rejects(readVolume(bomb, { file: 'zeros.nii.gz' }), refusedBy('compressionRatio', 'zeros.nii.gz')));
  assert.ok(growth < 64 * MiB, `rss grew by ${growth} bytes`);
  const read = await readVolume(bomb, { file: 'zeros.nii.gz', budgets: { compressionRatio: 10_000 } });
  assert.deepEqual(read.shape, [1, 128, 128, 128]);

  // 32^3 int16 of noise: 352 header bytes + 65,536 voxel bytes, barely compressible
  const r = prng(7);
  const noise = nifti(Int16Array.from({ length: 32 ** 3 }, () => Math.floor(r() * 60000) - 30000), [32, 32, 32], { gzip: true });
  assert.deepEqual((await readVolume(noise, { file: 'noise.nii.gz', budgets: { unpackedEntryBytes: 352 + 65_536 } })).shape, [1, 32, 32, 32]);
  await assert.rejects(readVolume(noise, { file: 'noise.nii.gz', budgets: { unpackedEntryBytes: 352 + 65_535 } }), refusedBy('unpackedEntryBytes', 'noise.nii.gz', '65888'));
});

test('a small NIfTI whose header asks for huge voxels: reading is fine, resampling it to 0.5 mm is refused', async () => {
  // 24^3 voxels of 80 mm: at 0.5 mm that is 3840^3 voxels (5.7e10), 226 GB of float32
  const bytes = nifti(new Float32Array(24 ** 3).fill(-1000), [24, 24, 24], { spacing: 80, gzip: true });
  const volume = await readVolume(bytes, { file: 'huge-voxels.nii.gz' });
  assert.deepEqual(volume.spacing, [80, 80, 80]);
  const { growth } = await rssGrowth(async () => {
    assert.throws(() => preprocess(volume, oneChannel, { spacing: [0.5, 0.5, 0.5] }), refusedBy('outputVoxels', 'huge-voxels.nii.gz', '[1, 3840, 3840, 3840]'));
  });
  assert.ok(growth < 64 * MiB, `rss grew by ${growth} bytes`);
  assert.throws(() => preprocess(volume, oneChannel, { size: [800, 800, 800] }), refusedBy('outputVoxels', '512000000'));
  assert.throws(() => preprocess(volume, oneChannel, { patch: [2, 2, 2], overlap: 0.9 }), refusedBy('slidingWindows', '23 x 23 x 23'));
  // within the budgets it goes through
  assert.deepEqual(preprocess(volume, oneChannel, { spacing: [160, 160, 160] }).volume.shape, [1, 12, 12, 12]);
});

test('zips of slices: file count, unpacked bytes and compression ratio, from the directory before inflating', async () => {
  const png = (k: number) => sharp(Buffer.alloc(16 * 16, k * 10), { raw: { width: 16, height: 16, channels: 1 } }).png().toBuffer();
  const slices = await Promise.all(Array.from({ length: 6 }, async (_, k) => ({ name: `slices/s${k}.png`, data: [await png(k)] })));
  const zip = Buffer.from(concatChunks(encodeZip(slices)));
  assert.deepEqual((await readVolume(zip, { file: 'pngs.zip' })).shape, [1, 6, 16, 16]);
  await assert.rejects(readVolume(zip, { file: 'pngs.zip', budgets: { volumeFiles: 5 } }), refusedBy('volumeFiles', 'pngs.zip', '5'));

  // DICOM slices zipped: 6 files of a CT series
  const ct = fixture('volumes', 'ct_series');
  await assert.rejects(readVolume(ct, { budgets: { volumeFiles: 5 } }), refusedBy('volumeFiles', ct));
  assert.equal((await readVolume(ct, { budgets: { volumeFiles: 6 } })).shape[1], 6);

  // three slices of 2 MiB that deflate to almost nothing: a zip bomb in miniature
  const zeros = deflatedZip(Array.from({ length: 3 }, (_, k) => ({ name: `IM${k}.dcm`, data: new Uint8Array(2 * MiB) })));
  assert.ok(zeros.length < 64 * 1024, `${zeros.length} bytes`);
  const { growth } = await rssGrowth(() => assert.rejects(readVolume(zeros, { file: 'bomb.zip' }), refusedBy('compressionRatio', "'IM0.dcm'")));
  assert.ok(growth < 64 * MiB, `rss grew by ${growth} bytes`);
  const lax = { compressionRatio: 100_000 };
  await assert.rejects(readVolume(zeros, { file: 'bomb.zip', budgets: { ...lax, unpackedEntryBytes: 2 * MiB - 1 } }), refusedBy('unpackedEntryBytes', "'IM0.dcm'", String(2 * MiB)));
  await assert.rejects(readVolume(zeros, { file: 'bomb.zip', budgets: { ...lax, unpackedTotalBytes: 5 * MiB } }), refusedBy('unpackedTotalBytes', 'bomb.zip'));
  // within every budget the entries are inflated and read (and are not DICOM)
  await assert.rejects(readVolume(zeros, { file: 'bomb.zip', budgets: { ...lax, unpackedTotalBytes: 6 * MiB } }), { code: 'VOLUME_FORMAT' });
});

test('a folder of slices holds at most budgets.volumeFiles files', async (t) => {
  const dir = await tempDir(t);
  for (let k = 0; k < 4; k++) await writeFile(join(dir, `s${k}.png`), await sharp(Buffer.alloc(64, k), { raw: { width: 8, height: 8, channels: 1 } }).png().toBuffer());
  await assert.rejects(readVolume(dir, { budgets: { volumeFiles: 3 } }), refusedBy('volumeFiles', dir));
  assert.deepEqual((await readVolume(dir, { budgets: { volumeFiles: 4 } })).shape, [1, 4, 8, 8]);
});

test('NaN voxels are refused before preprocessing, naming the input', async () => {
  const data = new Float32Array(8 ** 3).fill(100);
  data[5 * 64 + 3 * 8 + 2] = NaN;
  data[7] = Infinity;
  const volume = await readVolume(nifti(data, [8, 8, 8]), { file: 'holes.nii' });
  for (const o of [{}, { raw: true }, { size: [16, 16, 16] as [number, number, number] }]) {
    assert.throws(
      () => preprocess(volume, oneChannel, o),
      (err: unknown) => err instanceof AcsHubError && err.code === 'VOLUME_FORMAT' && /^holes\.nii: 2 of 512 voxels are not finite/.test(err.message) && err.message.includes('[0, 0, 0, 7]'),
    );
  }
});

test('broken geometry: unusable sform/qform fall back, a broken grid is a 422, the preview never fails on it', async () => {
  const base = () => nifti(Float32Array.from({ length: 4 * 5 * 6 }, (_, i) => i), [4, 5, 6], { spacing: 2 });
  // qform with NaN quaternion parameters (and no sform): geometry from pixdim, with a warning
  const nanQform = base();
  nanQform.writeInt16LE(0, 254);
  nanQform.writeFloatLE(NaN, 256);
  const a = await readVolume(nanQform, { file: 'nan-qform.nii' });
  assert.deepEqual(a.spacing, [2, 2, 2]);
  assert.equal(a.source.nifti?.affineFrom, 'pixdim');
  assert.match(a.source.warnings.join('; '), /qform is not finite/);
  // sform with a zero column: the qform is used instead
  const flat = base();
  for (const o of [280, 296, 312]) flat.writeFloatLE(0, o);
  const b = await readVolume(flat, { file: 'flat-sform.nii' });
  assert.equal(b.source.nifti?.affineFrom, 'qform');
  assert.ok(b.spacing.every((x) => x === 2), `spacing ${b.spacing.join(', ')}`);
  // a grid with no usable geometry at all (a DICOM with a zero or infinite step, say)
  for (const bad of [[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, Infinity, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], [1, 0, 0, NaN, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]]) {
    assert.throws(
      () => gridToVolume({ dims: [2, 2, 2], channels: 1, affine: bad, read: () => 0, source: { format: 'dicom', file: 'series.zip', channels: 'single', warnings: [] } }),
      (err: unknown) => err instanceof AcsHubError && err.code === 'VOLUME_FORMAT' && /^series\.zip: its geometry is broken/.test(err.message),
    );
  }
  // the preview: a spacing that is not a voxel size is refused; a very anisotropic one is bounded
  const v = await readVolume(base(), { file: 'ok.nii' });
  await assert.rejects(renderPreview({ volume: { ...v, spacing: [NaN, 1, 1] } }), { code: 'INVALID_ARGUMENT' });
  await assert.rejects(renderPreview({ volume: { ...v, spacing: [0, 1, 1] } }), { code: 'INVALID_ARGUMENT' });
  const png = await renderPreview({ volume: { ...v, spacing: [1, 1e-6, 1e6] } });
  const meta = await sharp(png).metadata();
  assert.ok(meta.width! <= 3 * 4096 + 8 && meta.height! <= 4096, `${meta.width} x ${meta.height}`);
});
