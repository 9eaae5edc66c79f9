/** The WebGPU adapter the tests run onnxruntime's WebGPU provider on. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

/** The Vulkan driver made by `tools/webgpu/setup-lavapipe.sh` (which `.ci/run` runs): lavapipe, on the CPU. */
export const LAVAPIPE_ICD = join(ROOT, '.lavapipe', 'lvp_icd.json');

/** The line a test failure shows when no adapter is set up. */
export const WEBGPU_SETUP_HINT = 'the WebGPU tests run on a GPU named by VK_ICD_FILENAMES, or on lavapipe (a Vulkan driver on the CPU) set up by `bash tools/webgpu/setup-lavapipe.sh`';

/**
 * Points this process's Vulkan loader, and the processes it starts, at the adapter to test on:
 * `VK_ICD_FILENAMES` as the environment gives it (a machine's own GPU), else lavapipe. Call it
 * before the first WebGPU session of the process: the loader reads it once. Returns its value.
 */
export function useWebGpuAdapter(): string {
  const given = process.env['VK_ICD_FILENAMES'];
  if (given) return given;
  if (!existsSync(LAVAPIPE_ICD)) throw new Error(`no WebGPU adapter to test on: ${WEBGPU_SETUP_HINT}`);
  process.env['VK_ICD_FILENAMES'] = LAVAPIPE_ICD;
  return LAVAPIPE_ICD;
}

/** An environment in which the WebGPU provider finds no adapter: a Vulkan loader with no driver. */
export const NO_ADAPTER_ENV: Record<string, string> = { VK_ICD_FILENAMES: join(ROOT, '.lavapipe', 'no-such-driver.json') };
