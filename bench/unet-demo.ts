/**
 * bench/unet-demo: the proof of concept of zoo/demo, offline. The 2D U-Net trained on discs
 * and squares (tools/unet_demo/train_unet2d.py) is converted to 3D in each mode and run on
 * seeded synthetic volumes of spheres and cubes; the Dice per class is printed beside the
 * same 2D network run on every axial slice. No fine-tuning in 3D.
 *
 *   npm run build && node dist/bench/unet-demo.js [--write DIR]
 *
 * BENCH_VOLUMES (default 16) volumes of BENCH_SIZE (default 48,64,80); `--write DIR` also
 * writes the first of them that holds both a sphere and a cube as DIR/shapes.nii.gz, with its
 * truth DIR/shapes-truth.nii.gz, for `acs-hub infer`.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Mode } from '../converters/convert.js';
import { writeNifti } from '../inference/volumes/index.js';
import { converted, loadDemo, meanDice, shapesVolume, sliceBySlice, type Segmenter } from '../test/demo/shapes.js';

const COUNT = Number(process.env['BENCH_VOLUMES'] ?? 16);
const SIZE = (process.env['BENCH_SIZE'] ?? '48,64,80').split(',').map(Number) as [number, number, number];
const MODES: Mode[] = ['acs', '2.5d', 'i3d', 'mean-acs', 'soft-acs'];
const FIRST_SEED = 1000;

async function main(): Promise<void> {
  const demo = await loadDemo('.');
  const classes = demo.card.labels.length;
  const volumes = Array.from({ length: COUNT }, (_, i) => shapesVolume(SIZE, FIRST_SEED + i));
  const writeAt = process.argv.indexOf('--write');
  if (writeAt >= 0) {
    const dir = process.argv[writeAt + 1] ?? '.';
    await mkdir(dir, { recursive: true });
    const v = volumes.find((x) => x.labels.includes(1) && x.labels.includes(2)) ?? volumes[0]!;
    const affine = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    await writeNifti({ path: join(dir, 'shapes.nii.gz'), data: v.image, shape: v.shape, affine, description: 'acs-hub demo: spheres (1) and cubes (2)' });
    await writeNifti({ path: join(dir, 'shapes-truth.nii.gz'), data: v.labels, shape: v.shape, affine, labels: true, description: 'acs-hub demo truth' });
    console.log(`wrote ${join(dir, 'shapes.nii.gz')} and ${join(dir, 'shapes-truth.nii.gz')} (${v.shape.join('x')})`);
  }
  console.log(`${COUNT} volumes ${SIZE.join('x')}, seeds ${FIRST_SEED}..${FIRST_SEED + COUNT - 1}; mean Dice per class\n`);
  console.log(`| network | ${demo.card.labels.join(' | ')} | mean of shapes | foreground (any shape) | s |`);
  console.log(`| --- | ${demo.card.labels.map(() => '---').join(' | ')} | --- | --- | --- |`);
  const row = async (name: string, net: Segmenter) => {
    try {
      const t = performance.now();
      const { perClass: d, foreground } = await meanDice(net, volumes, classes);
      const s = (performance.now() - t) / 1000;
      const shapes = d.slice(1).reduce((a, b) => a + b, 0) / (classes - 1);
      console.log(`| ${name} | ${d.map((x) => x.toFixed(3)).join(' | ')} | ${shapes.toFixed(3)} | ${foreground.toFixed(3)} | ${s.toFixed(1)} |`);
    } finally {
      await net.close();
    }
  };
  await row('2D slice by slice', await sliceBySlice(demo));
  for (const mode of MODES) await row(`3D ${mode}`, await converted(demo, mode));
}

await main();
