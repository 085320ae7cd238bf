/**
 * Scenes: many objects on a larger image, one of them the target of the question. The target is named by an
 * attribute no other object has, so answering needs finding it and then looking closely at that small region.
 */
import { RgbImage, drawDots, drawGlyph, fillShape, glyphScale, markCentre, type Box } from './raster';
import { Rng } from './random';
import {
  COLOURS,
  COLOUR_NAMES,
  GLYPH_NAMES,
  MAX_DOTS,
  MIN_DOTS,
  SHAPES,
  type Colour,
  type Glyph,
  type Rgb,
  type Shape,
} from './vocabulary';

export const CATEGORIES = ['colour', 'shape', 'glyph', 'count'] as const;
export type Category = (typeof CATEGORIES)[number];
export const DIFFICULTIES = ['easy', 'medium', 'hard'] as const;
export type Difficulty = (typeof DIFFICULTIES)[number];
/**
 * Curriculum levels below `easy`: `single` (one object, so reading the attribute needs no binding) and `pair` (two
 * objects that differ both in the words naming the target and in the attribute asked about, so the answer depends on
 * binding the description to one of them). Never drawn by default: ask for them by name.
 */
export const CURRICULUM_LEVELS = ['single', 'pair'] as const;
export type CurriculumLevel = (typeof CURRICULUM_LEVELS)[number];
export type SceneLevel = CurriculumLevel | Difficulty;
export const SCENE_LEVELS: readonly SceneLevel[] = [...CURRICULUM_LEVELS, ...DIFFICULTIES];
export const isDifficulty = (level: SceneLevel): level is Difficulty =>
  (DIFFICULTIES as readonly string[]).includes(level);

export interface Level {
  /** Image side in pixels (a multiple of 28, so the model's preprocessing never resizes it). */
  side: number;
  /** Objects sit in distinct cells of a grid x grid layout, so they never overlap. */
  grid: number;
  objects: readonly [number, number];
  size: readonly [number, number];
  /** Distractors forced to share the target's colour and (separately) its shape, where the category allows. */
  lookalikes: number;
  background: (y: number, side: number) => Rgb;
}

const plainBackground = (): Rgb => [248, 248, 248];

export const LEVELS: Record<SceneLevel, Level> = {
  single: {
    side: 112,
    grid: 1,
    objects: [1, 1],
    size: [44, 72],
    lookalikes: 0,
    background: plainBackground,
  },
  pair: {
    side: 112,
    grid: 2,
    objects: [2, 2],
    size: [36, 48],
    lookalikes: 0,
    background: plainBackground,
  },
  easy: {
    side: 196,
    grid: 4,
    objects: [3, 5],
    size: [34, 44],
    lookalikes: 0,
    background: plainBackground,
  },
  medium: {
    side: 224,
    grid: 4,
    objects: [6, 9],
    size: [28, 40],
    lookalikes: 1,
    background: () => [232, 232, 226],
  },
  hard: {
    side: 280,
    grid: 5,
    objects: [10, 16],
    size: [22, 32],
    lookalikes: 2,
    background: (y, side) => {
      const t = y / (side - 1);
      return [Math.round(240 - 35 * t), Math.round(236 - 26 * t), Math.round(226 - 6 * t)];
    },
  },
};

/** Shapes with a solid middle wide enough for a glyph or dice dots. */
export const MARKABLE_SHAPES: readonly Shape[] = ['circle', 'square', 'triangle', 'diamond'];

export type Mark = { kind: 'none' } | { kind: 'glyph'; glyph: Glyph } | { kind: 'dots'; count: number };

export interface SceneObject {
  shape: Shape;
  colour: Colour;
  cx: number;
  cy: number;
  size: number;
  mark: Mark;
  /** Tight box of the object's pixels (x1, y1 exclusive); filled in when the scene is rendered. */
  box: Box;
}

export interface Scene {
  width: number;
  height: number;
  category: Category;
  level: SceneLevel;
  objects: SceneObject[];
  target: number;
}

type Traits = Pick<SceneObject, 'shape' | 'colour'>;

/** Is `o` told apart from the target by the words the question uses to name the target? */
function distinguishable(category: Category, target: Traits, o: Traits): boolean {
  if (category === 'colour') return o.shape !== target.shape; // "the star"
  if (category === 'shape') return o.colour !== target.colour; // "the red object"
  return o.shape !== target.shape || o.colour !== target.colour; // "the red square"
}

