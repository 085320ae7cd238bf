/**
 * Training records from benchmark records (LVR-SPEC §2.1, §2.8; the worker reads them in workers/lvr/data/records.py):
 * - stage 1 with latent reasoning: the answer is preceded by one `<lvr>` whose bbox is the target's region
 *   (normalised to [0, 1]), so the model learns to reproduce that region's visual tokens before answering;
 * - stage 1 plain: the same conversations without `<lvr>` (the baseline with the same data and budget);
 * - stage 2 (GRPO): the question and the ground-truth `<answer>` only.
 */
import { multipleChoicePrompt } from './question';

export interface McRecord {
  question: string;
  options: ReadonlyArray<{ letter: string; text: string }>;
  answer: string;
  image: string;
  bbox?: readonly [number, number, number, number];
  meta?: { width?: number; height?: number };
}

export interface Stage1Record {
  image: string;
  conversations: [{ from: 'human'; value: string }, { from: 'gpt'; value: string }];
  bboxes: Array<[number, number, number, number]>;
}

export interface Stage2Record {
  image: string;
  conversations: [{ from: 'human'; value: string }, { from: 'gpt'; value: string }];
}

export const answerTag = (letter: string) => `<answer>${letter}</answer>`;

function human(r: McRecord) {
  return { from: 'human' as const, value: `<image>\n${multipleChoicePrompt(r.question, r.options)}` };
}

/** bbox in pixels -> [0, 1] of the image size (rounded to 6 digits). */
export function normaliseBbox(
  bbox: readonly [number, number, number, number],
  width: number,
  height: number,
): [number, number, number, number] {
  const r = (v: number) => Math.round(v * 1e6) / 1e6;
  const [x0, y0, x1, y1] = bbox;
  return [r(x0 / width), r(y0 / height), r(x1 / width), r(y1 / height)];
}

export function toStage1(r: McRecord, latent: boolean): Stage1Record {
  const gpt = { from: 'gpt' as const, value: answerTag(r.answer) };
  if (!latent) return { image: r.image, conversations: [human(r), gpt], bboxes: [] };
  const { width, height } = r.meta ?? {};
  if (!r.bbox || !width || !height)
    throw new Error(`record for ${r.image}: a latent record needs bbox and meta size`);
  return {
    image: r.image,
    conversations: [human(r), { ...gpt, value: `<lvr>\n${gpt.value}` }],
    bboxes: [normaliseBbox(r.bbox, width, height)],
  };
}

export function toStage2(r: McRecord): Stage2Record {
  return { image: r.image, conversations: [human(r), { from: 'gpt', value: answerTag(r.answer) }] };
}
