/** A series as `name{a="x",b="y"}` with its labels sorted: Prometheus label order carries no meaning. */
export function canonicalSeries(series: string): string {
  const match = /^([^{\s]+)(?:\{(.*)\})?$/.exec(series.trim());
  if (!match) return series;
  const labels = [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(
    ([, k, v]) => `${k}="${v}"`,
  );
  return labels.length ? `${match[1]}{${labels.sort().join(',')}}` : match[1];
}

/** Every sample of a text exposition, keyed by its canonical series. */
export function seriesValues(exposition: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of exposition.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values.set(canonicalSeries(line.slice(0, space)), Number(line.slice(space + 1)));
  }
  return values;
}
