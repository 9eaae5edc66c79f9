/**
 * Peak resident memory of this process. On Linux this is VmHWM from /proc/self/status: the
 * high-water mark of this process's own address space, which starts afresh at exec (unlike
 * getrusage's maxRSS, which a child inherits from a large parent at fork).
 */
import { readFileSync } from 'node:fs';

/** Peak resident bytes so far. */
export function peakRssBytes(): number {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return process.resourceUsage().maxRSS * 1024;
}
