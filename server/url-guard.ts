/**
 * URL sources are fetched only from allow-listed hosts, and never from loopback, private,
 * link-local or cloud-metadata addresses: the host is checked against the allow-list on every
 * request (redirects included, since the downloader follows them one by one), and the address
 * it resolves to is checked when the connection is made, so a DNS answer cannot point a
 * public name at an inside address.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { createHttpFetch } from '../zoo/fetch/http-fetch.js';
import { httpError } from './errors.js';

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}

/** Is this address loopback, private, link-local, metadata or otherwise not public? */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return blocked.check(mapped[1]!, 'ipv4');
    return blocked.check(address, 'ipv6');
  }
  return true;
}

/** Settings of the guard. */
export interface UrlPolicy {
  /** Allowed hosts; `*.example.com` allows subdomains. */
  allowList: readonly string[];
  /** Let loopback and private addresses through (tests only). */
  allowPrivate: boolean;
}

/** Parse the comma-separated allow-list of the configuration. */
export function parseAllowList(list: string): string[] {
  return list
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}

function hostAllowed(host: string, allowList: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return allowList.some((entry) => (entry.startsWith('*.') ? h.endsWith(entry.slice(1)) && h.length > entry.length - 1 : h === entry));
}

/** Check a URL before fetching it: http(s), an allow-listed host, no literal inside address. */
export function checkUrl(raw: string, policy: UrlPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw httpError('URL_NOT_ALLOWED', `'${raw.slice(0, 200)}' is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw httpError('URL_NOT_ALLOWED', `URL scheme '${url.protocol}' is not allowed: use http(s)`);
  if (url.username || url.password) throw httpError('URL_NOT_ALLOWED', 'URLs with credentials are not allowed');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const hostWithPort = url.port ? `${host}:${url.port}` : host;
  if (!hostAllowed(host, policy.allowList) && !hostAllowed(hostWithPort, policy.allowList)) {
    throw httpError('URL_NOT_ALLOWED', `host '${host}' is not on the server's allow-list of URL sources`);
  }
  if (!policy.allowPrivate && isIP(host) && isPrivateAddress(host)) {
    throw httpError('URL_NOT_ALLOWED', `address ${host} is loopback, private or link-local`);
  }
  return url;
}

/** A `fetch` that applies the policy to every request and every resolved address. */
export function guardedFetch(policy: UrlPolicy): typeof fetch {
  const guarded = createHttpFetch({
    lookup: (hostname, options, callback) => {
      dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
        if (err) return callback(err, [] as unknown as string, 0);
        const list = addresses as LookupAddress[];
        const bad = policy.allowPrivate ? undefined : list.find((a) => isPrivateAddress(a.address));
        if (bad) {
          return callback(httpError('URL_NOT_ALLOWED', `host '${hostname}' resolves to ${bad.address}, a loopback, private or link-local address`), [] as unknown as string, 0);
        }
        if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
        return callback(null, list[0]!.address, list[0]!.family);
      });
    },
  });
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    checkUrl(url, policy);
    return guarded(url, init);
  };
}
