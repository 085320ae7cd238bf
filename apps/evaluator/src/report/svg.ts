/** Small inline-SVG chart primitives for the self-contained report (no scripts, no external assets). */

export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export const PALETTE = [
  '#2563eb',
  '#db2777',
  '#16a34a',
  '#ea580c',
  '#7c3aed',
  '#0891b2',
  '#ca8a04',
  '#4b5563',
];

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

/** Legend swatches laid out left to right, each as wide as its label needs (about 6.5 px per character at 11 px). */
function legend(left: number, labels: string[]): string[] {
  let x = left;
  return labels.flatMap((label, i) => {
    const parts = [
      `<rect x="${x}" y="4" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/>`,
      `<text x="${x + 14}" y="13" font-size="11">${escapeHtml(label)}</text>`,
    ];
    x += 14 + label.length * 6.5 + 18;
    return parts;
  });
}

export interface BarSeries {
  label: string;
  values: { accuracy: number; ciLow: number; ciHigh: number; correct: number; total: number }[];
}

/** Horizontal grouped bars (0–100%) with 95% interval whiskers: one row per group, one bar per series. */
export function barChart(id: string, title: string, rows: string[], series: BarSeries[]): string {
  const labelWidth = 190;
  const plotWidth = 420;
  const barHeight = 14;
  const rowHeight = series.length * (barHeight + 3) + 12;
  const legendHeight = 22;
  const height = legendHeight + rows.length * rowHeight + 28;
  const x = (v: number): number => labelWidth + v * plotWidth;
  const parts: string[] = [];
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(
      `<line x1="${x(tick)}" x2="${x(tick)}" y1="${legendHeight}" y2="${height - 20}" stroke="#e5e7eb"/>`,
      `<text x="${x(tick)}" y="${height - 6}" font-size="10" text-anchor="middle" fill="#6b7280">${tick * 100}%</text>`,
    );
  }
  parts.push(
    ...legend(
      labelWidth,
      series.map((s) => s.label),
    ),
  );
  rows.forEach((row, r) => {
    const top = legendHeight + r * rowHeight + 6;
    parts.push(
      `<text x="${labelWidth - 6}" y="${top + rowHeight / 2}" font-size="11" text-anchor="end">${escapeHtml(row)}</text>`,
    );
    series.forEach((s, i) => {
      const v = s.values[r];
      if (!v) return;
      const y = top + i * (barHeight + 3);
      const colour = PALETTE[i % PALETTE.length];
      parts.push(
        `<rect class="bar" x="${labelWidth}" y="${y}" width="${Math.max(1, v.accuracy * plotWidth)}" height="${barHeight}" fill="${colour}" opacity="0.85"><title>${escapeHtml(`${row} · ${s.label}: ${pct(v.accuracy)} (${v.correct}/${v.total}), 95% CI ${pct(v.ciLow)}–${pct(v.ciHigh)}`)}</title></rect>`,
        `<line x1="${x(v.ciLow)}" x2="${x(v.ciHigh)}" y1="${y + barHeight / 2}" y2="${y + barHeight / 2}" stroke="#111827" stroke-width="1.5"/>`,
        `<text x="${x(1) + 4}" y="${y + barHeight - 3}" font-size="10" fill="#374151">${pct(v.accuracy)} (${v.correct}/${v.total})</text>`,
      );
    });
  });
  return svg(id, title, labelWidth + plotWidth + 90, height, parts);
}

export interface LinePoint {
  x: string;
  accuracy: number;
  ciLow: number;
  ciHigh: number;
}

export interface LineSeries {
  label: string;
  points: LinePoint[];
}

