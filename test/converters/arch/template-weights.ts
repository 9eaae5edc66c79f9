/** State dicts for the templates' tests, made from the templates' own keys and shapes. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadTemplate, templateIndex, type TemplateEntry } from '../../../converters/arch/templates.js';
import { readCheckpointFile } from '../../../converters/formats/index.js';
import type { StateDict, Tensor } from '../../../converters/tensor.js';
import { detTensor, fixture } from '../../helpers.js';

/** One case of test/fixtures/templates/cases.json (tools/templates/export_templates.py). */
export interface TemplateCase {
  input2d: number[];
  output2d: number[];
  seed: number;
  input3d?: number[];
  output3d?: number[];
}

/** The golden cases, by template name. */
export const TEMPLATE_CASES = JSON.parse(readFileSync(fixture('templates', 'cases.json'), 'utf8')) as Record<string, TemplateCase>;

/** The golden outputs: `<name>/2d` (torchvision) and `<name>/3d` (acs_reference.py, ACS). */
export async function templateOutputs(): Promise<StateDict> {
  return (await readCheckpointFile(fixture('templates', 'outputs.safetensors'))).tensors;
}

/** The index entry of a template. */
export function templateEntry(name: string): TemplateEntry {
  const e = templateIndex().templates.find((t) => t.name === name);
  assert.ok(e, `template ${name}`);
  return e;
}

/**
 * The state dict of tools/templates/export_templates.py's `template_weights`: key number j of
 * the sorted keys the template reads gets det_tensor seed 1000 + j, scaled by sqrt(3 / fan_in) for weights of two or
 * more axes, 0.1 for biases and running means, 1 + 0.25 u for 1-D weights and running variances.
 */
export function templateWeights(e: TemplateEntry): StateDict {
  const specs = loadTemplate(e).tensors;
  const keys = specs.map((s) => s.name).sort();
  const sd: StateDict = new Map();
  for (const spec of specs) {
    const shape = spec.shape as number[];
    const seed = 1000 + keys.indexOf(spec.name);
    let data: Float32Array;
    if (shape.length >= 2 && spec.name.endsWith('weight')) data = detTensor(shape, seed, Math.sqrt(3 / shape.slice(1).reduce((a, b) => a * b, 1)));
    else if (spec.name.endsWith('running_var') || spec.name.endsWith('weight')) data = detTensor(shape, seed, 0.25).map((v) => Math.fround(v + 1));
    else data = detTensor(shape, seed, 0.1);
    sd.set(spec.name, { dtype: 'F32', shape, data });
  }
  return sd;
}

/** The keys and shapes of a template with no data: enough to recognise, never to run. */
export function shapesOnly(e: TemplateEntry): StateDict {
  return new Map(loadTemplate(e).tensors.map((s): [string, Tensor] => [s.name, { dtype: 'F32', shape: s.shape as number[], data: new Float32Array(0) }]));
}
