import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { gzipSync } from 'node:zlib';
import { percentileBounds, percentileBoundsOfPlanes, resample, resamplePlanes, inputRingPlanes, slidingWindow, type ChannelMap, type WindowOutput } from '../../../inference/preprocess/index.js';
import { ZipReader, encodeZip } from '../../../converters/formats/zip.js';
import { concatChunks } from '../../../converters/io.js';
import { encodeNifti, encodeNpy, isSpooled, parseNpyHeader, spoolTiffFile, loadPlaneVolume, memoryPlanes, openVolume, readAllPlanes, readNiftiFile, readVolume, spoolNiftiFile, spoolVolume, type NiftiArray, type PlaneSource, type PlaneVolume, type SpooledVolume, type Volume } from '../../../inference/volumes/index.js';
import { deflatedZip, fixture, prng, tempDir } from '../../helpers.js';
import { assertSameBits } from '../whole-volume.js';

/** What a spooled volume has besides its planes: the same as the volume read whole. */
function assertSameGeometry(spooled: PlaneVolume, whole: Volume, what: string): void {
  assert.deepEqual(spooled.shape, whole.shape, `${what}: shape`);
  assert.deepEqual(spooled.spacing, whole.spacing, `${what}: spacing`);
  assert.deepEqual(spooled.affine, whole.affine, `${what}: affine`);
  assert.deepEqual(spooled.source, whole.source, `${what}: source`);
  assert.equal(spooled.modality, whole.modality, `${what}: modality`);
}

const AFFINES: Record<string, number[]> = {
  'axial RAS': [0.8, 0, 0, -10, 0, 0.8, 0, 5, 0, 0, 2, 30, 0, 0, 0, 1],
  'axial LPS (w and h flipped)': [-0.7, 0, 0, 100, 0, -0.7, 0, 90, 0, 0, 1, -40, 0, 0, 0, 1],
  'axial, slices from the top (d flipped)': [0.7, 0, 0, 0, 0, 0.7, 0, 0, 0, 0, -1.5, 60, 0, 0, 0, 1],
  'axial, rows and columns swapped': [0, -0.9, 0, 0, 0.9, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1],
  'coronal (gathered)': [-0.8, 0, 0, 20, 0, 0, 1.5, -10, 0, -1.2, 0, 30, 0, 0, 0, 1],
  'sagittal (gathered)': [0, 0, 1.2, 0, 0.9, 0, 0, 0, 0, -0.9, 0, 0, 0, 0, 0, 1],
};

test('a NIfTI spooled to disk gives, plane by plane, the values, geometry and source readNiftiFile gives, in every orientation, type, channel count and compression, gathered a block of planes at a time; its files are gone from the folder', async (t) => {
  const dir = await tempDir(t);
  const spoolDir = join(dir, 'spool');
  await import('node:fs/promises').then((fs) => fs.mkdir(spoolDir));
  const r = prng(11);
  const cases: { name: string; data: NiftiArray; shape: [number, number, number, number] }[] = [
    // 2 channels of 9x70x61 float64: 600 KB a channel, 8-byte samples across the stream's chunks
    { name: 'float64 4D', data: Float64Array.from({ length: 2 * 9 * 70 * 61 }, () => r() * 2000 - 1000), shape: [2, 9, 70, 61] },
    { name: 'int16', data: Int16Array.from({ length: 17 * 33 * 40 }, () => Math.round(r() * 3000 - 1024)), shape: [1, 17, 33, 40] },
    { name: 'float32 with NaN and infinities', data: Float32Array.from({ length: 5 * 12 * 13 }, (_, i) => (i === 700 ? NaN : i === 31 ? -Infinity : i === 400 ? Infinity : r() * 10 - 3)), shape: [1, 5, 12, 13] },
  ];
  let n = 0;
  for (const c of cases) {
    for (const [orientation, affine] of Object.entries(AFFINES)) {
      for (const gz of [false, true]) {
        const what = `${c.name}, ${orientation}, ${gz ? '.nii.gz' : '.nii'}`;
        const path = join(dir, `v${n++}.nii${gz ? '.gz' : ''}`);
        const bytes = encodeNifti({ data: c.data, shape: c.shape, affine });
        await writeFile(path, gz ? gzipSync(bytes) : bytes);
        const whole = await readNiftiFile(path, { file: 'v.nii' });
        // blocks of one plane, of three, and the default (the whole volume at these sizes)
        const [, , h, w] = whole.shape;
        const blockBytes = [4 * h * w - 1, 3 * 4 * h * w + 5, undefined][n % 3];
        const spooled = await spoolNiftiFile(path, { file: 'v.nii', dir: spoolDir, ...(blockBytes !== undefined ? { blockBytes } : {}) });
        try {
          assert.deepEqual(await readdir(spoolDir), [], `${what}: no file left in the folder`);
          assertSameGeometry(spooled, whole, what);
          assertSameBits(await readAllPlanes(spooled), whole.data, what);
          // the counts the pipeline asks of a whole volume
          let min = Infinity;
          let bad = 0;
          let first: { index: number; value: number } | undefined;
          whole.data.forEach((v, i) => {
            if (!Number.isFinite(v)) {
              bad++;
              first ??= { index: i, value: v };
            } else if (v < min) min = v;
          });
          assert.equal(spooled.spool.min, min, `${what}: min`);
          assert.equal(spooled.spool.nonFinite, bad, `${what}: non-finite voxels`);
          assert.deepEqual(spooled.spool.firstNonFinite, first, `${what}: the first non-finite voxel`);
          assert.equal(spooled.spool.bytes, 4 * whole.data.length);
        } finally {
          await spooled.close();
        }
        await assert.rejects(spooled.readPlane(0, 0, new Float32Array(spooled.shape[2] * spooled.shape[3]), 0), /closed/, `${what}: no read after close`);
      }
    }
  }
  assert.equal(n, 36);
});

