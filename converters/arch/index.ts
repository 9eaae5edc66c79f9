/**
 * The architecture registry: detect the family of a state dict from its keys and shapes
 * (or take the caller's `--arch`), refuse clearly when unsure, and build its 2D graph.
 */
import { ConversionError, InvalidArgumentError } from '../errors.js';
import type { StateDict } from '../tensor.js';
import { convnext } from './convnext.js';
import { densenet } from './densenet.js';
import { efficientnet } from './efficientnet.js';
import { mobilenetV2, mobilenetV3 } from './mobilenet.js';
import { resnet } from './resnet.js';
import { templateIndex, templates } from './templates.js';
import type { ArchBuilder, Detected } from './types.js';
import { vgg } from './vgg.js';

/** Every builder, in detection order; an exact template match is taken before the others are tried. */
export const BUILDERS: readonly ArchBuilder[] = [templates, resnet, densenet, vgg, convnext, efficientnet, mobilenetV2, mobilenetV3];

/** Every architecture name a builder knows (torchvision names). */
export const SUPPORTED_ARCHITECTURES: readonly string[] = BUILDERS.flatMap((b) => b.architectures);

/** The builder of an architecture or family name (`regnet_y_400mf`, `regnet`), if any. */
export function builderFor(arch: string): ArchBuilder | undefined {
  const builder = BUILDERS.find((b) => b.family === arch || b.architectures.includes(arch));
  return builder ?? (templateIndex().templates.some((e) => e.family === arch) ? templates : undefined);
}

/** A state dict with legacy keys renamed, its builder and what the builder recognised. */
export interface Recognised {
  sd: StateDict;
  builder: ArchBuilder;
  detected: Detected;
}

/**
 * Recognise the architecture of a state dict. With `arch`, only that family is tried (and a
 * mismatch is an error naming it); without, exactly one family must recognise the keys.
 */
export function recognise(sd: StateDict, arch?: string): Recognised {
  if (arch !== undefined) {
    const builder = builderFor(arch);
    if (!builder) throw new InvalidArgumentError(`unknown architecture '${arch}'; known: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
    const normal = builder.normalize?.(sd) ?? sd;
    const detected = builder.detect(normal, arch);
    if (!detected) throw new ConversionError(`the state dict does not have the keys of a ${arch} (${describeKeys(sd)})`);
    if (builder.architectures.includes(arch) && detected.arch !== arch && !detected.arch.endsWith('-like')) {
      throw new ConversionError(`the state dict is a ${detected.arch}, not a ${arch}`);
    }
    return { sd: normal, builder, detected: builder.architectures.includes(arch) && detected.arch.endsWith('-like') ? { ...detected, arch } : detected };
  }
  const found: Recognised[] = [];
  for (const builder of BUILDERS) {
    const normal = builder.normalize?.(sd) ?? sd;
    const detected = builder.detect(normal);
    if (detected && builder === templates) return { sd: normal, builder, detected };
    if (detected) found.push({ sd: normal, builder, detected });
  }
  if (found.length === 0) {
    throw new ConversionError(`cannot tell the architecture of this state dict (${describeKeys(sd)}); pass --arch with one of: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  }
  if (found.length > 1) {
    throw new ConversionError(`the state dict matches several families (${found.map((f) => f.detected.family).join(', ')}); pass --arch`);
  }
  return found[0]!;
}

function describeKeys(sd: StateDict): string {
  const keys = [...sd.keys()];
  return `${keys.length} tensors, first keys ${keys.slice(0, 3).map((k) => `'${k}'`).join(', ')}`;
}