/** Lines over categorical x values (LVR steps, model versions) with a shaded 95% interval band. */
export function lineChart(
  id: string,
  title: string,
  xLabels: string[],
  series: LineSeries[],
  xTitle: string,
): string {
  const left = 50;
  const top = 26;
  const width = 560;
  const height = 240;
  const plotWidth = width - left - 20;
  const plotHeight = height - top - 46;
  const x = (label: string): number =>
    xLabels.length === 1
      ? left + plotWidth / 2
      : left + (xLabels.indexOf(label) / (xLabels.length - 1)) * plotWidth;
  const y = (v: number): number => top + (1 - v) * plotHeight;
  const parts: string[] = [];
  for (const tick of [0, 0.25, 0.5, 0.75, 1])
    parts.push(
      `<line x1="${left}" x2="${left + plotWidth}" y1="${y(tick)}" y2="${y(tick)}" stroke="#e5e7eb"/>`,
      `<text x="${left - 6}" y="${y(tick) + 4}" font-size="10" text-anchor="end" fill="#6b7280">${tick * 100}%</text>`,
    );
  for (const label of xLabels)
    parts.push(
      `<text x="${x(label)}" y="${top + plotHeight + 16}" font-size="10" text-anchor="middle">${escapeHtml(label)}</text>`,
    );
  parts.push(
    `<text x="${left + plotWidth / 2}" y="${height - 6}" font-size="11" text-anchor="middle" fill="#374151">${escapeHtml(xTitle)}</text>`,
  );
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const pts = s.points.filter((p) => xLabels.includes(p.x));
    if (pts.length > 1) {
      const band = [
        ...pts.map((p) => `${x(p.x)},${y(p.ciHigh)}`),
        ...[...pts].reverse().map((p) => `${x(p.x)},${y(p.ciLow)}`),
      ].join(' ');
      parts.push(`<polygon points="${band}" fill="${colour}" opacity="0.12"/>`);
      parts.push(
        `<polyline class="line" points="${pts.map((p) => `${x(p.x)},${y(p.accuracy)}`).join(' ')}" fill="none" stroke="${colour}" stroke-width="2"/>`,
      );
    }
    for (const p of pts)
      parts.push(
        `<line x1="${x(p.x)}" x2="${x(p.x)}" y1="${y(p.ciLow)}" y2="${y(p.ciHigh)}" stroke="${colour}" opacity="0.5"/>`,
        `<circle class="point" cx="${x(p.x)}" cy="${y(p.accuracy)}" r="4" fill="${colour}"><title>${escapeHtml(`${s.label} @ ${p.x}: ${pct(p.accuracy)} (95% CI ${pct(p.ciLow)}–${pct(p.ciHigh)})`)}</title></circle>`,
      );
  });
  parts.push(
    ...legend(
      left,
      series.map((s) => s.label),
    ),
  );
  return svg(id, title, width, height, parts);
}

/** Expected (rows) × answered (columns) counts as a heat map; the diagonal is right, the rest is confusion. */
export function confusionMatrix(
  id: string,
  title: string,
  expected: string[],
  answered: string[],
  counts: Map<string, number>,
): string {
  const cell = 34;
  const left = 70;
  const top = 44;
  const width = left + answered.length * cell + 20;
  const height = top + expected.length * cell + 10;
  const max = Math.max(1, ...counts.values());
  const parts: string[] = [
    `<text x="${left + (answered.length * cell) / 2}" y="12" font-size="11" text-anchor="middle" fill="#374151">answered</text>`,
    `<text x="8" y="${top + (expected.length * cell) / 2}" font-size="11" fill="#374151">expected</text>`,
  ];
  answered.forEach((a, j) =>
    parts.push(
      `<text x="${left + j * cell + cell / 2}" y="${top - 8}" font-size="10" text-anchor="middle">${escapeHtml(a)}</text>`,
    ),
  );
  expected.forEach((e, i) => {
    parts.push(
      `<text x="${left - 6}" y="${top + i * cell + cell / 2 + 4}" font-size="10" text-anchor="end">${escapeHtml(e)}</text>`,
    );
    answered.forEach((a, j) => {
      const n = counts.get(`${e}\u0000${a}`) ?? 0;
      const diagonal = e === a;
      const colour = diagonal ? '22,163,74' : '220,38,38';
      parts.push(
        `<rect class="cell" x="${left + j * cell}" y="${top + i * cell}" width="${cell - 2}" height="${cell - 2}" fill="rgba(${colour},${n === 0 ? 0.04 : 0.15 + (0.85 * n) / max})"><title>${escapeHtml(`expected ${e}, answered ${a}: ${n}`)}</title></rect>`,
        `<text x="${left + j * cell + cell / 2 - 1}" y="${top + i * cell + cell / 2 + 3}" font-size="10" text-anchor="middle">${n}</text>`,
      );
    });
  });
  return svg(id, title, width, height, parts);
}

function svg(id: string, title: string, width: number, height: number, parts: string[]): string {
  return (
    `<figure class="chart" data-chart="${escapeHtml(id)}"><figcaption>${escapeHtml(title)}</figcaption>` +
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="${escapeHtml(title)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">` +
    parts.join('') +
    '</svg></figure>'
  );
}