test('a truncated, corrupt or over-budget NIfTI is refused by the spooling reader as by readNiftiFile, and leaves nothing behind', async (t) => {
  const dir = await tempDir(t);
  const spoolDir = join(dir, 'spool');
  await import('node:fs/promises').then((fs) => fs.mkdir(spoolDir));
  const data = Float32Array.from({ length: 20 * 50 * 50 }, (_, i) => i % 777);
  const bytes = encodeNifti({ data, shape: [1, 20, 50, 50], affine: AFFINES['axial RAS']! });
  const gz = gzipSync(bytes);
  const corrupt = Buffer.from(gz);
  corrupt.fill(0x55, 2000, 2100);
  const files = {
    'truncated.nii': bytes.subarray(0, bytes.byteLength - 4000),
    'truncated.nii.gz': gz.subarray(0, Math.floor(gz.byteLength / 2)),
    'corrupt.nii.gz': corrupt,
    'header only.nii': bytes.subarray(0, 200),
  };
  for (const [name, b] of Object.entries(files)) {
    const path = join(dir, name);
    await writeFile(path, b);
    const expected = await readNiftiFile(path, { file: name }).then(() => assert.fail(`${name}: readNiftiFile read it`), (err: Error) => err);
    await assert.rejects(spoolNiftiFile(path, { file: name, dir: spoolDir }), (err: Error) => {
      assert.equal(err.message, expected.message, name);
      assert.equal((err as { code?: unknown }).code, (expected as { code?: unknown }).code, name);
      return true;
    });
    assert.deepEqual(await readdir(spoolDir), [], `${name}: nothing left behind`);
  }
  // the gzip budget: a bomb is refused before any plane is written
  const path = join(dir, 'bomb.nii.gz');
  await writeFile(path, gzipSync(encodeNifti({ data: new Float32Array(200 * 200 * 200), shape: [1, 200, 200, 200], affine: AFFINES['axial RAS']! })));
  await assert.rejects(spoolNiftiFile(path, { dir: spoolDir, budgets: { compressionRatio: 50 } }), /compressionRatio/);
  assert.deepEqual(await readdir(spoolDir), []);
});

test('a spool refuses planes outside the volume, written twice or never', async () => {
  const w = await spoolVolume({ shape: [1, 2, 3, 4] });
  await assert.rejects(w.writePlane(0, 2, new Float32Array(12)), /outside/);
  await assert.rejects(w.writePlane(1, 0, new Float32Array(12)), /outside/);
  await assert.rejects(w.writePlane(0, 0, new Float32Array(11)), /12 values/);
  await w.writePlane(0, 0, new Float32Array(12));
  await assert.rejects(w.writePlane(0, 0, new Float32Array(12)), /twice/);
  assert.throws(() => w.finish({ spacing: [1, 1, 1], affine: [], source: { format: 'raw', file: 'x', channels: 'single', warnings: [] } }), /\(0, 1\) was never written/);
  await w.abort();
});

