/**
 * What the gateway knows about Rasa's HTTP API (shared rasa.md): which routes carry a conversation
 * key and where, and which are safe to send to another pod after a failure. Recognising
 * `/conversations/{id}/<action>` by its known suffix, because Rasa's `{id}` may itself contain `/`.
 */
export type RasaRouteKind = 'webhook' | 'conversation' | 'socketio' | 'model' | 'other';

export interface RasaRoute {
  readonly kind: RasaRouteKind;
  /** Conversation id from the path (`/conversations/{id}/...`). */
  readonly conversationId?: string;
  /** The conversation action, e.g. `tracker/events`, `messages`. */
  readonly action?: string;
  /** Safe to retry on another pod: it neither changes state nor runs actions. */
  readonly idempotent: boolean;
}

// dotAll (`s`): an id holding a line terminator (\n, U+2028) is still an id, not an unknown route.
const conversationPath = /^\/conversations\/(.+)\/(tracker\/events|tracker|messages|trigger_intent|predict|execute|story)$/s;
const webhookPath = /^\/webhooks\/[^/]+\/webhook$/;

const readOnly: RasaRoute = { kind: 'other', idempotent: true };
const stateful: RasaRoute = { kind: 'other', idempotent: false };
const webhook: RasaRoute = { kind: 'webhook', idempotent: false };
const socketio: RasaRoute = { kind: 'socketio', idempotent: false };
const modelRead: RasaRoute = { kind: 'model', idempotent: true };
const modelWrite: RasaRoute = { kind: 'model', idempotent: false };

export function classifyRasaRoute(method: string, path: string): RasaRoute {
  if (path.startsWith('/socket.io/') || path === '/socket.io') return socketio;
  if (method === 'POST' && webhookPath.test(path)) return webhook;
  if (path.startsWith('/conversations/')) {
    const m = conversationPath.exec(path);
    if (m) {
      const action = m[2] as string;
      let id = m[1] as string;
      try {
        id = decodeURIComponent(id);
      } catch {
        // keep the raw id: Rasa would see the same bytes
      }
      const idempotent = method === 'GET' || method === 'HEAD' || (method === 'POST' && action === 'predict');
      return { kind: 'conversation', conversationId: id, action, idempotent };
    }
  }
  if (path === '/model/parse' || path === '/model/predict') return method === 'POST' || method === 'GET' ? modelRead : modelWrite;
  if (path === '/model' || path.startsWith('/model/')) return method === 'GET' || method === 'HEAD' ? modelRead : modelWrite;
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? readOnly : stateful;
}
