/**
 * The proof of concept of zoo/demo: synthetic 3D shapes (spheres and cubes on noise, the 3D
 * counterparts of the discs and squares tools/unet_demo/train_unet2d.py trains the 2D U-Net
 * on), the 2D U-Net converted to 3D and run on them with onnxruntime, a slice-by-slice 2D
 * baseline, and the Dice per class. Used by test/demo/unet-demo.test.ts and bench/unet-demo.ts.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { convert, type Mode } from '../../converters/convert.js';
import { loadSource } from '../../converters/convert-file.js';
import { encodeOnnx } from '../../converters/formats/onnx.js';
import { graphToModel } from '../../converters/graph/ir.js';
import { seededRandom } from '../../converters/modes/head.js';

/** The demo network and its description, relative to the repository root. */
export const DEMO_ONNX = join('zoo', 'demo', 'unet2d-shapes.onnx');
export const DEMO_CARD = join('zoo', 'demo', 'unet2d-shapes.json');

/** What tools/unet_demo/train_unet2d.py writes beside the network. */
export interface DemoCard {
  labels: string[];
  input: { sizeMultiple: number };
  architecture: { parameters: number; widths: number[] };
}

// The ranges of train_unet2d.py (NOISE_SD, BACKGROUND, INTENSITY, RADIUS_FRACTION).
const NOISE_SD = 0.25;
const BACKGROUND = [-0.3, 0.3] as const;
const INTENSITY = [0.6, 1.6] as const;
const RADIUS_FRACTION = [0.08, 0.22] as const;

/** A volume `[D, H, W]` and its label map (0 background, 1 sphere, 2 cube). */
export interface ShapesVolume {
  shape: [number, number, number];
  image: Float32Array;
  labels: Uint8Array;
}

/**
 * One volume of 1 to 3 shapes, each a sphere (class 1) or a cube (class 2, axis-aligned) of
 * random size, centre and intensity, later shapes drawn over earlier ones, plus Gaussian noise;
 * the radius (or half side) is a fraction of the smallest side, as in the 2D images.
 */
export function shapesVolume(shape: [number, number, number], seed: number): ShapesVolume {
  const rand = seededRandom(seed);
  const uniform = (lo: number, hi: number) => lo + (hi - lo) * rand();
  const [d, h, w] = shape;
  const n = d * h * w;
  const image = new Float32Array(n).fill(uniform(...BACKGROUND));
  const labels = new Uint8Array(n);
  const count = 1 + Math.floor(rand() * 3);
  for (let s = 0; s < count; s++) {
    const kind = rand() < 0.5 ? 1 : 2;
    const r = uniform(...RADIUS_FRACTION) * Math.min(d, h, w);
    const c = shape.map((side) => uniform(r, side - r));
    const value = uniform(...INTENSITY);
    for (let z = 0; z < d; z++) {
      const dz = z + 0.5 - c[0]!;
      for (let y = 0; y < h; y++) {
        const dy = y + 0.5 - c[1]!;
        for (let x = 0; x < w; x++) {
          const dx = x + 0.5 - c[2]!;
          const inside = kind === 1 ? dz * dz + dy * dy + dx * dx <= r * r : Math.max(Math.abs(dz), Math.abs(dy), Math.abs(dx)) <= r;
          if (inside) {
            const i = (z * h + y) * w + x;
            image[i] = value;
            labels[i] = kind;
          }
        }
      }
    }
  }
  for (let i = 0; i < n; i += 2) {
    // Box-Muller, two normals per draw.
    const u = 1 - rand();
    const v = rand();
    const m = NOISE_SD * Math.sqrt(-2 * Math.log(u));
    image[i] = image[i]! + m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) image[i + 1] = image[i + 1]! + m * Math.sin(2 * Math.PI * v);
  }
  return { shape, image, labels };
}

/** Dice of class `k` between two label maps (1 when neither holds the class). */
export function dice(pred: ArrayLike<number>, truth: ArrayLike<number>, k: number): number {
  let both = 0;
  let p = 0;
  let t = 0;
  for (let i = 0; i < truth.length; i++) {
    const a = pred[i] === k;
    const b = truth[i] === k;
    if (a) p++;
    if (b) t++;
    if (a && b) both++;
  }
  return p + t === 0 ? 1 : (2 * both) / (p + t);
}

/** Copy `src` (sizes `from`) into a zero-based box of sizes `to`, repeating the last plane of each axis beyond `from` (edge padding). */
function padEdge(src: Float32Array, from: readonly number[], to: readonly number[]): Float32Array {
  const rank = from.length;
  const out = new Float32Array(to.reduce((a, b) => a * b, 1));
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let s = 0;
    for (let a = 0; a < rank; a++) s = s * from[a]! + Math.min(idx[a]!, from[a]! - 1);
    out[o] = src[s]!;
    for (let a = rank - 1; a >= 0; a--) {
      if (++idx[a]! < to[a]!) break;
      idx[a] = 0;
    }
  }
  return out;
}