test('percentiles over planes equal the sorted percentiles of the volume: negative and positive values, ties, signed zeros, one value, per channel and together', async () => {
  const r = prng(5);
  const volumes: { what: string; data: Float32Array; shape: [number, number, number, number] }[] = [
    { what: 'uniform', data: Float32Array.from({ length: 2 * 7 * 11 * 13 }, () => r() * 4000 - 1000), shape: [2, 7, 11, 13] },
    { what: 'ties and signed zeros', data: Float32Array.from({ length: 3 * 5 * 6 * 7 }, (_, i) => [-0, 0, 1, -1, 0.5, 1e-30, -1e30][i % 7]! * (i % 3 === 0 ? 1 : 2)), shape: [3, 5, 6, 7] },
    { what: 'CT in HU', data: Float32Array.from({ length: 9 * 20 * 20 }, () => Math.round(r() < 0.4 ? -1000 : r() * 1400 - 200)), shape: [1, 9, 20, 20] },
    { what: 'one voxel', data: Float32Array.of(-3.25), shape: [1, 1, 1, 1] },
  ];
  for (const v of volumes) {
    for (const p of [[0.5, 99.5], [0, 100], [25, 75], [10, 10.000001]] as [number, number][]) {
      for (const perChannel of [true, false]) {
        const expected = percentileBounds(v, p, perChannel);
        const got = await percentileBoundsOfPlanes(memoryPlanes(v), p, perChannel);
        assert.deepEqual(got, expected, `${v.what}, percentiles [${p.join(', ')}], ${perChannel ? 'per channel' : 'together'}`);
      }
    }
  }
  await assert.rejects(percentileBoundsOfPlanes(memoryPlanes(volumes[0]!), [50, 50]), /0 <= lo < hi <= 100/);
});

test('resampling a volume a plane at a time gives what resample gives, bit for bit, with its geometry, reading each input plane at most twice', async () => {
  const r = prng(8);
  const [c, d, h, w] = [2, 11, 13, 9];
  const volume: Volume = {
    data: Float32Array.from({ length: c * d * h * w }, () => r() * 100),
    shape: [c, d, h, w],
    spacing: [2, 0.9, 1.1],
    affine: [1.1, 0, 0, 3, 0, 0.9, 0, -4, 0, 0, 2, 7, 0, 0, 0, 1],
    source: { format: 'nifti', file: 'v.nii', channels: 'nifti-4d', warnings: [] },
  };
  for (const mode of ['trilinear', 'nearest'] as const) {
    for (const target of [{ size: [23, 6, 9] }, { size: [5, 26, 17] }, { size: [11, 13, 9] }, { spacing: [0.7, 2.5, 1] as [number, number, number] }]) {
      const what = `${mode} to ${JSON.stringify(target)}`;
      const expected = resample({ volume, mode, ...target });
      let reads = 0;
      const planes = memoryPlanes(volume);
      const source: PlaneVolume = { ...volume, readPlane: (ci, z, into, at) => (reads++, planes.readPlane(ci, z, into, at)) };
      delete (source as { data?: unknown }).data;
      const got = resamplePlanes({ volume: source, mode, ...target });
      assert.deepEqual(got.shape, expected.shape, what);
      assertSameBits(await readAllPlanes(got), expected.data, what);
      assert.deepEqual(got.affine, expected.affine, `${what}: affine`);
      assert.deepEqual(got.spacing, expected.spacing, `${what}: spacing`);
      assert.ok(reads <= 2 * c * d, `${what}: ${reads} plane reads for ${c * d} planes`);
      assert.equal('spool' in got, false);
    }
  }
});

/** A plane source that counts its reads, and how far apart the planes read are. */
function counting(volume: { data: Float32Array; shape: [number, number, number, number] }) {
  const inner = memoryPlanes(volume);
  const reads: number[] = [];
  const source: PlaneSource = {
    shape: volume.shape,
    readPlane: (c, z, into, at) => {
      reads.push(c * volume.shape[1] + z);
      return inner.readPlane(c, z, into, at);
    },
  };
  return { source, reads };
}

