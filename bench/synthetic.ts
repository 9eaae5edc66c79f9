/**
 * Full-size state dicts with torchvision's exact keys and shapes (ResNet-50, ConvNeXt-Base, the
 * architecture templates), filled with seeded values, and synthetic CT volumes, so that the
 * benchmarks need no download and no Python.
 */
import sharp from 'sharp';
import { loadTemplate, templateIndex } from '../converters/arch/templates.js';
import { seededRandom } from '../converters/modes/head.js';
import type { StateDict, Tensor } from '../converters/tensor.js';
import { encodeNifti } from '../inference/volumes/index.js';

function filler(seed: number): (n: number, lo: number, hi: number) => Float32Array {
  let s = seed >>> 0;
  return (n, lo, hi) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[i] = lo + ((hi - lo) * s) / 4294967296;
    }
    return out;
  };
}

function tensor(shape: number[], data: Float32Array): Tensor {
  return { dtype: 'F32', shape, data };
}

/** torchvision ConvNeXt with the given depths and widths (ConvNeXt-Base by default). */
export function convnextStateDict(depths = [3, 3, 27, 3], dims = [128, 256, 512, 1024], seed = 2): StateDict {
  const rnd = filler(seed);
  const sd: StateDict = new Map();
  const ln = (k: string, c: number) => {
    sd.set(`${k}.weight`, tensor([c], rnd(c, 0.5, 1.5)));
    sd.set(`${k}.bias`, tensor([c], rnd(c, -0.1, 0.1)));
  };
  const lin = (k: string, o: number, i: number) => {
    sd.set(`${k}.weight`, tensor([o, i], rnd(o * i, -0.05, 0.05)));
    sd.set(`${k}.bias`, tensor([o], rnd(o, -0.05, 0.05)));
  };
  sd.set('features.0.0.weight', tensor([dims[0]!, 3, 4, 4], rnd(dims[0]! * 48, -0.1, 0.1)));
  sd.set('features.0.0.bias', tensor([dims[0]!], rnd(dims[0]!, -0.1, 0.1)));
  ln('features.0.1', dims[0]!);
  depths.forEach((n, s) => {
    const c = dims[s]!;
    if (s > 0) {
      ln(`features.${2 * s}.0`, dims[s - 1]!);
      sd.set(`features.${2 * s}.1.weight`, tensor([c, dims[s - 1]!, 2, 2], rnd(c * dims[s - 1]! * 4, -0.05, 0.05)));
      sd.set(`features.${2 * s}.1.bias`, tensor([c], rnd(c, -0.05, 0.05)));
    }
    for (let j = 0; j < n; j++) {
      const p = `features.${2 * s + 1}.${j}`;
      sd.set(`${p}.layer_scale`, tensor([c, 1, 1], rnd(c, 0.1, 0.5)));
      sd.set(`${p}.block.0.weight`, tensor([c, 1, 7, 7], rnd(c * 49, -0.1, 0.1)));
      sd.set(`${p}.block.0.bias`, tensor([c], rnd(c, -0.1, 0.1)));
      ln(`${p}.block.2`, c);
      lin(`${p}.block.3`, 4 * c, c);
      lin(`${p}.block.5`, c, 4 * c);
    }
  });
  ln('classifier.0', dims[dims.length - 1]!);
  lin('classifier.2', 1000, dims[dims.length - 1]!);
  return sd;
}

/** torchvision ResNet (bottleneck) of the given depth, e.g. [3, 4, 6, 3] for ResNet-50. */
export function resnetStateDict(blocks = [3, 4, 6, 3], seed = 1): StateDict {
  return resnet(blocks, seed, true);
}

/** torchvision ResNet with basic blocks (ResNet-18 by default). */
export function resnetBasicStateDict(blocks = [2, 2, 2, 2], seed = 3): StateDict {
  return resnet(blocks, seed, false);
}

