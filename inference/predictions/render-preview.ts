/**
 * A PNG preview of a volume: the axial, coronal and sagittal mid-slices side by side,
 * windowed to 8 bits, at one common scale in millimetres (so anisotropic voxels look
 * right), with a label map or a heat map (class activation) blended over them.
 *
 * Orientation, for the canonical RAS+ `[D, H, W]` layout of `volume.ts`: axial and coronal
 * views show the patient's right on the viewer's left (radiological convention; or
 * `neurological`, right on the right); axial has anterior up; coronal and sagittal have
 * superior up; sagittal has anterior on the left.
 */
import sharp from 'sharp';
import { InvalidArgumentError } from '../../converters/errors.js';
import type { Vec3, VolumeArray } from '../volumes/volume.js';

/**
 * An overlay: a label map (one colour per label, 0 transparent; `names[label]` names it in a
 * legend under the views) or a heat map (0..1 after `range`).
 */
export type PreviewOverlay =
  | { readonly kind: 'labels'; readonly data: ArrayLike<number>; readonly names?: readonly string[] }
  | { readonly kind: 'heatmap'; readonly data: ArrayLike<number>; readonly range?: readonly [number, number] };

/** Options of `renderPreview`. */
export interface RenderPreviewParams {
  /** The volume (channel 0 is shown) and, if known, its spacing `[sd, sh, sw]` in mm. */
  volume: VolumeArray & { readonly spacing?: Vec3 };
  /** Intensity window `[lo, hi]` mapped to black..white. @default the 0.5th and 99.5th percentiles */
  window?: readonly [number, number];
  /** Overlay on the same `[D, H, W]` grid. @default none */
  overlay?: PreviewOverlay;
  /** Overlay opacity in [0, 1]. @default 0.4 */
  opacity?: number;
  /** Slice indices `[d, h, w]` of the three views. @default through the largest labelled structure, else the centre */
  slices?: readonly [number, number, number];
  /** Height in pixels of the tallest view. @default 256 */
  height?: number;
  /** Which side the patient's right is shown on in axial and coronal views. @default 'radiological' */
  convention?: 'radiological' | 'neurological';
}