test('sliding windows over a volume read a plane at a time: the same outputs bit for bit as over the volume in memory, every plane read once and in order, through a ring of inputRingPlanes planes', async () => {
  const r = prng(21);
  const cases: { shape: [number, number, number, number]; window: [number, number, number]; overlap: number; batch: number }[] = [
    { shape: [1, 40, 20, 22], window: [8, 10, 10], overlap: 0.25, batch: 1 },
    { shape: [2, 33, 17, 19], window: [8, 8, 8], overlap: 0.5, batch: 3 },
    { shape: [1, 30, 12, 12], window: [6, 12, 12], overlap: 0.4, batch: 7 },
    { shape: [1, 5, 30, 9], window: [8, 8, 12], overlap: 0.25, batch: 2 }, // padded along D and W
    { shape: [3, 21, 9, 9], window: [4, 9, 9], overlap: 0, batch: 4 },
  ];
  for (const c of cases) {
    const data = Float32Array.from({ length: c.shape.reduce((a, b) => a * b, 1) }, () => r() * 500 - 200);
    const volume = { data, shape: c.shape };
    const maps: ChannelMap[] = [0, 1, 2].map((i) => ({ source: i % c.shape[0], intensity: { lo: -100, hi: 200 + i, range: [0, 1] }, mean: 0.1 * i, std: 0.5 }));
    for (const kind of ['dense', 'vector'] as const) {
      const what = `${JSON.stringify(c)}, ${kind}`;
      // a "network" whose output depends on every input value of the window
      const run = async (batch: Float32Array, shape: readonly number[]): Promise<WindowOutput> => {
        const [n, ch] = shape as [number, number];
        const per = batch.length / n;
        if (kind === 'vector') return { data: Float32Array.from({ length: n * 2 }, (_, i) => batch.subarray(Math.floor(i / 2) * per, (Math.floor(i / 2) + 1) * per).reduce((a, b, j) => a + b * ((j % 5) + (i % 2)), 0)), shape: [n, 2] };
        const out = new Float32Array(n * 2 * (per / ch));
        for (let i = 0; i < n; i++) for (let j = 0; j < per / ch; j++) for (let k = 0; k < 2; k++) out[(i * 2 + k) * (per / ch) + j] = batch[i * per + j]! * (k + 1) + batch[i * per + (per - 1 - j)]!;
        return { data: out, shape: [n, 2, ...c.window] };
      };
      const params = { channels: maps, windowSize: c.window, overlap: c.overlap, batchSize: c.batch, run };
      const expected = await slidingWindow({ ...params, volume });
      const { source, reads } = counting(volume);
      const got = await slidingWindow({ ...params, volume: source });
      assert.equal(got.kind, expected.kind, what);
      assertSameBits(got.data as Float32Array, expected.data as Float32Array, what);
      const used = [...new Set(maps.map((m) => m.source))].length;
      assert.equal(reads.length, used * c.shape[1], `${what}: each plane of each channel used read once`);
      assert.deepEqual([...new Set(reads)].length, reads.length, `${what}: no plane read twice`);
      assert.ok(inputRingPlanes({ grid: c.shape.slice(1), window: c.window, overlap: c.overlap, batchSize: c.batch }) <= c.shape[1], what);
    }
  }
});

test('the ring of input planes is one window deep for one window a batch, and never deeper than the volume', () => {
  assert.equal(inputRingPlanes({ grid: [300, 512, 512], window: [96, 96, 96] }), 96);
  // 6 x 6 windows a plane of windows: a batch of 7 spans two window planes, a step (72) apart
  assert.equal(inputRingPlanes({ grid: [300, 512, 512], window: [96, 96, 96], batchSize: 7 }), 96 + 72);
  assert.equal(inputRingPlanes({ grid: [40, 512, 512], window: [96, 96, 96], batchSize: 50 }), 40);
});

test('every NIfTI fixture, plain and hostile: the spooling reader gives what readNiftiFile gives, the same volume or the same error', async (t) => {
  const spoolDir = await tempDir(t);
  let n = 0;
  for (const dir of [fixture('volumes'), fixture('volumes', 'hostile')]) {
    for (const name of (await readdir(dir)).filter((f) => /\.nii(\.gz)?$/.test(f))) {
      const path = join(dir, name);
      const whole = await readNiftiFile(path, { file: name }).catch((err: Error & { code?: unknown }) => ({ code: err.code, message: err.message }));
      const spooled = await spoolNiftiFile(path, { file: name, dir: spoolDir }).catch((err: Error & { code?: unknown }) => ({ code: err.code, message: err.message }));
      if (!('data' in whole) || !('readPlane' in spooled)) {
        assert.deepEqual('readPlane' in spooled ? 'a volume' : spooled, 'data' in whole ? 'a volume' : whole, `${name}: the same outcome`);
      } else {
        try {
          assertSameGeometry(spooled, whole, name);
          assertSameBits(await readAllPlanes(spooled), whole.data, name);
        } finally {
          await spooled.close();
        }
      }
      assert.deepEqual(await readdir(spoolDir), [], `${name}: nothing left behind`);
      n++;
    }
  }
  assert.ok(n >= 20, `${n} files`);
});

