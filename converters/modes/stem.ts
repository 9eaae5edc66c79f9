/**
 * Input-channel adaptation of an RGB-pretrained stem (converters/SPEC-acs.md section 6, timm's
 * `adapt_input_conv`): one channel sums the kernel over its input channels; two or more
 * than three repeat it, keep the first `inChannels` and scale by 3 / inChannels. The
 * arithmetic is float32, as PyTorch does it, and the result is cast back to the dtype.
 */
import { fromFloat32, toFloat32 } from '../dtypes.js';
import { InvalidArgumentError } from '../errors.js';
import type { Tensor } from '../tensor.js';

/** The adapted stem kernel (a new tensor; the input is not modified). */
export function adaptInputConv(w: Tensor, inChannels: number, key = 'stem'): Tensor {
  if (!Number.isInteger(inChannels) || inChannels < 1 || inChannels > 1024) {
    throw new InvalidArgumentError(`inChannels must be an integer in [1, 1024], got ${inChannels}`);
  }
  if (w.shape.length !== 4) throw new InvalidArgumentError(`'${key}' is not a 2D convolution kernel (shape [${w.shape.join(', ')}])`);
  const [O, I, kh, kw] = w.shape as [number, number, number, number];
  if (inChannels === I) return w;
  if (I !== 3) throw new InvalidArgumentError(`'${key}' takes ${I} input channels; only RGB (3-channel) stems are adapted`);
  const src = toFloat32(w.dtype, w.data);
  const kk = kh * kw;
  const out = new Float32Array(O * inChannels * kk);
  if (inChannels === 1) {
    for (let o = 0; o < O; o++) {
      for (let j = 0; j < kk; j++) {
        const base = o * 3 * kk + j;
        out[o * kk + j] = Math.fround(Math.fround(src[base]! + src[base + kk]!) + src[base + 2 * kk]!);
      }
    }
  } else {
    const scale = Math.fround(3 / inChannels);
    for (let o = 0; o < O; o++) {
      for (let c = 0; c < inChannels; c++) {
        for (let j = 0; j < kk; j++) out[(o * inChannels + c) * kk + j] = Math.fround(src[(o * 3 + (c % 3)) * kk + j]! * scale);
      }
    }
  }
  return { dtype: w.dtype, shape: [O, inChannels, kh, kw], data: fromFloat32(w.dtype, out) } as Tensor;
}