function resnet(blocks: number[], seed: number, bottleneck: boolean): StateDict {
  const rnd = filler(seed);
  const sd: StateDict = new Map();
  const conv = (k: string, o: number, i: number, kk: number) => sd.set(`${k}.weight`, tensor([o, i, kk, kk], rnd(o * i * kk * kk, -0.05, 0.05)));
  const bn = (k: string, c: number) => batchNorm(sd, rnd, k, c);
  const expansion = bottleneck ? 4 : 1;
  conv('conv1', 64, 3, 7);
  bn('bn1', 64);
  let inC = 64;
  blocks.forEach((n, l) => {
    const w = 64 * 2 ** l;
    const out = w * expansion;
    for (let b = 0; b < n; b++) {
      const p = `layer${l + 1}.${b}`;
      conv(`${p}.conv1`, w, inC, bottleneck ? 1 : 3);
      bn(`${p}.bn1`, w);
      conv(`${p}.conv2`, w, w, 3);
      bn(`${p}.bn2`, w);
      if (bottleneck) {
        conv(`${p}.conv3`, out, w, 1);
        bn(`${p}.bn3`, out);
      }
      if (b === 0 && inC !== out) {
        conv(`${p}.downsample.0`, out, inC, 1);
        bn(`${p}.downsample.1`, out);
      }
      inC = out;
    }
  });
  sd.set('fc.weight', tensor([1000, inC], rnd(1000 * inC, -0.03, 0.03)));
  sd.set('fc.bias', tensor([1000], rnd(1000, -0.03, 0.03)));
  return sd;
}

/** torchvision DenseNet (DenseNet-121 by default). */
export function densenetStateDict(blocks = [6, 12, 24, 16], growth = 32, init = 64, seed = 4): StateDict {
  const rnd = filler(seed);
  const sd: StateDict = new Map();
  const conv = (k: string, o: number, i: number, kk: number) => sd.set(`${k}.weight`, tensor([o, i, kk, kk], rnd(o * i * kk * kk, -0.05, 0.05)));
  const bn = (k: string, c: number) => batchNorm(sd, rnd, k, c);
  conv('features.conv0', init, 3, 7);
  bn('features.norm0', init);
  let c = init;
  blocks.forEach((n, b) => {
    for (let l = 1; l <= n; l++) {
      const p = `features.denseblock${b + 1}.denselayer${l}`;
      bn(`${p}.norm1`, c + (l - 1) * growth);
      conv(`${p}.conv1`, 4 * growth, c + (l - 1) * growth, 1);
      bn(`${p}.norm2`, 4 * growth);
      conv(`${p}.conv2`, growth, 4 * growth, 3);
    }
    c += n * growth;
    if (b < blocks.length - 1) {
      const p = `features.transition${b + 1}`;
      bn(`${p}.norm`, c);
      conv(`${p}.conv`, c / 2, c, 1);
      c /= 2;
    }
  });
  bn('features.norm5', c);
  sd.set('classifier.weight', tensor([1000, c], rnd(1000 * c, -0.03, 0.03)));
  sd.set('classifier.bias', tensor([1000], rnd(1000, -0.03, 0.03)));
  return sd;
}

function batchNorm(sd: StateDict, rnd: (n: number, lo: number, hi: number) => Float32Array, k: string, c: number): void {
  sd.set(`${k}.weight`, tensor([c], rnd(c, 0.5, 1.5)));
  sd.set(`${k}.bias`, tensor([c], rnd(c, -0.1, 0.1)));
  sd.set(`${k}.running_mean`, tensor([c], rnd(c, -0.1, 0.1)));
  sd.set(`${k}.running_var`, tensor([c], rnd(c, 0.5, 1.5)));
  sd.set(`${k}.num_batches_tracked`, { dtype: 'I64', shape: [], data: new BigInt64Array(1) });
}

/**
 * The state dict of an architecture template (`converters/arch/templates/`, e.g. `fcn_resnet50`)
 * with seeded values: weights scaled by sqrt(3 / fan_in), BatchNorm near identity.
 */
export function templateStateDict(name: string, seed = 50): StateDict {
  const entry = templateIndex().templates.find((t) => t.name === name);
  if (!entry) throw new Error(`no ${name} template`);
  const rand = seededRandom(seed);
  const sd: StateDict = new Map();
  for (const spec of loadTemplate(entry).tensors) {
    const shape = spec.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const u = () => rand() * 2 - 1;
    const data = Float32Array.from({ length: n }, () =>
      shape.length >= 2 && spec.name.endsWith('weight') ? u() * Math.sqrt(3 / fanIn) : spec.name.endsWith('running_var') || spec.name.endsWith('weight') ? 1 + 0.25 * u() : 0.1 * u(),
    );
    sd.set(spec.name, { dtype: 'F32', shape, data });
  }
  return sd;
}