/** The outcome of opening: the volume (its planes read whole), or the error's code and message. */
async function opened(open: () => Promise<Volume | SpooledVolume>): Promise<{ volume: Volume; spooled: boolean } | { code: unknown; message: string }> {
  try {
    const v = await open();
    if (!isSpooled(v)) return { volume: v, spooled: false };
    try {
      return { volume: await loadPlaneVolume(v), spooled: true };
    } finally {
      await v.close();
    }
  } catch (err) {
    return { code: (err as { code?: unknown }).code, message: (err as Error).message };
  }
}

/**
 * `openVolume` of a path against `readVolume` of it: the same volume (bits, shape, geometry and
 * source) or the same error, and nothing left in the spool folder. Whether it was spooled, and
 * the volume's format or the error's message.
 */
async function assertOpensAsRead(path: string, params: Parameters<typeof readVolume>[1], spoolDir: string, what: string): Promise<{ spooled: boolean; format?: string; message?: string }> {
  const expected = await opened(() => readVolume(path, params));
  const got = await opened(() => openVolume(path, { ...params, dir: spoolDir }));
  if ('volume' in expected && 'volume' in got) {
    assertSameBits(got.volume.data, expected.volume.data, what);
    const { data: _a, ...restGot } = got.volume;
    const { data: _b, ...restExpected } = expected.volume;
    assert.deepEqual(restGot, restExpected, `${what}: shape, geometry and source`);
  } else assert.deepEqual(got, expected, `${what}: the same error`);
  assert.deepEqual(await readdir(spoolDir), [], `${what}: nothing left behind`);
  return 'volume' in got ? { spooled: got.spooled, format: got.volume.source.format } : { spooled: false, message: got.message };
}

