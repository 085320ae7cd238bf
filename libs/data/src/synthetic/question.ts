/** The multiple-choice question about a scene's target, with distractor options taken from the image first. */
import { Rng } from './random';
import type { Category, Scene, SceneObject } from './scene';
import { COLOUR_NAMES, GLYPH_NAMES, MAX_DOTS, MIN_DOTS, SHAPES } from './vocabulary';

export const OPTION_COUNT = 4;
export const LETTERS = ['A', 'B', 'C', 'D'] as const;

export interface Question {
  text: string;
  options: Array<{ letter: string; text: string }>;
  answer: string;
  answerText: string;
}

const COUNTS = Array.from({ length: MAX_DOTS - MIN_DOTS + 1 }, (_, i) => String(MIN_DOTS + i));

/** The value a category asks about, as the option text. */
export function attributeOf(category: Category, o: SceneObject): string {
  switch (category) {
    case 'colour':
      return o.colour;
    case 'shape':
      return o.shape;
    case 'glyph':
      return o.mark.kind === 'glyph' ? o.mark.glyph : '';
    case 'count':
      return o.mark.kind === 'dots' ? String(o.mark.count) : '';
  }
}

function vocabulary(category: Category): readonly string[] {
  return { colour: COLOUR_NAMES, shape: SHAPES, glyph: GLYPH_NAMES, count: COUNTS }[category];
}

function questionText(category: Category, t: SceneObject, alone: boolean): string {
  if (alone)
    return {
      colour: 'What colour is the object?',
      shape: 'What shape is the object?',
      glyph: 'Which letter is on the object?',
      count: 'How many dots are on the object?',
    }[category];
  switch (category) {
    case 'colour':
      return `What colour is the ${t.shape}?`;
    case 'shape':
      return `What shape is the ${t.colour} object?`;
    case 'glyph':
      return `Which letter is on the ${t.colour} ${t.shape}?`;
    case 'count':
      return `How many dots are on the ${t.colour} ${t.shape}?`;
  }
}

export function makeQuestion(rng: Rng, scene: Scene): Question {
  const target = scene.objects[scene.target];
  const answerText = attributeOf(scene.category, target);
  // Values visible elsewhere in the image come first: a model that only skims the image cannot rule them out.
  const inImage = rng.shuffle([
    ...new Set(scene.objects.map((o) => attributeOf(scene.category, o)).filter((v) => v !== answerText)),
  ]);
  const others = rng.shuffle(
    vocabulary(scene.category).filter((v) => v !== answerText && !inImage.includes(v)),
  );
  const texts = rng.shuffle([answerText, ...[...inImage, ...others].slice(0, OPTION_COUNT - 1)]);
  const options = texts.map((text, i) => ({ letter: LETTERS[i], text }));
  return {
    text: questionText(scene.category, target, scene.objects.length === 1),
    options,
    answer: options.find((o) => o.text === answerText)!.letter,
    answerText,
  };
}

/**
 * The LVR evaluation prompt (TRAINING-EVAL-REFERENCE §4.4): question, `Options:`, one `X. text` line per option, then
 * the instruction; character for character what the evaluator sends (apps/evaluator/src/execution/prompt.ts).
 * Training records use exactly this text so the evaluator's prompt is the one the model learned.
 */
export function multipleChoicePrompt(
  question: string,
  options: ReadonlyArray<{ letter: string; text: string }>,
) {
  const lines = options.map((o) => `${o.letter}. ${o.text}`);
  return [
    question,
    'Options:',
    ...lines,
    "Answer with the option's letter from the given choices directly.",
  ].join('\n');
}
