/** Classification outputs: softmax, then the k most probable classes with their labels. */
import { InvalidArgumentError } from '../../converters/errors.js';

/** One ranked class. */
export interface ClassScore {
  readonly index: number;
  /** The caller's label for this index, when labels were given. */
  readonly label?: string;
  /** Softmax probability (or the raw score's sigmoid-free value when `softmax` is false). */
  readonly probability: number;
  /** The score as the network gave it. */
  readonly logit: number;
}

/** Options of `topK`. */
export interface TopKParams {
  /** One vector of class scores (logits), e.g. the `[K]` or `[1, K]` output of a network. */
  scores: ArrayLike<number>;
  /** Class names, one per score (not shipped here: they come with the model card). @default none */
  labels?: readonly string[];
  /** How many classes to return. @default 5 */
  k?: number;
  /** Apply a softmax first; false when the scores are already probabilities. @default true */
  softmax?: boolean;
}

/** Numerically stable softmax, in double precision. */
export function softmax(scores: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) max = Math.max(max, scores[i]!);
  const out = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += out[i] = Math.exp(scores[i]! - max);
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / sum;
  return out;
}

/** The `k` highest-scoring classes, best first (ties: lower index first). */
export function topK(params: TopKParams): ClassScore[] {
  const { scores, labels } = params;
  const k = params.k ?? 5;
  if (scores.length === 0) throw new InvalidArgumentError("'scores' is empty");
  if (!Number.isSafeInteger(k) || k < 1) throw new InvalidArgumentError(`'k' must be a positive integer, got ${k}`);
  if (labels !== undefined && labels.length !== scores.length) throw new InvalidArgumentError(`'labels' has ${labels.length} names for ${scores.length} scores`);
  for (let i = 0; i < scores.length; i++) if (!Number.isFinite(scores[i]!)) throw new InvalidArgumentError(`'scores[${i}]' is ${scores[i]}, not a finite number`);
  const probs = params.softmax ?? true ? softmax(scores) : Float64Array.from(scores as ArrayLike<number>);
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
  return order.slice(0, k).map((i) => ({ index: i, ...(labels ? { label: labels[i]! } : {}), probability: probs[i]!, logit: scores[i]! }));
}