test('a folder of DICOM files or PNG slices opened for sliding windows is kept on disk, one file at a time, and gives what readVolume gives: axial, coronal, deflated, big-endian and enhanced series, a choice among series, hostile files; 8-bit, 16-bit and colour PNG slices, slices of two sizes, PNG beside DICOM', async (t) => {
  const dir = await tempDir(t);
  const spoolDir = join(dir, 'spool');
  await mkdir(spoolDir);
  const folders: { name: string; path: string; params?: { seriesInstanceUid?: string; format?: 'png' } }[] = [];
  for (const name of ['ct_series', 'ct_deflated', 'mr_bigendian', 'mixed_series', 'png_slices']) folders.push({ name, path: fixture('volumes', name) });
  // PNG slices: 16-bit, colour, sizes that differ, and beside a DICOM file (which wins unless 'png' is asked for)
  const pngFolder = async (name: string, slices: { file: string; png: Promise<Buffer> }[], params?: { format?: 'png' }) => {
    const folder = join(dir, name);
    await mkdir(folder);
    for (const sl of slices) await writeFile(join(folder, sl.file), await sl.png);
    folders.push({ name, path: folder, ...(params ? { params } : {}) });
    return folder;
  };
  const grey16 = (k: number) => sharp(Buffer.from(Uint16Array.from({ length: 14 * 9 }, (_, i) => (i * 397 + k * 1000) % 65536).buffer), { raw: { width: 14, height: 9, channels: 1 } }).toColourspace('grey16').png().toBuffer();
  const rgb = (k: number, w = 12) => sharp(Buffer.from(Uint8Array.from({ length: w * 10 * 3 }, (_, i) => (i * 31 + k * 50) % 256)), { raw: { width: w, height: 10, channels: 3 } }).png().toBuffer();
  await pngFolder('16-bit PNG slices', [0, 1, 2, 10].map((k) => ({ file: `s${k}.png`, png: grey16(k) })));
  await pngFolder('colour PNG slices', [0, 1, 2].map((k) => ({ file: `c${k}.png`, png: rgb(k) })));
  await pngFolder('PNG slices of two sizes', [{ file: 'a1.png', png: rgb(1) }, { file: 'a2.png', png: rgb(2, 13) }]);
  const beside = await pngFolder('PNG slices beside a DICOM file', [0, 1].map((k) => ({ file: `c${k}.png`, png: rgb(k) })));
  await writeFile(join(beside, 'zz.dcm'), await readFile(fixture('volumes', 'hostile', 'dicm_garbage.dcm')));
  folders.push({ name: 'PNG slices beside a DICOM file, as PNG', path: beside, params: { format: 'png' } });
  // the coronal series of the zip, as a folder
  const zip = new ZipReader(await readFile(fixture('volumes', 'coronal_implicit.zip')), 'coronal_implicit.zip');
  const coronal = join(dir, 'coronal');
  await mkdir(coronal);
  for (const e of zip.entries.filter((e) => !e.name.endsWith('/'))) await writeFile(join(coronal, e.name.split('/').pop()!), zip.read(e));
  folders.push({ name: 'coronal (from the zip)', path: coronal });
  // one enhanced multi-frame file, and each hostile DICOM file alone in a folder
  for (const name of ['enhanced_ct.dcm', ...(await readdir(fixture('volumes', 'hostile'))).filter((f) => f.endsWith('.dcm'))]) {
    const folder = join(dir, name.replace('.dcm', ''));
    await mkdir(folder);
    const from = name === 'enhanced_ct.dcm' ? fixture('volumes', name) : fixture('volumes', 'hostile', name);
    await writeFile(join(folder, 'IM0000'), await readFile(from));
    folders.push({ name, path: folder });
  }
  const mixed = await readVolume(fixture('volumes', 'mixed_series')).catch((err: { series?: { uid: string }[] }) => err.series!);
  assert.ok(Array.isArray(mixed) && mixed.length === 2, 'the mixed folder holds two series');
  folders.push({ name: 'mixed_series, the second series', path: fixture('volumes', 'mixed_series'), params: { seriesInstanceUid: (mixed as { uid: string }[])[1]!.uid } });
  let spooledCount = 0;
  for (const f of folders) {
    const { spooled, format } = await assertOpensAsRead(f.path, f.params, spoolDir, f.name);
    if (format !== undefined) assert.ok(spooled, `${f.name}: spooled`);
    if (spooled) spooledCount++;
  }
  assert.ok(spooledCount >= 10, `${spooledCount} volumes spooled`);
});

test('a zip of DICOM files opened for sliding windows is read at offsets, one entry at a time, and gives what readVolume gives: stored and deflated, coronal, big-endian, a choice among series; budgets, bombs and broken archives refused alike; PNG slices', async (t) => {
  const dir = await tempDir(t);
  const spoolDir = join(dir, 'spool');
  await mkdir(spoolDir);
  const entriesOf = async (folder: string) => Promise.all((await readdir(folder)).sort().map(async (name) => ({ name: `series/${name}`, data: await readFile(join(folder, name)) })));
  const stored = (entries: { name: string; data: Uint8Array }[]) => concatChunks(encodeZip(entries.map((e) => ({ name: e.name, data: [e.data] }))));
  const ct = await entriesOf(fixture('volumes', 'ct_series'));
  const mixed = await entriesOf(fixture('volumes', 'mixed_series'));
  const uids = await readVolume(fixture('volumes', 'mixed_series')).catch((err: { series?: { uid: string }[] }) => err.series!);
  assert.ok(Array.isArray(uids) && uids.length === 2, 'the mixed folder holds two series');
  const goodZip = stored(ct);
  const crcBroken = Uint8Array.from(goodZip);
  // the last byte of the last entry's pixels, just before the central directory: its CRC-32 fails
  const cdOffset = Buffer.from(goodZip).readUInt32LE(goodZip.length - 22 + 16);
  crcBroken[cdOffset - 1] = crcBroken[cdOffset - 1]! ^ 0xff;
  const archives: { name: string; bytes: Uint8Array; params?: { seriesInstanceUid?: string; budgets?: { volumeFiles?: number } } }[] = [
    { name: 'coronal_implicit.zip', bytes: await readFile(fixture('volumes', 'coronal_implicit.zip')) },
    { name: 'ct_series, stored', bytes: goodZip },
    { name: 'ct_deflated, deflated', bytes: deflatedZip(await entriesOf(fixture('volumes', 'ct_deflated'))) },
    { name: 'mr_bigendian, deflated, with a folder entry and a resource fork', bytes: stored([{ name: 'series/', data: new Uint8Array(0) }, { name: '__MACOSX/._IM0', data: Uint8Array.of(1, 2) }, ...(await entriesOf(fixture('volumes', 'mr_bigendian')))]) },
    { name: 'mixed_series, the second series', bytes: stored(mixed), params: { seriesInstanceUid: (uids as { uid: string }[])[1]!.uid } },
    { name: 'mixed_series, no choice', bytes: stored(mixed) },
    { name: 'png8_slices.zip', bytes: await readFile(fixture('volumes', 'png8_slices.zip')) },
    { name: 'more files than volumeFiles', bytes: goodZip, params: { budgets: { volumeFiles: 5 } } },
    { name: 'a bomb', bytes: deflatedZip(Array.from({ length: 3 }, (_, k) => ({ name: `IM${k}.dcm`, data: new Uint8Array(2 * 1024 * 1024) }))) },
    { name: 'a CRC-32 that fails', bytes: crcBroken },
    { name: 'cut short', bytes: goodZip.subarray(0, goodZip.length - 30) },
    { name: 'no DICOM image', bytes: stored([{ name: 'notes.txt', data: new TextEncoder().encode('hello') }]) },
  ];
  let spooledCount = 0;
  for (const a of archives) {
    const path = join(dir, 'volume.zip');
    await writeFile(path, a.bytes);
    const { spooled, format, message } = await assertOpensAsRead(path, a.params, spoolDir, a.name);
    if (format !== undefined) assert.ok(spooled, `${a.name}: spooled`);
    if (spooled) spooledCount++;
    if (a.bytes === crcBroken) assert.match(message ?? '', /fails its CRC-32 check/);
  }
  assert.equal(spooledCount, 6);
});

