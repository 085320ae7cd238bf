/** An RGB pixel buffer and the pixel-exact drawing of shapes, glyphs and dots (no anti-aliasing). */
import {
  DOT_LAYOUTS,
  GLYPHS,
  GLYPH_COLS,
  GLYPH_ROWS,
  MARK_RGB,
  type Glyph,
  type Rgb,
  type Shape,
} from './vocabulary';

export class RgbImage {
  readonly data: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height * 3);
  }

  set(x: number, y: number, [r, g, b]: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    this.data[i] = r;
    this.data[i + 1] = g;
    this.data[i + 2] = b;
  }

  get(x: number, y: number): Rgb {
    const i = (y * this.width + x) * 3;
    return [this.data[i], this.data[i + 1], this.data[i + 2]];
  }
}

const STAR = (() => {
  const pts: Array<[number, number]> = [];
  for (let k = 0; k < 10; k++) {
    const a = -Math.PI / 2 + (k * Math.PI) / 5;
    const r = k % 2 === 0 ? 1 : 0.45;
    pts.push([r * Math.cos(a), r * Math.sin(a)]);
  }
  return pts;
})();

function insidePolygon(u: number, v: number, pts: ReadonlyArray<readonly [number, number]>): boolean {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if (yi > v !== yj > v && u < ((xj - xi) * (v - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Is the point (u, v), in units of the half-size with the centre at 0 and v pointing down, inside the shape? */
export function insideShape(shape: Shape, u: number, v: number): boolean {
  const au = Math.abs(u);
  const av = Math.abs(v);
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return au <= 0.88 && av <= 0.88;
    case 'triangle':
      return v <= 0.85 && au <= (v + 1.05) / 1.9;
    case 'diamond':
      return au + av <= 1;
    case 'star':
      return insidePolygon(u, v, STAR);
    case 'cross':
      return (au <= 0.34 && av <= 1) || (av <= 0.34 && au <= 1);
  }
}

export interface Box {
  x0: number;
  y0: number;
  /** Exclusive. */
  x1: number;
  /** Exclusive. */
  y1: number;
}

/** Fill a shape of side `size` centred at (cx, cy); returns the tight box of the pixels written. */
export function fillShape(img: RgbImage, shape: Shape, cx: number, cy: number, size: number, rgb: Rgb): Box {
  const half = size / 2;
  const box = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
  for (let y = Math.floor(cy - half); y <= Math.ceil(cy + half); y++) {
    for (let x = Math.floor(cx - half); x <= Math.ceil(cx + half); x++) {
      if (!insideShape(shape, (x + 0.5 - cx) / half, (y + 0.5 - cy) / half)) continue;
      img.set(x, y, rgb);
      box.x0 = Math.min(box.x0, x);
      box.y0 = Math.min(box.y0, y);
      box.x1 = Math.max(box.x1, x + 1);
      box.y1 = Math.max(box.y1, y + 1);
    }
  }
  return box;
}

/** Where marks (glyphs, dots) go inside a shape: the centre of its widest solid part. */
export function markCentre(shape: Shape, cx: number, cy: number, size: number): [number, number] {
  return shape === 'triangle' ? [cx, cy + size * 0.17] : [cx, cy];
}

/** Glyph scale (pixels per bitmap cell) that fits an object of this size. */
export function glyphScale(size: number): number {
  return size >= 30 ? 2 : 1;
}

export function drawGlyph(img: RgbImage, glyph: Glyph, cx: number, cy: number, scale: number): void {
  const x0 = Math.round(cx - (GLYPH_COLS * scale) / 2);
  const y0 = Math.round(cy - (GLYPH_ROWS * scale) / 2);
  GLYPHS[glyph].forEach((row, r) => {
    for (let c = 0; c < GLYPH_COLS; c++) {
      if (row[c] !== '#') continue;
      for (let dy = 0; dy < scale; dy++)
        for (let dx = 0; dx < scale; dx++) img.set(x0 + c * scale + dx, y0 + r * scale + dy, MARK_RGB);
    }
  });
}

/** Dot radius and spacing for an object of this size (dots never touch, so each is one connected blob). */
export function dotGeometry(size: number): { radius: number; spacing: number } {
  const radius = size >= 30 ? 2 : 1;
  return { radius, spacing: Math.max(radius * 2 + 3, Math.round(size * 0.2)) };
}

export function drawDots(img: RgbImage, count: number, cx: number, cy: number, size: number): void {
  const { radius, spacing } = dotGeometry(size);
  for (const [du, dv] of DOT_LAYOUTS[count]) {
    const px = Math.round(cx + du * spacing);
    const py = Math.round(cy + dv * spacing);
    for (let y = -radius; y <= radius; y++)
      for (let x = -radius; x <= radius; x++)
        if (x * x + y * y <= radius * radius + 1) img.set(px + x, py + y, MARK_RGB);
  }
}