const PALETTE: readonly (readonly [number, number, number])[] = [
  [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [245, 130, 48], [145, 30, 180],
  [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [170, 110, 40],
];

/** A perceptually ordered blue -> cyan -> yellow -> red map for t in [0, 1]. */
function heatColour(t: number): [number, number, number] {
  const stops: [number, number, number][] = [[0, 0, 180], [0, 200, 255], [255, 255, 0], [255, 0, 0]];
  const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  const a = stops[i]!;
  const b = stops[i + 1]!;
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

/** Longest side of one view, in pixels (the largest `height`). */
const MAX_VIEW_PIXELS = 4096;
/** Legend rows at most (labels present beyond these are counted in a last row). */
const MAX_LEGEND_ROWS = 24;
const LEGEND_ROW = 16;

/** The colour of a label (> 0). */
export function labelColour(label: number): readonly [number, number, number] {
  return PALETTE[(label - 1) % PALETTE.length]!;
}

/**
 * The voxel `[d, h, w]` at the centroid of the most frequent non-zero label, rounded; none
 * when every voxel is background.
 */
function largestStructure(labels: ArrayLike<number>, [, nh, nw]: readonly [number, number, number]): [number, number, number] | undefined {
  const counts = new Map<number, number>();
  for (let i = 0; i < labels.length; i++) if (labels[i]! > 0) counts.set(labels[i]!, (counts.get(labels[i]!) ?? 0) + 1);
  let best = 0;
  let most = 0;
  for (const [label, n] of counts) if (n > most || (n === most && label < best)) [best, most] = [label, n];
  if (most === 0) return undefined;
  let z = 0, y = 0, x = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== best) continue;
    z += Math.floor(i / (nh * nw));
    y += Math.floor(i / nw) % nh;
    x += i % nw;
  }
  return [Math.round(z / most), Math.round(y / most), Math.round(x / most)];
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

interface View {
  /** Pixel size. */
  width: number;
  height: number;
  /** Continuous voxel `[d, h, w]` of pixel centre `(x, y)`. */
  at: (x: number, y: number) => [number, number, number];
}

/** Render the three-view preview; resolves to PNG bytes. */
export async function renderPreview(params: RenderPreviewParams): Promise<Uint8Array> {
  const { volume } = params;
  const [, nd, nh, nw] = volume.shape;
  const per = nd * nh * nw;
  if (volume.data.length < per) throw new InvalidArgumentError(`'volume.data' holds ${volume.data.length} values, fewer than one [${nd}, ${nh}, ${nw}] channel`);
  const [sd, sh, sw] = volume.spacing ?? [1, 1, 1];
  if (![sd, sh, sw].every((x) => Number.isFinite(x) && x > 0) || ![nd * sd, nh * sh, nw * sw].every(Number.isFinite)) {
    throw new InvalidArgumentError(`'volume.spacing' [${[sd, sh, sw].join(', ')}] is not three positive finite voxel sizes (mm) over a [${nd}, ${nh}, ${nw}] grid; the preview cannot be scaled`);
  }
  const height = params.height ?? 256;
  if (!Number.isSafeInteger(height) || height < 8 || height > MAX_VIEW_PIXELS) throw new InvalidArgumentError(`'height' must be an integer in [8, ${MAX_VIEW_PIXELS}], got ${height}`);
  const opacity = params.opacity ?? 0.4;
  if (!(opacity >= 0 && opacity <= 1)) throw new InvalidArgumentError(`'opacity' must be in [0, 1], got ${opacity}`);
  const overlay = params.overlay;
  if (overlay !== undefined && overlay.data.length !== per) throw new InvalidArgumentError(`'overlay.data' holds ${overlay.data.length} values; the volume grid [${nd}, ${nh}, ${nw}] needs ${per}`);
  const [cd, ch, cw] = params.slices ?? (overlay?.kind === 'labels' ? largestStructure(overlay.data, [nd, nh, nw]) : undefined) ?? [Math.floor(nd / 2), Math.floor(nh / 2), Math.floor(nw / 2)];
  if (!(cd >= 0 && cd < nd && ch >= 0 && ch < nh && cw >= 0 && cw < nw)) throw new InvalidArgumentError(`'slices' [${cd}, ${ch}, ${cw}] lies outside [${nd}, ${nh}, ${nw}]`);

  let [lo, hi] = params.window ?? [NaN, NaN];
  if (params.window === undefined) {
    const step = Math.max(1, Math.floor(per / 1_000_000));
    const sample = new Float32Array(Math.ceil(per / step));
    for (let i = 0, j = 0; i < per; i += step) sample[j++] = volume.data[i]!;
    sample.sort();
    lo = sample[Math.floor(0.005 * (sample.length - 1))]!;
    hi = sample[Math.ceil(0.995 * (sample.length - 1))]!;
  }
  if (!(hi > lo)) hi = lo + 1;
  let [hlo, hhi] = overlay?.kind === 'heatmap' && overlay.range ? overlay.range : [Infinity, -Infinity];
  if (overlay?.kind === 'heatmap' && !overlay.range) {
    for (let i = 0; i < per; i++) {
      hlo = Math.min(hlo, overlay.data[i]!);
      hhi = Math.max(hhi, overlay.data[i]!);
    }
  }
  if (!(hhi > hlo)) hhi = hlo + 1;

  // millimetres -> pixels, one scale for all three views
  const mmHeight = Math.max(nh * sh, nd * sd);
  const px = height / mmHeight;
  const radiological = (params.convention ?? 'radiological') === 'radiological';
  // Very anisotropic voxels (say 1000:1) would ask for a view thousands of times wider than tall.
  const size = (mm: number): number => Math.min(MAX_VIEW_PIXELS, Math.max(1, Math.round(mm * px)));
  const lr = (x: number, W: number): number => (radiological ? nw - ((x + 0.5) / W) * nw : ((x + 0.5) / W) * nw) - 0.5;
  const views: View[] = [
    // axial: rows anterior (high h) -> posterior, columns right/left
    { width: size(nw * sw), height: size(nh * sh), at(x, y) { return [cd, nh - ((y + 0.5) / this.height) * nh - 0.5, lr(x, this.width)]; } },
    // coronal: rows superior (high d) -> inferior
    { width: size(nw * sw), height: size(nd * sd), at(x, y) { return [nd - ((y + 0.5) / this.height) * nd - 0.5, ch, lr(x, this.width)]; } },
    // sagittal: rows superior -> inferior, columns anterior (high h) -> posterior
    { width: size(nh * sh), height: size(nd * sd), at(x, y) { return [nd - ((y + 0.5) / this.height) * nd - 0.5, nh - ((x + 0.5) / this.width) * nh - 0.5, cw]; } },
  ];
  const gap = 4;
  const totalW = views.reduce((s, v) => s + v.width, 0) + gap * (views.length - 1);
  const totalH = Math.max(...views.map((v) => v.height));
  const rgb = new Uint8Array(totalW * totalH * 3);

  const clampIdx = (v: number, n: number): number => (v < 0 ? 0 : v > n - 1 ? n - 1 : v);
  const trilinear = (src: ArrayLike<number>, p: [number, number, number]): number => {
    const z = clampIdx(p[0], nd);
    const y = clampIdx(p[1], nh);
    const x = clampIdx(p[2], nw);
    const z0 = Math.floor(z), y0 = Math.floor(y), x0 = Math.floor(x);
    const z1 = Math.min(z0 + 1, nd - 1), y1 = Math.min(y0 + 1, nh - 1), x1 = Math.min(x0 + 1, nw - 1);
    const fz = z - z0, fy = y - y0, fx = x - x0;
    const g = (a: number, b: number, c: number): number => src[(a * nh + b) * nw + c]!;
    const c0 = (g(z0, y0, x0) * (1 - fx) + g(z0, y0, x1) * fx) * (1 - fy) + (g(z0, y1, x0) * (1 - fx) + g(z0, y1, x1) * fx) * fy;
    const c1 = (g(z1, y0, x0) * (1 - fx) + g(z1, y0, x1) * fx) * (1 - fy) + (g(z1, y1, x0) * (1 - fx) + g(z1, y1, x1) * fx) * fy;
    return c0 * (1 - fz) + c1 * fz;
  };
  const nearest = (src: ArrayLike<number>, p: [number, number, number]): number =>
    src[(Math.round(clampIdx(p[0], nd)) * nh + Math.round(clampIdx(p[1], nh))) * nw + Math.round(clampIdx(p[2], nw))]!;

  let x0 = 0;
  for (const view of views) {
    const top = Math.floor((totalH - view.height) / 2);
    for (let y = 0; y < view.height; y++) {
      for (let x = 0; x < view.width; x++) {
        const p = view.at(x, y);
        const g = Math.round((255 * (Math.min(Math.max(trilinear(volume.data, p), lo), hi) - lo)) / (hi - lo));
        let r = g, gg = g, b = g;
        if (overlay?.kind === 'labels') {
          const label = nearest(overlay.data, p);
          if (label > 0) {
            const c = labelColour(label);
            r = r * (1 - opacity) + c[0] * opacity;
            gg = gg * (1 - opacity) + c[1] * opacity;
            b = b * (1 - opacity) + c[2] * opacity;
          }
        } else if (overlay?.kind === 'heatmap') {
          const t = Math.min(Math.max((trilinear(overlay.data, p) - hlo) / (hhi - hlo), 0), 1);
          const c = heatColour(t);
          const a = opacity * t;
          r = r * (1 - a) + c[0] * a;
          gg = gg * (1 - a) + c[1] * a;
          b = b * (1 - a) + c[2] * a;
        }
        const o = ((top + y) * totalW + x0 + x) * 3;
        rgb[o] = Math.round(r);
        rgb[o + 1] = Math.round(gg);
        rgb[o + 2] = Math.round(b);
      }
    }
    x0 += view.width + gap;
  }
  const legend = overlay?.kind === 'labels' ? legendRows(overlay) : [];
  const legendH = legend.length === 0 ? 0 : legend.length * LEGEND_ROW + 8;
  const image = legendH === 0 ? rgb : new Uint8Array(totalW * (totalH + legendH) * 3);
  if (legendH > 0) {
    image.set(rgb);
    legend.forEach(({ colour }, row) => {
      if (!colour) return;
      const top = totalH + 4 + row * LEGEND_ROW + 2;
      for (let y = top; y < top + LEGEND_ROW - 4; y++) for (let x = 4; x < Math.min(totalW, 4 + LEGEND_ROW - 4); x++) image.set(colour, (y * totalW + x) * 3);
    });
  }
  let picture = sharp(image, { raw: { width: totalW, height: totalH + legendH, channels: 3 } });
  if (legendH > 0) {
    const text = legend.map((r, row) => `<text x="${4 + LEGEND_ROW}" y="${totalH + 4 + row * LEGEND_ROW + 12}">${escapeXml(r.text)}</text>`).join('');
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${totalH + legendH}"><g font-family="sans-serif" font-size="11" fill="#ffffff">${text}</g></svg>`;
    picture = sharp(await picture.png().toBuffer()).composite([{ input: Buffer.from(svg), top: 0, left: 0 }]);
  }
  const png = await picture.png().toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/** Legend rows: the labels present in the map, each with its colour and name (or number). */
function legendRows(overlay: { readonly data: ArrayLike<number>; readonly names?: readonly string[] }): { colour?: readonly [number, number, number]; text: string }[] {
  const present = new Set<number>();
  for (let i = 0; i < overlay.data.length; i++) if (overlay.data[i]! > 0) present.add(overlay.data[i]!);
  const labels = [...present].sort((a, b) => a - b);
  const rows: { colour?: readonly [number, number, number]; text: string }[] = labels.slice(0, MAX_LEGEND_ROWS).map((label) => ({ colour: labelColour(label), text: `${label}: ${overlay.names?.[label] ?? `class ${label}`}` }));
  if (labels.length > MAX_LEGEND_ROWS) rows.push({ text: `and ${labels.length - MAX_LEGEND_ROWS} more labels` });
  return rows;
}