/** Arg-max over the classes of scores `[K, ...padded]`, cropped to `size` (the leading corner). */
function argmaxCrop(scores: Float32Array, k: number, padded: readonly number[], size: readonly number[]): Uint8Array {
  const per = padded.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(size.reduce((a, b) => a * b, 1));
  const rank = size.length;
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let i = 0;
    for (let a = 0; a < rank; a++) i = i * padded[a]! + idx[a]!;
    let best = 0;
    for (let c = 1; c < k; c++) if (scores[c * per + i]! > scores[best * per + i]!) best = c;
    out[o] = best;
    for (let a = rank - 1; a >= 0; a--) {
      if (++idx[a]! < size[a]!) break;
      idx[a] = 0;
    }
  }
  return out;
}

/** A network, 2D or 3D, with one input and one output of class scores. */
export interface Segmenter {
  /** The scores' spatial size for an input of `size` (what the network itself gives). */
  run(image: Float32Array, size: readonly number[]): Promise<{ scores: Float32Array; dims: readonly number[] }>;
  /** Label map of `image` at its own `size`: padded at the far ends to a multiple of `multiple` (edge values), run, cropped back. */
  segment(image: Float32Array, size: readonly number[]): Promise<Uint8Array>;
  close(): Promise<void>;
}

async function segmenter(onnx: Uint8Array, classes: number, multiple: number): Promise<Segmenter> {
  const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1, logSeverityLevel: 4 });
  const [inName] = session.inputNames;
  const [outName] = session.outputNames;
  const run = async (image: Float32Array, size: readonly number[]) => {
    const out = (await session.run({ [inName!]: new ort.Tensor('float32', image, [1, 1, ...size]) }))[outName!]!;
    return { scores: out.data as Float32Array, dims: out.dims };
  };
  return {
    run,
    async segment(image, size) {
      const padded = size.map((s) => Math.ceil(s / multiple) * multiple);
      const { scores } = await run(padEdge(image, size, padded), padded);
      return argmaxCrop(scores, classes, padded, size);
    },
    close: () => session.release(),
  };
}

/** The demo network: its 2D ONNX bytes and card. */
export interface DemoNetwork {
  onnx2d: Uint8Array;
  card: DemoCard;
}

/** Read the demo network from the repository at `root`. */
export async function loadDemo(root: string): Promise<DemoNetwork> {
  const card = JSON.parse(await readFile(join(root, DEMO_CARD), 'utf8')) as DemoCard;
  return { onnx2d: new Uint8Array(await readFile(join(root, DEMO_ONNX))), card };
}

/** The 2D network on every axial slice `[H, W]` of a volume, stacked. */
export async function sliceBySlice(demo: DemoNetwork): Promise<Segmenter> {
  const net = await segmenter(demo.onnx2d, demo.card.labels.length, demo.card.input.sizeMultiple);
  const perSlice = async (image: Float32Array, size: readonly number[], each: (slice: Float32Array, hw: number[]) => Promise<ArrayLike<number>>, per: (hw: number[]) => number) => {
    const [d, h, w] = size as [number, number, number];
    const parts: ArrayLike<number>[] = [];
    for (let z = 0; z < d; z++) parts.push(await each(image.subarray(z * h * w, (z + 1) * h * w), [h, w]));
    return { parts, per: per([h, w]) };
  };
  return {
    async run(image, size) {
      const { parts, per } = await perSlice(image, size, async (s, hw) => (await net.run(s, hw)).scores, (hw) => hw[0]! * hw[1]!);
      // (D, K, H, W) -> (K, D, H, W)
      const k = parts[0]!.length / per;
      const d = parts.length;
      const scores = new Float32Array(k * d * per);
      parts.forEach((p, z) => {
        for (let c = 0; c < k; c++) scores.set((p as Float32Array).subarray(c * per, (c + 1) * per), (c * d + z) * per);
      });
      return { scores, dims: [1, k, d, ...size.slice(1)] };
    },
    async segment(image, size) {
      const { parts, per } = await perSlice(image, size, (s, hw) => net.segment(s, hw), (hw) => hw[0]! * hw[1]!);
      const out = new Uint8Array(parts.length * per);
      parts.forEach((p, z) => out.set(p as Uint8Array, z * per));
      return out;
    },
    close: () => net.close(),
  };
}

/** The 2D network converted to 3D by `convert` in `mode`, on the whole volume. */
export async function converted(demo: DemoNetwork, mode: Mode, file = DEMO_ONNX): Promise<Segmenter> {
  const { source } = await loadSource(file, demo.onnx2d);
  const result = convert(source, { mode });
  return segmenter(encodeOnnx(graphToModel(result.graph)), demo.card.labels.length, demo.card.input.sizeMultiple);
}

/** Mean Dice per class (index = class) of a segmenter over volumes, and of the foreground (any class but 0). */
export async function meanDice(net: Segmenter, volumes: readonly ShapesVolume[], classes: number): Promise<{ perClass: number[]; foreground: number }> {
  const sums = new Array<number>(classes).fill(0);
  let foreground = 0;
  for (const v of volumes) {
    const pred = await net.segment(v.image, v.shape);
    for (let k = 0; k < classes; k++) sums[k]! += dice(pred, v.labels, k);
    const shape = (l: number) => (l === 0 ? 0 : 1);
    foreground += dice(pred.map(shape), v.labels.map(shape), 1);
  }
  return { perClass: sums.map((s) => s / volumes.length), foreground: foreground / volumes.length };
}