/** The synthetic CT's image: air, a body, two lungs and a spine in HU with noise, `[nk, nj, ni]` int16 (i fastest). */
function ctImage([ni, nj, nk]: readonly [number, number, number]): Int16Array {
  const data = new Int16Array(ni * nj * nk);
  const noise = seededRandom(7);
  for (let k = 0; k < nk; k++) {
    for (let j = 0; j < nj; j++) {
      for (let i = 0; i < ni; i++) {
        const x = (i - ni / 2) / (ni * 0.43), y = (j - nj / 2) / (nj * 0.3125);
        let v = -1000;
        if (x * x + y * y < 1) v = 40;
        if (((Math.abs(x) - 0.45) / 0.3) ** 2 + (y / 0.6) ** 2 < 1) v = -850;
        if (x * x / 0.01 + ((y + 0.6) / 0.12) ** 2 < 1) v = 700;
        data[(k * nj + j) * ni + i] = v + Math.round((noise() - 0.5) * 40);
      }
    }
  }
  return data;
}

/**
 * The same synthetic CT as slices of unsigned 16-bit values (HU + 1024, as CT exports store
 * them): a multi-page TIFF (deflated) of `nk` pages, or `nk` PNG files.
 */
export async function syntheticCtImages(dims: readonly [number, number, number], as: 'tiff' | 'png'): Promise<Uint8Array[]> {
  const [ni, nj, nk] = dims;
  const image = ctImage(dims);
  const values = Uint16Array.from(image, (v) => Math.max(0, v + 1024));
  if (as === 'tiff') {
    return [await sharp(values, { raw: { width: ni, height: nj * nk, channels: 1, pageHeight: nj }, limitInputPixels: false }).toColourspace('grey16').tiff({ compression: 'deflate' }).toBuffer()];
  }
  const files: Uint8Array[] = [];
  for (let k = 0; k < nk; k++) files.push(await sharp(values.subarray(k * ni * nj, (k + 1) * ni * nj), { raw: { width: ni, height: nj, channels: 1 } }).toColourspace('grey16').png().toBuffer());
  return files;
}

