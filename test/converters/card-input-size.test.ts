/**
 * The card counts multiply-adds at 64^3 unless told another size; a network that cannot run at
 * 64^3 (Inception-v3 needs 75 planes) is counted at the first cube it runs at, and a size the
 * caller gives that is too small is refused by name.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convert } from '../../converters/convert.js';
import { templateEntry, templateWeights } from './arch/template-weights.js';

test('Inception-v3 converts with the default card size: its multiply-adds are counted at 80^3, and the card says so', () => {
  const sd = templateWeights(templateEntry('inception_v3'));
  const result = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs' });
  assert.deepEqual(result.card.inputSize, [80, 80, 80]);
  assert.ok(result.card.multiplyAdds.converted > 0);
  const at96 = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', inputSize: [96, 96, 96] });
  assert.deepEqual(at96.card.inputSize, [96, 96, 96]);
  assert.ok(at96.card.multiplyAdds.converted > result.card.multiplyAdds.converted);
  assert.throws(
    () => convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', inputSize: [64, 64, 64] }),
    (err: Error & { code?: string }) => err.code === 'INVALID_ARGUMENT' && /input size 64x64x64 is too small for this network .*too small for the (kernel|pool)/.test(err.message),
  );
});

test('a network that runs at 64^3 keeps the default card size', () => {
  const result = convert({ kind: 'state-dict', tensors: templateWeights(templateEntry('mnasnet0_5')) }, { mode: 'acs' });
  assert.deepEqual(result.card.inputSize, [64, 64, 64]);
});
