import path from 'node:path';
import type { ChatCompletionContentPart } from 'openai/resources/chat/completions';
import { BenchmarkRecord, BenchmarkSource, recordImages } from '@lvr/data';

/** The instruction every LVR evaluation script appends (LVR-SPEC.md §6). */
export const ANSWER_INSTRUCTION = "Answer with the option's letter from the given choices directly.";

/** Upstream prompt text: question, `Options:` with `A. text` lines, then the instruction. */
export function promptText(record: BenchmarkRecord): string {
  if (record.options.length === 0) return record.question;
  const options = record.options.map((o) => `${o.letter}. ${o.text}`).join('\n');
  return `${record.question}\nOptions:\n${options}\n${ANSWER_INSTRUCTION}`;
}

const MIME: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.bmp': 'image/bmp',
};

export function mimeOf(file: string): string {
  return MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** The user turn: the record's images (as data URLs, read from the benchmark folder) and then the text. */
export async function promptContent(
  record: BenchmarkRecord,
  source: BenchmarkSource,
): Promise<ChatCompletionContentPart[]> {
  const parts: ChatCompletionContentPart[] = [];
  for (const image of recordImages(record)) {
    const bytes = await source.read(image);
    if (!bytes) throw new Error(`image ${image} of record ${record.id} disappeared from ${source.uri}`);
    parts.push({
      type: 'image_url',
      image_url: { url: `data:${mimeOf(image)};base64,${bytes.toString('base64')}` },
    });
  }
  parts.push({ type: 'text', text: promptText(record) });
  return parts;
}
