/**
 * The undici dispatcher reply-from sends through, wrapped to see each upstream request start and
 * end. A client that gives up does not stop the pod: Rasa finishes the inference anyway. So a
 * request whose client left while the pod was still working keeps its slot until the pod answers
 * (or the upstream timeout fires); releasing it at once would let the gateway pile more work onto a
 * pod that is still busy, which is the very overload the slots exist to prevent. reply-from drops
 * such a late answer without telling anyone, hence this wrapper. The request context rides along on
 * the headers under a symbol (copied by reply-from's Object.assign, invisible to undici's header
 * serialisation).
 */
import { Agent, type Dispatcher } from 'undici';
import type { RequestContext } from './request-context.js';
import { classifyUpstreamError } from '../pool/upstream-failure.js';

export const kUpstreamContext = Symbol('gateway.upstream-context');

type Callback = (err: Error | null, data?: Dispatcher.ResponseData) => void;

export class TrackingDispatcher {
  private readonly agent: Agent;

  constructor(options: Agent.Options) {
    this.agent = new Agent(options);
  }

  request(options: Dispatcher.RequestOptions & { headers?: Record<string | symbol, unknown> }, callback: Callback): void {
    const ctx = options.headers?.[kUpstreamContext] as RequestContext | undefined;
    ctx?.upstreamStarted();
    this.agent.request(options, (err, data) => {
      if (ctx) {
        try {
          ctx.upstreamAnswered(err ? classifyUpstreamError(err, false).outcome : undefined, data?.statusCode);
        } catch (thrown) {
          ctx.internalError(thrown);
        }
      }
      callback(err, data);
    });
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  destroy(): Promise<void> {
    return this.agent.destroy();
  }
}
