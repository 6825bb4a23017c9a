/**
 * EndpointSlices (discovery.k8s.io/v1) to endpoint snapshots: pure functions, no I/O, so the rules can
 * be tested on realistic objects without a cluster.
 *
 * Rules (from the EndpointSlice API reference):
 * - The port is resolved per slice: slices of one Service may carry different target port numbers
 *   (e.g. while a named container port changes during a rollout). A port name (`http` in the Rasa
 *   chart) matches the slice port of that name; a number is the endpoint (container) port and matches
 *   a slice port with that number, or a slice port without a number ("all ports"). A slice without a
 *   matching TCP port contributes nothing.
 * - One endpoint per address: `http://<ip>:<port>`, IPv6 in brackets. Only `IPv4` and `IPv6` slices;
 *   `FQDN` slices (and malformed addresses) are skipped.
 * - Conditions: `ready` nil means true, `terminating` nil means false. `serving` nil defers to `ready`
 *   (the wording from when the field was introduced; current docs say nil means true, and the two only
 *   differ for an endpoint marked terminating without `serving`, which the slice controller never writes).
 * - Merging: an address may sit in two slices for a moment while the controller moves it; it counts
 *   once, keeping the entry that is ready, else serving, else the first seen.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { EndpointInfo } from './types.js';

/** The parts of a `V1EndpointSlice` this module reads; raw watch JSON and client objects both fit. */
export interface EndpointSliceLike {
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly resourceVersion?: string } | null;
  readonly addressType: string;
  /** The API server writes `null` for a slice without endpoints. */
  readonly endpoints?: readonly EndpointLike[] | null;
  readonly ports?: readonly EndpointPortLike[] | null;
}

export interface EndpointLike {
  readonly addresses: readonly string[];
  readonly conditions?: {
    readonly ready?: boolean | null;
    readonly serving?: boolean | null;
    readonly terminating?: boolean | null;
  } | null;
  readonly targetRef?: { readonly kind?: string; readonly name?: string } | null;
  readonly zone?: string | null;
}

export interface EndpointPortLike {
  readonly name?: string | null;
  readonly port?: number | null;
  readonly protocol?: string | null;
}

/** The endpoint port of `wanted` (a port name or number) in this slice, or undefined when it has none. */
export function resolvePort(slice: EndpointSliceLike, wanted: string | number): number | undefined {
  for (const p of slice.ports ?? []) {
    if (p.protocol && p.protocol !== 'TCP') continue;
    if (typeof wanted === 'number') {
      if (p.port === wanted || p.port === undefined || p.port === null) return wanted;
    } else if ((p.name ?? '') === wanted && typeof p.port === 'number') {
      return p.port;
    }
  }
  return undefined;
}

/** The origin for an address of the slice's family, normalised like `new URL(...).origin`; undefined if malformed. */
export function originOf(address: string, addressType: string, port: number): string | undefined {
  if (addressType === 'IPv4') {
    if (!isIPv4(address)) return undefined;
    return port === 80 ? `http://${address}` : `http://${address}:${port}`;
  }
  if (addressType === 'IPv6') {
    if (!isIPv6(address)) return undefined;
    // URL compresses and lower-cases IPv6 text, so one address always gets one key.
    return new URL(`http://[${address}]:${port}`).origin;
  }
  return undefined;
}

/** The endpoints of one slice, one per address, in slice order. */
export function endpointsOfSlice(slice: EndpointSliceLike, wanted: string | number): EndpointInfo[] {
  const out: EndpointInfo[] = [];
  if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') return out;
  const port = resolvePort(slice, wanted);
  if (port === undefined) return out;
  for (const ep of slice.endpoints ?? []) {
    const c = ep.conditions;
    const ready = c?.ready ?? true;
    const serving = c?.serving ?? ready;
    const terminating = c?.terminating ?? false;
    const pod = ep.targetRef?.name ?? undefined;
    const zone = ep.zone ?? undefined;
    for (const address of ep.addresses ?? []) {
      const origin = originOf(address, slice.addressType, port);
      if (origin === undefined) continue;
      out.push({
        key: origin,
        origin,
        ...(pod !== undefined ? { pod } : {}),
        ...(zone !== undefined ? { zone } : {}),
        ready,
        serving,
        terminating,
      });
    }
  }
  return out;
}

function rank(e: EndpointInfo): number {
  return e.ready ? 2 : e.serving ? 1 : 0;
}

/** Merges per-slice endpoint lists into one snapshot: each key once, the best-conditioned entry wins. O(n). */
export function mergeEndpoints(lists: Iterable<readonly EndpointInfo[]>): EndpointInfo[] {
  const byKey = new Map<string, EndpointInfo>();
  for (const list of lists) {
    for (const e of list) {
      const seen = byKey.get(e.key);
      if (seen === undefined || rank(e) > rank(seen)) byKey.set(e.key, e);
    }
  }
  return [...byKey.values()];
}

/** All slices of a Service to one snapshot. */
export function endpointsFromSlices(slices: Iterable<EndpointSliceLike>, wanted: string | number): EndpointInfo[] {
  const lists: EndpointInfo[][] = [];
  for (const s of slices) lists.push(endpointsOfSlice(s, wanted));
  return mergeEndpoints(lists);
}