/** The same synthetic CT as an int16 NumPy `.npy` of shape `(nk, nj, ni)`, C order (no geometry). */
export function syntheticCtNpy(dims: readonly [number, number, number] = [256, 256, 160]): Uint8Array {
  const [ni, nj, nk] = dims;
  const data = ctImage(dims);
  let header = `{'descr': '<i2', 'fortran_order': False, 'shape': (${nk}, ${nj}, ${ni}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = new Uint8Array(10 + header.length);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  head.set(new TextEncoder().encode(header), 10);
  const out = new Uint8Array(head.byteLength + data.byteLength);
  out.set(head);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), head.byteLength);
  return out;
}

/**
 * A synthetic CT as a gzipped int16 NIfTI of `dims` = `[ni, nj, nk]` voxels of `spacing` mm
 * (i, j, k): air, a body ellipse, two lungs, a spine, and noise as a scanner's.
 */
export function syntheticCt(dims: readonly [number, number, number] = [256, 256, 160], spacing: readonly [number, number, number] = [0.7, 0.7, 2], stored: 'axial' | 'sagittal' = 'axial'): Uint8Array {
  const [ni, nj, nk] = dims;
  const data = ctImage(dims);
  const [si, sj, sk] = spacing;
  const affine = [-si, 0, 0, (ni * si) / 2, 0, -sj, 0, (nj * sj) / 2, 0, 0, sk, (-nk * sk) / 2, 0, 0, 0, 1];
  if (stored === 'axial') return encodeNifti({ data, shape: [nk, nj, ni], affine, gzip: true });
  // the same image in sagittal slices: the file's i runs along j, its j along k, its k along i
  const sagittal = new Int16Array(data.length);
  for (let k = 0; k < nk; k++) for (let j = 0; j < nj; j++) for (let i = 0; i < ni; i++) sagittal[(i * nk + k) * nj + j] = data[(k * nj + j) * ni + i]!;
  const moved = [0, 0, -si, (ni * si) / 2, -sj, 0, 0, (nj * sj) / 2, 0, sk, 0, (-nk * sk) / 2, 0, 0, 0, 1];
  return encodeNifti({ data: sagittal, shape: [ni, nk, nj], affine: moved, gzip: true });
}

/** One element of explicit VR little endian: tag, VR, value (padded to an even length). */
function dicomElement(group: number, element: number, vr: string, value: Uint8Array | string): Uint8Array {
  let bytes = typeof value === 'string' ? new TextEncoder().encode(value) : value;
  if (bytes.byteLength % 2 === 1) {
    const padded = new Uint8Array(bytes.byteLength + 1);
    padded.set(bytes);
    padded[bytes.byteLength] = vr === 'UI' ? 0 : 0x20;
    bytes = padded;
  }
  const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr);
  const head = new DataView(new ArrayBuffer(long ? 12 : 8));
  head.setUint16(0, group, true);
  head.setUint16(2, element, true);
  head.setUint8(4, vr.charCodeAt(0));
  head.setUint8(5, vr.charCodeAt(1));
  if (long) head.setUint32(8, bytes.byteLength, true);
  else head.setUint16(6, bytes.byteLength, true);
  const out = new Uint8Array(head.byteLength + bytes.byteLength);
  out.set(new Uint8Array(head.buffer));
  out.set(bytes, head.byteLength);
  return out;
}

const us = (n: number) => new Uint8Array(new Uint16Array([n]).buffer);

/**
 * `syntheticCt`'s image as a DICOM series (explicit VR little endian, one file an axial slice,
 * int16 HU, LPS geometry), the files' bytes in slice order.
 */
export function syntheticCtDicom(dims: readonly [number, number, number] = [256, 256, 160], spacing: readonly [number, number, number] = [0.7, 0.7, 2]): Uint8Array[] {
  const [ni, nj, nk] = dims;
  const [si, sj, sk] = spacing;
  const uid = '1.2.826.0.1.3680043.10.1.1';
  const image = ctImage(dims);
  const files: Uint8Array[] = [];
  for (let k = 0; k < nk; k++) {
    const pixels = image.slice(k * ni * nj, (k + 1) * ni * nj);
    const syntax = dicomElement(0x0002, 0x0010, 'UI', '1.2.840.10008.1.2.1');
    const metaLength = dicomElement(0x0002, 0x0000, 'UL', new Uint8Array(new Uint32Array([syntax.byteLength]).buffer));
    const elements = [
      new Uint8Array(128),
      new TextEncoder().encode('DICM'),
      metaLength,
      syntax,
      dicomElement(0x0008, 0x0060, 'CS', 'CT'),
      dicomElement(0x0020, 0x000e, 'UI', uid),
      dicomElement(0x0020, 0x0013, 'IS', String(k + 1)),
      dicomElement(0x0020, 0x0032, 'DS', `${(-ni * si) / 2}\\${(-nj * sj) / 2}\\${k * sk}`),
      dicomElement(0x0020, 0x0037, 'DS', '1\\0\\0\\0\\1\\0'),
      dicomElement(0x0028, 0x0002, 'US', us(1)),
      dicomElement(0x0028, 0x0004, 'CS', 'MONOCHROME2'),
      dicomElement(0x0028, 0x0010, 'US', us(nj)),
      dicomElement(0x0028, 0x0011, 'US', us(ni)),
      dicomElement(0x0028, 0x0030, 'DS', `${sj}\\${si}`),
      dicomElement(0x0028, 0x0100, 'US', us(16)),
      dicomElement(0x0028, 0x0101, 'US', us(16)),
      dicomElement(0x0028, 0x0103, 'US', us(1)),
      dicomElement(0x0028, 0x1052, 'DS', '0'),
      dicomElement(0x0028, 0x1053, 'DS', '1'),
      dicomElement(0x7fe0, 0x0010, 'OW', new Uint8Array(pixels.buffer)),
    ];
    const out = new Uint8Array(elements.reduce((n, e) => n + e.byteLength, 0));
    let o = 0;
    for (const e of elements) {
      out.set(e, o);
      o += e.byteLength;
    }
    files.push(out);
  }
  return files;
}