test('NumPy, raw and TIFF files opened for sliding windows are read a plane (a page) at a time (NumPy in Fortran order gathered a block of planes at a time), and give what readVolume gives: every dtype, byte order and header version, channels, a spacing, a raw layout with an offset, 8-bit, 16-bit and colour pages; Fortran order with channels read whole; hostile and truncated files refused alike', async (t) => {
  const dir = await tempDir(t);
  const spoolDir = join(dir, 'spool');
  await mkdir(spoolDir);
  const cases: { name: string; path: string; params?: Parameters<typeof readVolume>[1]; spooled: boolean }[] = [];
  const r = prng(5);
  // in Fortran order, gathered as a sagittal NIfTI is; with channels (interleaved), read whole
  for (const name of (await readdir(fixture('volumes'))).filter((f) => f.endsWith('.npy'))) {
    const path = fixture('volumes', name);
    const header = parseNpyHeader(await readFile(path), name);
    cases.push({ name, path, spooled: !(header.fortranOrder && header.shape.length === 4) });
  }
  assert.equal(cases.filter((c) => !c.spooled).length, 1, 'one fixture in Fortran order with channels');
  // Fortran order as NumPy saves nibabel's arrays: (33, 20, 27) int16 big-endian and float64, the first index fastest
  for (const [descr, size, write] of [
    ['>i2', 2, (b: Buffer, v: number, at: number) => b.writeInt16BE(v, at)],
    ['<f8', 8, (b: Buffer, v: number, at: number) => b.writeDoubleLE(v / 7, at)],
  ] as const) {
    const [nd, nh, nw] = [33, 20, 27];
    let header = `{'descr': '${descr}', 'fortran_order': True, 'shape': (${nd}, ${nh}, ${nw}), }`;
    header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
    const data = Buffer.alloc(nd * nh * nw * size);
    for (let i = 0; i < nd * nh * nw; i++) write(data, Math.round(r() * 4000 - 2000), i * size);
    const path = join(dir, `fortran${descr.replace(/[<>]/, '')}.npy`);
    const head = Buffer.alloc(10);
    head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
    await writeFile(path, Buffer.concat([head, Buffer.from(header, 'latin1'), data]));
    cases.push({ name: `Fortran order ${descr}`, path, params: { spacing: [2, 0.75, 0.5] }, spooled: true });
  }
  cases.push({ name: 'v2_cdhw.npy with a spacing', path: fixture('volumes', 'v2_cdhw.npy'), params: { spacing: [2, 0.75, 0.5] }, spooled: true });
  cases.push({ name: 'volume_3x4x5.raw', path: fixture('volumes', 'volume_3x4x5.raw'), params: { raw: { shape: [3, 4, 5] } }, spooled: true });
  cases.push({ name: 'cdhw_int16_be.bin', path: fixture('volumes', 'cdhw_int16_be.bin'), params: { raw: { shape: [2, 3, 4, 5], dtype: 'int16', endianness: 'big' } }, spooled: true });
  for (const name of (await readdir(fixture('volumes', 'hostile'))).filter((f) => f.endsWith('.npy'))) cases.push({ name: `hostile ${name}`, path: fixture('volumes', 'hostile', name), spooled: false });
  // a raw file behind a header of 7 bytes, float64 planes of 33x47 (odd offsets: unaligned reads)
  const values = Float64Array.from({ length: 2 * 6 * 33 * 47 }, () => r() * 4000 - 2000);
  const withOffset = join(dir, 'offset.raw');
  await writeFile(withOffset, Buffer.concat([Buffer.from('HEADER!'), Buffer.from(values.buffer)]));
  cases.push({ name: 'raw with an offset', path: withOffset, params: { raw: { shape: [2, 6, 33, 47], dtype: 'float64', offset: 7 } }, spooled: true });
  cases.push({ name: 'raw, a layout the file is too short for', path: withOffset, params: { raw: { shape: [2, 6, 33, 48], dtype: 'float64', offset: 7 } }, spooled: false });
  cases.push({ name: 'raw without a layout', path: withOffset, spooled: false });
  // a large .npy, truncated: its header promises more than the file holds
  const big = encodeNpy({ data: Float32Array.from({ length: 5 * 40 * 50 }, () => r()), shape: [5, 40, 50] });
  const truncated = join(dir, 'truncated.npy');
  await writeFile(truncated, big.subarray(0, big.byteLength - 100));
  cases.push({ name: 'a truncated .npy', path: truncated, spooled: false });
  // TIFF stacks: the fixtures, pages made here (16-bit deflated, colour, float), one cut short, the hostile one
  cases.push({ name: 'stack16.tif', path: fixture('volumes', 'stack16.tif'), spooled: true });
  cases.push({ name: 'stack8_lzw.tif', path: fixture('volumes', 'stack8_lzw.tif'), params: { spacing: [3, 0.5, 0.5] }, spooled: true });
  cases.push({ name: 'hostile truncated.tif', path: fixture('volumes', 'hostile', 'truncated.tif'), spooled: false });
  const tiff = async (name: string, pages: number, w: number, h: number, channels: 1 | 3, values: Uint8Array | Uint16Array | Float32Array, space: 'grey16' | 'srgb' | 'b-w') => {
    const path = join(dir, name);
    const bytes = await sharp(Buffer.from(values.buffer), { raw: { width: w, height: pages * h, channels, pageHeight: h } }).toColourspace(space).tiff({ compression: 'deflate' }).toBuffer();
    await writeFile(path, bytes);
    return { path, bytes };
  };
  const t16 = await tiff('t16.tif', 40, 33, 29, 1, Uint16Array.from({ length: 40 * 33 * 29 }, () => Math.floor(r() * 65536)), 'grey16');
  cases.push({ name: '40 pages of 16 bits', path: t16.path, spooled: true });
  cases.push({ name: 'colour pages', path: (await tiff('rgb.tif', 5, 12, 10, 3, Uint8Array.from({ length: 5 * 12 * 10 * 3 }, () => Math.floor(r() * 256)), 'srgb')).path, spooled: true });
  const cut = join(dir, 'cut.tif');
  await writeFile(cut, t16.bytes.subarray(0, Math.floor(t16.bytes.byteLength * 0.6)));
  cases.push({ name: 'a TIFF cut short', path: cut, spooled: false });
  for (const c of cases) {
    const { spooled } = await assertOpensAsRead(c.path, c.params, spoolDir, c.name);
    assert.equal(spooled, c.spooled, `${c.name}: spooled`);
  }
  // the 40 pages read 3 (and 1) at a time
  const whole = await readVolume(t16.path);
  for (const pagesPerRun of [1, 3]) {
    const v = await spoolTiffFile(t16.path, { file: t16.path, dir: spoolDir, runBytes: pagesPerRun * 33 * 29 * 8 });
    assert.ok(v, 'spooled');
    try {
      assertSameBits(await readAllPlanes(v), whole.data, `${pagesPerRun} pages a run`);
    } finally {
      await v.close();
    }
  }
});