function pickTraits(
  rng: Rng,
  category: Category,
  target: Traits,
  shapes: readonly Shape[],
  lookalike?: 'colour' | 'shape' | 'neither',
) {
  for (;;) {
    const o: Traits = {
      shape: lookalike === 'shape' ? target.shape : rng.pick(shapes),
      colour: lookalike === 'colour' ? target.colour : rng.pick(COLOUR_NAMES),
    };
    if (lookalike === 'neither' && (o.shape === target.shape || o.colour === target.colour)) continue;
    if (distinguishable(category, target, o)) return o;
  }
}

function pickMark(rng: Rng, category: Category, unlike?: Mark): Mark {
  for (;;) {
    const mark: Mark =
      category === 'glyph'
        ? { kind: 'glyph', glyph: rng.pick(GLYPH_NAMES) }
        : category === 'count'
          ? { kind: 'dots', count: rng.int(MIN_DOTS, MAX_DOTS) }
          : { kind: 'none' };
    if (mark.kind === 'none' || !unlike || JSON.stringify(mark) !== JSON.stringify(unlike)) return mark;
  }
}

export function makeScene(rng: Rng, category: Category, sceneLevel: SceneLevel): Scene {
  const level = LEVELS[sceneLevel];
  // in a pair the other object differs in shape and colour (so in the naming words and the colour/shape asked about)
  const other = sceneLevel === 'pair' ? 'neither' : undefined;
  const marked = category === 'glyph' || category === 'count';
  const shapes = marked ? MARKABLE_SHAPES : SHAPES;
  const n = rng.int(level.objects[0], level.objects[1]);
  const target: Traits = { shape: rng.pick(shapes), colour: rng.pick(COLOUR_NAMES) };
  const traits: Traits[] = [target];
  // Look-alikes share what the question does not use to name the target, so only the named attribute separates them.
  const kinds: Array<'colour' | 'shape'> =
    category === 'colour' ? ['colour'] : category === 'shape' ? ['shape'] : ['colour', 'shape'];
  for (const kind of kinds)
    for (let k = 0; k < level.lookalikes && traits.length < n; k++)
      traits.push(pickTraits(rng, category, target, shapes, kind));
  while (traits.length < n) traits.push(pickTraits(rng, category, target, shapes, other));

  const cell = level.side / level.grid;
  const cells = rng.shuffle([...Array(level.grid * level.grid).keys()]).slice(0, n);
  const order = rng.shuffle([...traits.keys()]); // the target lands in a random cell
  const objects = order.map((t, k): SceneObject => {
    const size = rng.int(level.size[0], level.size[1]);
    const col = cells[k] % level.grid;
    const row = Math.floor(cells[k] / level.grid);
    const slack = Math.max(0, cell - size - 4);
    return {
      ...traits[t],
      cx: Math.round(col * cell + 2 + size / 2 + rng.next() * slack),
      cy: Math.round(row * cell + 2 + size / 2 + rng.next() * slack),
      size,
      mark: pickMark(rng, category),
      box: { x0: 0, y0: 0, x1: 0, y1: 0 },
    };
  });
  const targetAt = order.indexOf(0);
  if (other)
    for (const o of objects)
      if (o !== objects[targetAt]) o.mark = pickMark(rng, category, objects[targetAt].mark);
  return {
    width: level.side,
    height: level.side,
    category,
    level: sceneLevel,
    objects,
    target: targetAt,
  };
}

/** Draw the scene (and record each object's pixel box). */
export function renderScene(scene: Scene): RgbImage {
  const img = new RgbImage(scene.width, scene.height);
  const background = LEVELS[scene.level].background;
  for (let y = 0; y < scene.height; y++) {
    const rgb = background(y, scene.height);
    for (let x = 0; x < scene.width; x++) img.set(x, y, rgb);
  }
  for (const o of scene.objects) {
    o.box = fillShape(img, o.shape, o.cx, o.cy, o.size, COLOURS[o.colour]);
    const [mx, my] = markCentre(o.shape, o.cx, o.cy, o.size);
    if (o.mark.kind === 'glyph') drawGlyph(img, o.mark.glyph, mx, my, glyphScale(o.size));
    if (o.mark.kind === 'dots') drawDots(img, o.mark.count, mx, my, o.size);
  }
  return img;
}
