import assert from 'node:assert/strict';
import { open, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ZipReader, encodeZip } from '../../../converters/formats/zip.js';
import { concatChunks } from '../../../converters/io.js';
import { deflatedZip, fixture, prng, rssGrowth, tempDir } from '../../helpers.js';

const MiB = 1024 * 1024;

/** Everything a reader gives of an archive: its entries and each entry's bytes, or the error. */
function outcome(read: () => ZipReader): unknown {
  let zip: ZipReader | undefined;
  try {
    zip = read();
    const entries = zip.entries.map((e) => ({ ...e, data: Buffer.from(zip!.read(e, { verify: true })).toString('base64') }));
    return { entries };
  } catch (err) {
    return { error: (err as { code?: string }).code, message: (err as Error).message };
  } finally {
    zip?.close();
  }
}

test('a zip read from its file at offsets gives what the same bytes in memory give: every archive fixture, ZIP64, deflated entries, and hostile archives (truncated, bytes flipped, bombs) refused alike', async (t) => {
  const dir = await tempDir(t);
  const archives: { name: string; bytes: Uint8Array }[] = [];
  for (const [folder, names] of [
    [['formats'], await readdir(fixture('formats'))],
    [['formats', 'hostile'], await readdir(fixture('formats', 'hostile'))],
    [['volumes'], await readdir(fixture('volumes'))],
  ] as const) {
    for (const name of names.filter((n) => /\.(pth|bin|zip)$/.test(n))) archives.push({ name, bytes: await readFile(fixture(...folder, name)) });
  }
  assert.ok(archives.length >= 15, `${archives.length} archive fixtures`);
  // ZIP64: more entries than the end record can count
  archives.push({ name: 'zip64', bytes: concatChunks(encodeZip(Array.from({ length: 0xffff + 2 }, (_, i) => ({ name: `e${i}`, data: [Uint8Array.of(i & 0xff)] })))) });
  const r = prng(3);
  const noise = Uint8Array.from({ length: 40_000 }, () => Math.floor(r() * 256));
  const deflated = deflatedZip([
    { name: 'a/zeros', data: new Uint8Array(300_000) },
    { name: 'a/noise', data: noise },
  ]);
  archives.push({ name: 'deflated', bytes: deflated });
  archives.push({ name: 'bomb', bytes: deflatedZip([{ name: 'zeros', data: new Uint8Array(4 * MiB) }]) });
  // hostile variants of a good archive: cut at every region, and single bytes flipped
  const good = await readFile(fixture('volumes', 'coronal_implicit.zip'));
  for (const cut of [0, 3, 30, Math.floor(good.length / 2), good.length - 100, good.length - 22, good.length - 1]) archives.push({ name: `cut at ${cut}`, bytes: good.subarray(0, cut) });
  for (let k = 0; k < 40; k++) {
    const bytes = Uint8Array.from(good);
    const at = Math.floor(r() * bytes.length);
    bytes[at] = bytes[at]! ^ (1 << Math.floor(r() * 8));
    archives.push({ name: `flipped ${k}`, bytes });
  }
  let read = 0;
  let refused = 0;
  for (const a of archives) {
    const path = join(dir, 'archive');
    await writeFile(path, a.bytes);
    const limits = { budgets: { compressionRatio: 100 } };
    const expected = outcome(() => new ZipReader(a.bytes, a.name, limits));
    const got = outcome(() => ZipReader.openFile(path, a.name, limits));
    assert.deepEqual(got, expected, a.name);
    if ('entries' in (expected as object)) read++;
    else refused++;
  }
  assert.ok(read >= 12 && refused >= 12, `${read} read, ${refused} refused`);
});

test('a zip on disk is not held whole: a 96 MiB archive is opened and one entry read with little memory; a central directory past its limit and a file cut short after opening are refused by name', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'big.zip');
  const entries = Array.from({ length: 96 }, (_, i) => ({ name: `slice${i}`, data: [new Uint8Array(MiB).fill(i)] }));
  const fh = await open(path, 'w');
  for (const chunk of encodeZip(entries)) await fh.write(chunk);
  await fh.close();
  entries.length = 0;
  const { result, growth } = await rssGrowth(async () => {
    const zip = ZipReader.openFile(path, 'big.zip');
    try {
      return { count: zip.entries.length, byte: zip.read('slice50', { verify: true })[123] };
    } finally {
      zip.close();
    }
  });
  assert.deepEqual(result, { count: 96, byte: 50 });
  assert.ok(growth < 32 * MiB, `rss grew by ${(growth / MiB).toFixed(1)} MiB`);

  // the file shrinks while it is open: the read says where it ended
  const zip = ZipReader.openFile(path, 'big.zip');
  try {
    await truncate(path, 20 * MiB);
    assert.throws(() => zip.read('slice60'), (err: Error) => /big\.zip: ends at byte \d+, before the \d+ bytes it had when opened/.test(err.message));
  } finally {
    zip.close();
  }

  // an end record that declares a central directory of 80 MiB, in a (sparse) file that long
  const sparse = join(dir, 'sparse.zip');
  const cdSize = 80 * MiB;
  await writeFile(sparse, Uint8Array.of(0x50, 0x4b, 0x03, 0x04));
  await truncate(sparse, cdSize);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(1, 8);
  eocd.writeUInt16LE(1, 10);
  eocd.writeUInt32LE(cdSize, 12);
  eocd.writeUInt32LE(0, 16);
  const sf = await open(sparse, 'a');
  await sf.write(eocd);
  await sf.close();
  assert.throws(() => ZipReader.openFile(sparse, 'sparse.zip'), (err: { code?: string; message: string }) => err.code === 'LIMIT_EXCEEDED' && /sparse\.zip: central directory of 83886080 bytes is over the limit of 67108864/.test(err.message));
});
