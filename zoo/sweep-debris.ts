/**
 * Remove what writers that died left behind, when the store is opened: partial downloads and
 * uploads in the staging directory, the backend's temporaries (temporary files, incomplete
 * multipart uploads), and conversion outputs that never got their card.
 *
 * Two guards, so that nothing a live writer (in this process, another one, or another replica
 * sharing the store) is still using goes: only leftovers older than `olderThanMs` are removed
 * (a writer keeps its files' times recent as it writes), and never one under a live claim (a
 * claim whose owner refreshed it within the lease; see storage/claim.ts), however old. A
 * partial download younger than the bound stays, to be resumed.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { stagedEntryId } from './pull-model.js';
import { isStale, type ClaimRecord } from './storage/claim.js';
import { AREAS, claimKey, conversionPrefixOf, manifestKeyUnder } from './store.js';
import { readJson, type ObjectStorage } from './storage/storage.js';

/** Parameters of `sweepDebris`. */
export interface SweepDebrisParams {
  storage: ObjectStorage;
  /** The local directory of partial downloads and uploads; none to sweep when undefined. */
  stagingDir?: string;
  /** Leftovers younger than this are kept. */
  olderThanMs: number;
  /** A claim refreshed within this is live. @default 60_000 */
  leaseMs?: number;
  /** The time ages are measured at. @default Date.now() */
  now?: number;
}

/** What `sweepDebris` removed, and what it kept because a live claim covers it. */
export interface SweepReport {
  /** Files of the staging directory, relative to it. */
  staging: string[];
  /** The backend's temporaries. */
  temporaries: string[];
  /** Keys of conversion outputs without a card. */
  orphans: string[];
  /** Leftovers old enough to go that a live claim kept. */
  kept: string[];
}

/** The number of things a sweep removed. */
export function sweptCount(r: SweepReport): number {
  return r.staging.length + r.temporaries.length + r.orphans.length;
}

/** A sweep report as the fields of one log line. */
export function sweepLogFields(r: SweepReport): Record<string, unknown> {
  return { removed: { staging: r.staging.length, temporaries: r.temporaries.length, orphans: r.orphans.length }, keys: [...r.staging.map((f) => `staging/${f}`), ...r.temporaries, ...r.orphans], kept: r.kept };
}

async function* files(dir: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (e.isFile()) yield p;
  }
}

/** Remove the leftovers of dead writers; see the module comment. */
export async function sweepDebris(p: SweepDebrisParams): Promise<SweepReport> {
  const now = p.now ?? Date.now();
  const cutoff = now - p.olderThanMs;
  const leaseMs = p.leaseMs ?? 60_000;
  const report: SweepReport = { staging: [], temporaries: [], orphans: [], kept: [] };
  const live = new Map<string, Promise<boolean>>();
  const claimed = (key: string, what: string): Promise<boolean> => {
    let answer = live.get(key);
    if (!answer) {
      answer = readJson<ClaimRecord>(p.storage, key).then((c) => c !== undefined && !isStale(c, leaseMs, now));
      live.set(key, answer);
    }
    return answer.then((yes) => {
      if (yes) report.kept.push(what);
      return yes;
    });
  };
  const conversionClaimed = (key: string): Promise<boolean> => {
    const prefix = conversionPrefixOf(key);
    return prefix ? claimed(claimKey('conversion', prefix), key) : Promise.resolve(false);
  };

  if (p.stagingDir !== undefined) {
    // A partial download and its sidecar go together, judged by the newer of the two.
    const groups = new Map<string, { paths: string[]; newest: number }>();
    for await (const path of files(p.stagingDir)) {
      const st = await stat(path).catch(() => undefined);
      if (!st) continue;
      const group = path.replace(/\.meta\.json$/, '');
      const g = groups.get(group) ?? { paths: [], newest: 0 };
      g.paths.push(path);
      g.newest = Math.max(g.newest, st.mtimeMs);
      groups.set(group, g);
    }
    for (const [group, g] of groups) {
      if (g.newest >= cutoff) continue;
      const name = relative(p.stagingDir, group).split(sep).join('/');
      const id = stagedEntryId(name);
      if (id !== undefined && (await claimed(claimKey('pull', id), `staging/${name}`))) continue;
      for (const path of g.paths) {
        await rm(path, { force: true });
        report.staging.push(relative(p.stagingDir, path).split(sep).join('/'));
      }
    }
  }

  report.temporaries = await p.storage.sweepTemporaries({ before: new Date(cutoff), keep: conversionClaimed });

  const conversions = new Map<string, { keys: string[]; newest: number; complete: boolean }>();
  for await (const o of p.storage.list(AREAS.conversions)) {
    const prefix = conversionPrefixOf(o.key);
    if (!prefix) continue;
    const c = conversions.get(prefix) ?? { keys: [], newest: 0, complete: false };
    c.keys.push(o.key);
    c.newest = Math.max(c.newest, o.modified.getTime());
    if (o.key === manifestKeyUnder(prefix)) c.complete = true;
    conversions.set(prefix, c);
  }
  for (const [prefix, c] of conversions) {
    if (c.complete || c.newest >= cutoff) continue;
    if (await claimed(claimKey('conversion', prefix), prefix)) continue;
    for (const key of c.keys) {
      // A producer that took the claim since the listing rewrites these keys: leave its files.
      const st = await p.storage.stat(key);
      if (!st || st.modified.getTime() >= cutoff) continue;
      await p.storage.delete(key);
      report.orphans.push(key);
    }
  }
  return report;
}
