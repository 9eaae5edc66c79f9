/**
 * Turn a catalogue entry into a request: the URL under the configured base of its source, the
 * headers (a Hub token), and what to check (torchvision's hash prefix; the Hub's pinned commit
 * and LFS sha256).
 */
import type { ModelSource, PullableEntry } from '../catalogue.js';
import { IntegrityError } from '../errors.js';
import type { DownloadExpectation, ResponseInfo } from './download-file.js';

/** Base URLs (and the Hub token) of the sources, as in the config's `sources`. */
export interface SourceSettings {
  torchvision: { baseUrl: string; timeoutMs?: number };
  huggingface: { baseUrl: string; timeoutMs?: number; token?: string };
  github: { baseUrl: string; timeoutMs?: number };
}

/** The default public base URLs. */
export const PUBLIC_SOURCES: SourceSettings = {
  torchvision: { baseUrl: 'https://download.pytorch.org/models' },
  huggingface: { baseUrl: 'https://huggingface.co' },
  github: { baseUrl: 'https://github.com' },
};

/** What the Hub told about a file (from the `resolve` response, before its redirect). */
export interface HubFileInfo {
  /** `X-Repo-Commit`: the commit the revision resolved to. */
  commit?: string;
  /** `X-Linked-Etag`: the LFS object's sha256. */
  linkedSha256?: string;
  /** `X-Linked-Size`. */
  linkedSize?: number;
}

/** A resolved request. */
export interface ResolvedSource {
  url: string;
  headers: Record<string, string>;
  expected: DownloadExpectation;
  /** Checks the first response; records the Hub's headers into `hub`. */
  inspect: (first: ResponseInfo) => DownloadExpectation | void;
  /** Filled by `inspect` for Hugging Face sources. */
  hub: HubFileInfo;
  timeoutMs: number | undefined;
}

function join(base: string, ...parts: string[]): string {
  return [base.replace(/\/+$/, ''), ...parts].join('/');
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** The URL of a source under the given base URLs. */
export function sourceUrl(source: ModelSource, sources: SourceSettings = PUBLIC_SOURCES): string {
  switch (source.type) {
    case 'torchvision':
      return join(sources.torchvision.baseUrl, encodeURIComponent(source.file));
    case 'huggingface':
      return join(sources.huggingface.baseUrl, encodePath(source.repo), 'resolve', encodeURIComponent(source.revision), encodePath(source.file));
    case 'github':
      return join(sources.github.baseUrl, encodePath(source.repo), 'releases', 'download', encodeURIComponent(source.tag), encodeURIComponent(source.file));
    case 'url':
      return source.url;
  }
}

const COMMIT = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

function unquote(etag: string | null): string | undefined {
  if (etag === null) return undefined;
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/** Build the request for a catalogue entry under the configured sources. */
export function resolveSource(entry: PullableEntry, sources: SourceSettings = PUBLIC_SOURCES): ResolvedSource {
  const source = entry.source;
  const url = sourceUrl(source, sources);
  const expected: DownloadExpectation = { sha256: entry.sha256, size: entry.size };
  const hub: HubFileInfo = {};
  const headers: Record<string, string> = {};
  let inspect: ResolvedSource['inspect'] = () => undefined;
  let timeoutMs = source.type === 'url' ? undefined : sources[source.type].timeoutMs;
  if (source.type === 'torchvision') {
    expected.hashPrefixOf = source.file;
  } else if (source.type === 'huggingface') {
    const token = sources.huggingface.token;
    if (token) headers['authorization'] = `Bearer ${token}`;
    timeoutMs = sources.huggingface.timeoutMs;
    inspect = (first) => {
      const commit = first.headers.get('x-repo-commit') ?? undefined;
      const linked = unquote(first.headers.get('x-linked-etag'));
      const linkedSize = first.headers.get('x-linked-size');
      hub.commit = commit;
      hub.linkedSha256 = linked !== undefined && SHA256.test(linked) ? linked : undefined;
      hub.linkedSize = linkedSize !== null && /^\d+$/.test(linkedSize) ? Number(linkedSize) : undefined;
      if (COMMIT.test(source.revision) && commit !== undefined && commit !== source.revision) {
        throw new IntegrityError(`${entry.id}: the Hub resolved pinned revision ${source.revision} to commit ${commit}`);
      }
      return { sha256: hub.linkedSha256, size: hub.linkedSize };
    };
  }
  return { url, headers, expected, inspect, hub, timeoutMs };
}
