/** What a synthetic scene is made of: colours, shapes, glyphs (5x7 bitmaps) and dot layouts. */

export type Rgb = readonly [number, number, number];

/** Eight colours far apart in RGB, none close to the backgrounds or to the dark mark colour. */
export const COLOURS = {
  red: [220, 40, 40],
  green: [40, 165, 60],
  blue: [45, 85, 225],
  yellow: [235, 200, 30],
  purple: [140, 60, 185],
  orange: [245, 135, 30],
  cyan: [30, 195, 205],
  pink: [245, 120, 185],
} as const satisfies Record<string, Rgb>;
export type Colour = keyof typeof COLOURS;
export const COLOUR_NAMES = Object.keys(COLOURS) as Colour[];

export const SHAPES = ['circle', 'square', 'triangle', 'diamond', 'star', 'cross'] as const;
export type Shape = (typeof SHAPES)[number];

/** Glyphs and dots are drawn in this colour on top of an object. */
export const MARK_RGB: Rgb = [20, 20, 20];

/** 5x7 bitmaps, top row first; '#' is ink. Letters chosen to differ in several cells each. */
export const GLYPHS = {
  A: ['.###.', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  E: ['#####', '#....', '#....', '####.', '#....', '#....', '#####'],
  H: ['#...#', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  K: ['#...#', '#..#.', '#.#..', '##...', '#.#..', '#..#.', '#...#'],
  L: ['#....', '#....', '#....', '#....', '#....', '#....', '#####'],
  T: ['#####', '..#..', '..#..', '..#..', '..#..', '..#..', '..#..'],
  X: ['#...#', '#...#', '.#.#.', '..#..', '.#.#.', '#...#', '#...#'],
  Z: ['#####', '....#', '...#.', '..#..', '.#...', '#....', '#####'],
} as const;
export type Glyph = keyof typeof GLYPHS;
export const GLYPH_NAMES = Object.keys(GLYPHS) as Glyph[];
export const GLYPH_COLS = 5;
export const GLYPH_ROWS = 7;

export const MIN_DOTS = 1;
export const MAX_DOTS = 5;
/** Dice layouts: dot centres in units of the mark box, [-1, 1] on each axis. */
export const DOT_LAYOUTS: Record<number, ReadonlyArray<readonly [number, number]>> = {
  1: [[0, 0]],
  2: [
    [-1, -1],
    [1, 1],
  ],
  3: [
    [-1, -1],
    [0, 0],
    [1, 1],
  ],
  4: [
    [-1, -1],
    [1, -1],
    [-1, 1],
    [1, 1],
  ],
  5: [
    [-1, -1],
    [1, -1],
    [0, 0],
    [-1, 1],
    [1, 1],
  ],
};
