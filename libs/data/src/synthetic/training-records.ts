/**
 * Training records from benchmark records (LVR-SPEC §2.1, §2.8; the worker reads them in workers/lvr/data/records.py):
 * - stage 1 with latent reasoning: the answer is preceded by one `<lvr>` whose bbox is the 2x2 window of merged
 *   visual tokens (56 px) centred on the target (normalised to [0, 1]), so the model learns to reproduce that
 *   region's visual tokens before answering. A fixed window gives every record exactly LATENT_TOKENS latents, so
 *   `steps` decoding with that many steps replays training exactly (a tight bbox would give 1 to 9);
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

/** Pixels per merged visual token (14-px patches, 2x2 merge); synthetic images are multiples of it, never resized. */
export const TOKEN_PX = 28;
export const LATENT_WINDOW = 2;
export const LATENT_TOKENS = LATENT_WINDOW * LATENT_WINDOW;

/**
 * The LATENT_WINDOW x LATENT_WINDOW token block whose centre is the grid corner nearest the bbox centre, in pixels,
 * inset by 1 px so that rounding can never reach a neighbouring token (the bbox -> token rule takes every token the
 * box touches, LVR-SPEC §2.5).
 */
export function latentWindow(
  bbox: readonly [number, number, number, number],
  width: number,
  height: number,
): [number, number, number, number] {
  const span = LATENT_WINDOW * TOKEN_PX;
  const start = (centre: number, size: number) =>
    Math.min(Math.max(Math.round(centre / TOKEN_PX - LATENT_WINDOW / 2), 0) * TOKEN_PX, size - span);
  const x0 = start((bbox[0] + bbox[2]) / 2, width);
  const y0 = start((bbox[1] + bbox[3]) / 2, height);
  return [x0 + 1, y0 + 1, x0 + span - 1, y0 + span - 1];
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

function optionText(r: McRecord): string {
  const text = r.options.find((o) => o.letter === r.answer)?.text;
  if (text === undefined)
    throw new Error(`record for ${r.image}: answer ${r.answer} is not an option letter`);
  return text;
}

/**
 * Answer formats of the stage-1 assistant turn (the protocol reads only the letter in the last `<answer>`):
 * - `aligned` (default): `It is red (B)\n<answer>\nB\n</answer>`. The model names what it sees and writes the
 *   letter of the option line holding that word right after it, then repeats it in the tag. Written so that the
 *   letter is a copy, one token after the word: the prompt's line `B. red` tokenises as `B`, `.`, ` red`, and
 *   ` red`, ` (`, `B` reuse exactly those tokens (a bare `red` and `<answer>B`'s `>B` are other tokens). A decoder of
 *   the demo's size learned the lookup in this layout within ~500 steps on the drills below and stayed at chance
 *   for 2,800 steps when the letter came only four tokens after the word (`scripts/demo/lookup_probe.py`);
 * - `text`: `red\n<answer>B</answer>`;
 * - `letter`: `<answer>B</answer>` alone.
 */
export const ANSWER_FORMATS = ['aligned', 'text', 'letter'] as const;
export type AnswerFormat = (typeof ANSWER_FORMATS)[number];

export function assistantAnswer(r: McRecord, format: AnswerFormat = 'aligned'): string {
  switch (format) {
    case 'aligned':
      return `It is ${optionText(r)} (${r.answer})\n<answer>\n${r.answer}\n</answer>`;
    case 'text':
      return `${optionText(r)}\n${answerTag(r.answer)}`;
    case 'letter':
      return answerTag(r.answer);
  }
}

export function toStage1(r: McRecord, latent: boolean, format: AnswerFormat = 'aligned'): Stage1Record {
  const gpt = { from: 'gpt' as const, value: assistantAnswer(r, format) };
  if (!latent) return { image: r.image, conversations: [human(r), gpt], bboxes: [] };
  const { width, height } = r.meta ?? {};
  if (!r.bbox || !width || !height)
    throw new Error(`record for ${r.image}: a latent record needs bbox and meta size`);
  return {
    image: r.image,
    conversations: [human(r), { ...gpt, value: `<lvr>\n${gpt.value}` }],
    bboxes: [normaliseBbox(latentWindow(r.bbox, width, height), width, height)],
  };
}

/**
 * The lookup drill beside each record (`--lookup`): the same image and options, a question that names the option's
 * text ("Which option is red?"), the same answer format. It teaches the step every model of runs 1-3 missed (find
 * the line that holds the named value, copy its letter) without the image, which the visual records then reuse.
 * Plain (no `<lvr>`) in both stage-1 files: there is nothing to look at.
 */
export function toLookupDrill(r: McRecord, format: AnswerFormat = 'aligned'): Stage1Record {
  const drill = { ...r, question: `Which option is ${optionText(r)}?` };
  return toStage1(drill, false, format);
}

export function toStage2(r: McRecord): Stage2Record {
  return { image: r.image, conversations: [human(r), { from: 'gpt', value: answerTag(r.answer) }] };
}
