import type { OpenAIErrorBody } from '../../src/errors/api-error';
import type { ChatCompletionChunkOut } from '../../src/protocol/chat-completion.response';

/** One SSE `data:` payload: a chunk, or an error object sent after the stream started. */
export type SseJson = ChatCompletionChunkOut & Partial<OpenAIErrorBody>;

/** Parses an SSE body into its `data:` payloads (JSON objects, or the literal `[DONE]`). */
export function parseSse(body: string): Array<SseJson | '[DONE]'> {
  return body
    .split('\n\n')
    .map((frame) => frame.trim())
    .filter(Boolean)
    .map((frame) => {
      if (!frame.startsWith('data: ')) throw new Error(`not an SSE data frame: ${frame.slice(0, 80)}`);
      const payload = frame.slice(6);
      return payload === '[DONE]' ? '[DONE]' : (JSON.parse(payload) as SseJson);
    });
}
