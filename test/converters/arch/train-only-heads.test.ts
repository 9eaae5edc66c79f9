/**
 * Train-only heads of classifiers (GoogLeNet's aux1/aux2, Inception-v3's AuxLogits), which
 * torchvision's published files carry and inference never reads: dropped from the 3D checkpoint
 * by default, carried over unchanged with `aux: 'keep'` (SPEC section 18.6).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convert } from '../../../converters/convert.js';
import type { StateDict } from '../../../converters/tensor.js';
import { detTensor } from '../../helpers.js';
import { templateEntry, templateWeights } from './template-weights.js';

function withHeads(name: string, prefixes: string[]): StateDict {
  const sd = templateWeights(templateEntry(name));
  for (const [i, p] of prefixes.entries()) {
    sd.set(`${p}conv.conv.weight`, { dtype: 'F32', shape: [8, 4, 1, 1], data: detTensor([8, 4, 1, 1], 50 + i) });
    sd.set(`${p}fc2.bias`, { dtype: 'F32', shape: [10], data: detTensor([10], 60 + i) });
  }
  return sd;
}

for (const [name, prefixes] of [['googlenet', ['aux1.', 'aux2.']], ['inception_v3', ['AuxLogits.']]] as const) {
  test(`${name}: its train-only heads (${prefixes.join(', ')}) are dropped by default and kept unchanged on request`, () => {
    const sd = withHeads(name, [...prefixes]);
    const isAux = (k: string) => prefixes.some((p) => k.startsWith(p));
    const dropped = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', inputSize: [80, 80, 80] });
    assert.deepEqual([...dropped.stateDict.keys()].filter(isAux), []);
    assert.equal(dropped.card.parameters.converted, dropped.card.parameters.source2d - [...sd].filter(([k]) => isAux(k)).reduce((a, [, t]) => a + t.data.length, 0));
    const kept = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', aux: 'keep', inputSize: [80, 80, 80] });
    const keptAux = [...kept.stateDict].filter(([k]) => isAux(k));
    assert.equal(keptAux.length, 2 * prefixes.length);
    for (const [k, t] of keptAux) assert.deepEqual(t.data, sd.get(k)!.data, `${k} is carried over unchanged`);
    assert.deepEqual(kept.graph.outputs.map((o) => o.name), dropped.graph.outputs.map((o) => o.name), 'the network is the same');
  });
}
