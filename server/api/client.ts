/**
 * A typed client of the API, generated from openapi.yaml: openapi-fetch over the types that
 * `npm run gen:api` writes to server/api/schema.d.ts. Every path, parameter, body and response
 * is checked by the TypeScript compiler against the contract.
 *
 *     const hub = createAcsHubClient('http://127.0.0.1:8080', { apiKey });
 *     const { data, error } = await hub.POST('/v1/conversions', { body: { source: { zoo: 'torchvision/resnet18' }, mode: 'acs' } });
 */
import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema.js';

/** The client type. */
export type AcsHubClient = Client<paths>;

/** Schemas of the contract, by name. */
export type Schemas = components['schemas'];

/** Options of the client. */
export interface ClientOptions {
  /** API key sent as a bearer token. */
  apiKey?: string;
  /** The network (tests may pass one). @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** A client of the ACS Hub at `baseUrl`. */
export function createAcsHubClient(baseUrl: string, options: ClientOptions = {}): AcsHubClient {
  return createClient<paths>({
    baseUrl,
    headers: options.apiKey ? { Authorization: `Bearer ${options.apiKey}` } : undefined,
    fetch: options.fetch,
  });
}
