/**
 * Learns which pod holds a chat widget's conversation. Rasa's socketio channel names the conversation
 * in `42["session_request",{"session_id":...}]` and `42["user_uttered",{...,"session_id":...}]` frames,
 * and only the pod holding the socket can emit bot replies to it, so a REST call on that conversation
 * (`/conversations/{id}/trigger_intent?output_channel=latest`) must reach the same pod.
 */
const events = new Set(['session_request', 'user_uttered']);

/** Session ids named by socket.io EVENT packets in an engine.io payload (packets split by \x1e). */
export function sessionIdsIn(payload: string): string[] {
  if (!payload.includes('session_')) return [];
  const ids: string[] = [];
  for (const packet of payload.split('\x1e')) {
    if (!packet.startsWith('42')) continue;
    // Skip an optional namespace ("42/chat,[...]") and ack id digits, as python-socketio decodes them:
    // indexOf('[') took a [ inside the namespace and accepted junk before the JSON.
    let start = 2;
    if (packet.charCodeAt(2) === 47 /* / */) {
      start = packet.indexOf(',', 2) + 1;
      if (start === 0) continue;
    }
    while (start < packet.length && packet.charCodeAt(start) >= 48 && packet.charCodeAt(start) <= 57) start++;
    let frame: unknown;
    try {
      frame = JSON.parse(packet.slice(start));
    } catch {
      continue;
    }
    if (!Array.isArray(frame) || !events.has(frame[0] as string)) continue;
    const sessionId = (frame[1] as { session_id?: unknown } | undefined)?.session_id;
    if (typeof sessionId === 'string' && sessionId.length > 0) ids.push(sessionId);
  }
  return ids;
}
