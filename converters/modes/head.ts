/**
 * A fresh classifier for `--head <num_classes>`, initialised as the architecture's own code
 * initialises it, from a seeded generator (the same seed gives the same weights).
 */
import type { HeadInit } from '../arch/types.js';
import { InvalidArgumentError } from '../errors.js';
import type { Tensor } from '../tensor.js';

/** A seeded uniform [0, 1) generator (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(rand: () => number): number {
  let u = 0;
  while (u === 0) u = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** Weights (classes, features) and bias (classes) of a new classifier. */
export function initHead(init: HeadInit, classes: number, features: number, seed = 0): { weight: Tensor; bias: Tensor } {
  if (!Number.isInteger(classes) || classes < 1 || classes > 1_000_000) throw new InvalidArgumentError(`number of classes must be a positive integer, got ${classes}`);
  const rand = seededRandom(seed);
  const w = new Float32Array(classes * features);
  const b = new Float32Array(classes);
  const fanIn = 1 / Math.sqrt(features);
  const uniform = (bound: number) => (rand() * 2 - 1) * bound;
  switch (init) {
    case 'torch-linear':
    case 'torch-linear-zero-bias':
      for (let i = 0; i < w.length; i++) w[i] = uniform(fanIn);
      if (init === 'torch-linear') for (let i = 0; i < b.length; i++) b[i] = uniform(fanIn);
      break;
    case 'normal-0.01':
      for (let i = 0; i < w.length; i++) w[i] = 0.01 * normal(rand);
      break;
    case 'trunc-normal-0.02':
    case 'trunc-normal-0.01':
    case 'trunc-normal-0.1': {
      const std = init === 'trunc-normal-0.02' ? 0.02 : init === 'trunc-normal-0.01' ? 0.01 : 0.1;
      for (let i = 0; i < w.length; i++) {
        let v: number;
        do v = std * normal(rand);
        while (Math.abs(v) > 2);
        w[i] = v;
      }
      if (init !== 'trunc-normal-0.02') for (let i = 0; i < b.length; i++) b[i] = uniform(fanIn);
      break;
    }
    case 'kaiming-uniform-fan-out':
      for (let i = 0; i < w.length; i++) w[i] = uniform(Math.sqrt(3 / classes));
      break;
    case 'uniform-out':
      for (let i = 0; i < w.length; i++) w[i] = uniform(1 / Math.sqrt(classes));
      break;
  }
  return { weight: { dtype: 'F32', shape: [classes, features], data: w }, bias: { dtype: 'F32', shape: [classes], data: b } };
}
