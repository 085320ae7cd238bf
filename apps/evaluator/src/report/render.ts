import { PROTOCOLS, ScoreEntry } from '../scoring/protocols';
import { EvaluationResults, SampleRecord } from '../results/types';
import { BarSeries, LineSeries, barChart, confusionMatrix, escapeHtml, lineChart } from './svg';

export interface ReportInput {
  results: EvaluationResults;
  samples: SampleRecord[];
  /** Image reference (`<benchmark>/<path>`) → data URL thumbnail, for the wrong answers shown. */
  thumbnails: Map<string, string>;
  wrongAnswersShown: number;
}

export function thumbnailKey(benchmark: string, image: string): string {
  return `${benchmark}/${image}`;
}

/** The wrong answers the report shows with images (first N across benchmarks, in sample order). */
export function wrongAnswers(samples: SampleRecord[], limit: number): SampleRecord[] {
  return samples.filter((s) => !s.correct).slice(0, limit);
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const UNPARSEABLE = '∅';
const FAILED = 'failed';

function primaryProtocol(results: EvaluationResults, benchmark: string): string {
  return results.benchmarks.find((b) => b.name === benchmark)?.protocols[0] ?? 'mc-letter';
}

function find(
  scores: ScoreEntry[],
  benchmark: string,
  protocol: string,
  config: string,
  group: string,
): ScoreEntry | undefined {
  return scores.find(
    (s) => s.benchmark === benchmark && s.protocol === protocol && s.config === config && s.group === group,
  );
}

function categoryCharts(results: EvaluationResults): string {
  return results.benchmarks
    .map((b) => {
      const protocol = primaryProtocol(results, b.name);
      const groups = [
        ...new Set(
          results.scores.filter((s) => s.benchmark === b.name && s.protocol === protocol).map((s) => s.group),
        ),
      ].sort((a, c) => (a === 'overall' ? -1 : c === 'overall' ? 1 : a.localeCompare(c)));
      const series: BarSeries[] = results.configs.map((config) => ({
        label: config.label,
        values: groups.map(
          (g) =>
            find(results.scores, b.name, protocol, config.label, g) ?? {
              accuracy: 0,
              ciLow: 0,
              ciHigh: 0,
              correct: 0,
              total: 0,
            },
        ),
      }));
      return barChart(
        `accuracy-${b.name}`,
        `${b.name}: accuracy per category — ${protocol} (${PROTOCOLS[protocol as keyof typeof PROTOCOLS] ?? protocol})`,
        groups.map((g) => g.replace(/^(category|subtask):/, '')),
        series,
      );
    })
    .join('');
}

function stepsChart(results: EvaluationResults): string {
  const swept = results.configs.filter((c) => c.steps !== undefined);
  if (swept.length === 0)
    return '<p class="note">No LVR steps sweep in this evaluation (decoding.steps not set): the model\'s default steps were used.</p>';
  const xLabels = swept.map((c) => String(c.steps));
  const series: LineSeries[] = results.benchmarks.map((b) => {
    const protocol = primaryProtocol(results, b.name);
    return {
      label: `${b.name} (${protocol})`,
      points: swept
        .map((c) => ({ c, s: find(results.scores, b.name, protocol, c.label, 'overall') }))
        .filter((p): p is { c: typeof p.c; s: ScoreEntry } => p.s !== undefined)
        .map(({ c, s }) => ({ x: String(c.steps), accuracy: s.accuracy, ciLow: s.ciLow, ciHigh: s.ciHigh })),
    };
  });
  return lineChart(
    'lvr-steps',
    'Accuracy by LVR latent steps (overall, 95% interval)',
    xLabels,
    series,
    'LVR steps',
  );
}

function versionLabel(point: { modelVersion?: string; evalId: string }): string {
  return point.modelVersion ?? point.evalId.slice(-10);
}

function versionsChart(results: EvaluationResults): string {
  if (!results.schedule)
    return '<p class="note">On-demand evaluation: accuracy over model versions is drawn for scheduled evaluations.</p>';
  const points = [
    ...results.history,
    {
      evalId: results.evalId,
      modelId: results.modelId,
      modelVersion: results.modelVersion,
      finishedAt: results.finishedAt,
      headline: results.scores,
    },
  ];
  const xLabels = [...new Set(points.map(versionLabel))];
  const config = results.configs[0].label;
  const series: LineSeries[] = results.benchmarks.map((b) => {
    const protocol = primaryProtocol(results, b.name);
    return {
      label: `${b.name} (${protocol}, ${config})`,
      points: points
        .map((p) => ({ p, s: find(p.headline, b.name, protocol, config, 'overall') }))
        .filter((x): x is { p: (typeof points)[number]; s: ScoreEntry } => x.s !== undefined)
        .map(({ p, s }) => ({ x: versionLabel(p), accuracy: s.accuracy, ciLow: s.ciLow, ciHigh: s.ciHigh })),
    };
  });
  return lineChart(
    'versions',
    `Accuracy over model versions (schedule ${results.schedule})`,
    xLabels,
    series,
    'model version',
  );
}

function confusionCharts(results: EvaluationResults, samples: SampleRecord[]): string {
  const config = results.configs[0].label;
  return results.benchmarks
    .map((b) => {
      const group = samples.filter(
        (s) => s.benchmark === b.name && s.config === config && s.options.length > 0,
      );
      if (group.length === 0) return '';
      const answerOf = (s: SampleRecord): string => (s.failed ? FAILED : (s.parsed ?? UNPARSEABLE));
      const letters = [...new Set(group.flatMap((s) => s.options.map((o) => o.letter)))].sort();
      const expected = letters.filter((l) => group.some((s) => s.expected === l));
      const answered = [...letters, UNPARSEABLE, ...(group.some((s) => s.failed) ? [FAILED] : [])];
      const counts = new Map<string, number>();
      for (const s of group) {
        const key = `${s.expected}\u0000${answerOf(s)}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      return confusionMatrix(
        `confusion-${b.name}`,
        `${b.name}: expected vs answered letter (${config}, robust parsing; ∅ = unparseable)`,
        expected,
        answered,
        counts,
      );
    })
    .join('');
}

function wrongGallery(input: ReportInput): string {
  const wrong = wrongAnswers(input.samples, input.wrongAnswersShown);
  const total = input.samples.filter((s) => !s.correct).length;
  if (total === 0) return '<p class="note">No wrong answers.</p>';
  const cards = wrong.map((s) => {
    const images = s.images
      .map((image) => input.thumbnails.get(thumbnailKey(s.benchmark, image)))
      .filter((url): url is string => url !== undefined)
      .map((url) => `<img src="${url}" alt="${escapeHtml(s.sampleId)}">`)
      .join('');
    const answer = s.failed
      ? `request failed: ${s.error ?? ''}`
      : s.parsed === null
        ? 'unparseable'
        : s.parsed;
    return (
      `<div class="card">${images}<div class="card-body"><div class="meta">${escapeHtml(s.benchmark)} · ${escapeHtml(s.config)} · ${escapeHtml(s.category)} · <code>${escapeHtml(s.sampleId)}</code></div>` +
      `<div class="question">${escapeHtml(s.prompt.split('\n')[0])}</div>` +
      `<div class="options">${s.options.map((o) => `<span class="${o.letter === s.expected ? 'expected' : o.letter === s.parsed ? 'given' : ''}">${escapeHtml(o.letter)}. ${escapeHtml(o.text)}</span>`).join(' ')}</div>` +
      `<div>expected <b>${escapeHtml(s.expected)}</b>, answered <b class="wrong">${escapeHtml(answer)}</b></div>` +
      `<pre class="raw">${escapeHtml((s.raw ?? '').slice(0, 300))}</pre></div></div>`
    );
  });
  return `<p class="note">${wrong.length} of ${total} wrong answers shown.</p><div class="gallery">${cards.join('')}</div>`;
}

function scoresTable(scores: ScoreEntry[], overallOnly: boolean): string {
  const rows = scores
    .filter((s) => (overallOnly ? s.group === 'overall' : true))
    .map(
      (s) =>
        `<tr><td>${escapeHtml(s.benchmark)}</td><td><code title="${escapeHtml(PROTOCOLS[s.protocol])}">${escapeHtml(s.protocol)}</code></td><td>${escapeHtml(s.config)}</td><td>${escapeHtml(s.group)}</td>` +
        `<td class="num">${pct(s.accuracy)}</td><td class="num">${pct(s.ciLow)}–${pct(s.ciHigh)}</td><td class="num">${s.correct}/${s.total} ${s.unit === 'pair' ? 'pairs' : ''}</td><td class="num">${s.unparseable}</td><td class="num">${s.failed}</td></tr>`,
    )
    .join('');
  return `<table><thead><tr><th>benchmark</th><th>protocol</th><th>decoding</th><th>group</th><th>accuracy</th><th>95% CI (Wilson)</th><th>correct</th><th>unparseable</th><th>failed</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function regressionBanner(results: EvaluationResults): string {
  const r = results.regression;
  if (!r.previousEvalId)
    return `<div class="banner neutral">No earlier evaluation to compare with${results.schedule ? ` in schedule ${escapeHtml(results.schedule)}` : ''}.</div>`;
  if (!r.regressed)
    return `<div class="banner ok">No regression against ${escapeHtml(r.previousEvalId)} (margin ${pct(r.margin)}, interval taken into account).</div>`;
  const shown = 4;
  const more =
    r.findings.length > shown
      ? `<li>and ${r.findings.length - shown} more (see the headline table)</li>`
      : '';
  const items =
    r.findings
      .slice(0, shown)
      .map(
        (f) =>
          `<li>${escapeHtml(f.name)} · ${escapeHtml(f.protocol)} · ${escapeHtml(f.config)}: ${pct(f.previousAccuracy)} → ${pct(f.accuracy)}</li>`,
      )
      .join('') + more;
  return `<div class="banner regressed" data-regressed="true"><b>Regression</b> against ${escapeHtml(r.previousEvalId)} (margin ${pct(r.margin)}):<ul>${items}</ul></div>`;
}

const STYLE = `
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#111827;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.sub{color:#4b5563;font-size:13px}.note{color:#6b7280;font-size:13px}
table{border-collapse:collapse;font-size:12px;width:100%}th,td{border-bottom:1px solid #e5e7eb;padding:3px 6px;text-align:left}.num{text-align:right;white-space:nowrap}
figure.chart{margin:12px 0;display:inline-block;vertical-align:top}figcaption{font-size:13px;font-weight:600;margin-bottom:4px}
.banner{padding:10px 12px;border-radius:6px;margin:12px 0;font-size:14px}.ok{background:#dcfce7}.neutral{background:#f3f4f6}.regressed{background:#fee2e2;border:1px solid #dc2626}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:10px}
.card{display:flex;gap:8px;border:1px solid #e5e7eb;border-radius:6px;padding:8px;font-size:12px}.card img{width:96px;height:96px;object-fit:contain;background:#f9fafb}
.card-body{min-width:0}.meta{color:#6b7280}.question{font-weight:600;margin:2px 0}.expected{color:#15803d;font-weight:600}.given,.wrong{color:#b91c1c}
.raw{white-space:pre-wrap;word-break:break-word;background:#f9fafb;padding:4px;margin:4px 0 0;max-height:80px;overflow:auto}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:13px}dt{color:#6b7280}`;

/** One self-contained HTML page: no scripts, no external requests; charts are inline SVG, images data URLs. */
export function renderReport(input: ReportInput): string {
  const r = input.results;
  const model = r.modelVersion ? `${r.modelId} @ ${r.modelVersion}` : r.modelId;
  const protocols = Object.entries(r.protocols)
    .map(([id, label]) => `<dt><code>${escapeHtml(id)}</code></dt><dd>${escapeHtml(label)}</dd>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Evaluation ${escapeHtml(r.evalId)} · ${escapeHtml(model)}</title><style>${STYLE}</style></head>
<body data-eval-id="${escapeHtml(r.evalId)}">
<h1>Evaluation of ${escapeHtml(model)}</h1>
<div class="sub">${escapeHtml(r.evalId)} · trigger ${escapeHtml(r.trigger)}${r.schedule ? ` · schedule ${escapeHtml(r.schedule)}` : ''} · ${escapeHtml(r.startedAt)} → ${escapeHtml(r.finishedAt)} · API model <code>${escapeHtml(r.model)}</code></div>
${regressionBanner(r)}
<dl><dt>samples</dt><dd>${r.samples.total} (failed ${r.samples.failed}, unparseable ${r.samples.unparseable}), mean latency ${r.samples.meanLatencyMs.toFixed(0)} ms, mean latent steps ${r.samples.meanLatentSteps.toFixed(2)}</dd>
<dt>benchmarks</dt><dd>${r.benchmarks.map((b) => `${escapeHtml(b.name)} v${escapeHtml(b.version)} (${escapeHtml(b.split)}, ${b.records} records)`).join(', ')}</dd>
<dt>decoding</dt><dd>${r.configs.map((c) => `${escapeHtml(c.label)} (temperature ${c.temperature}, max tokens ${c.maxTokens})`).join(', ')}</dd></dl>
<h2>Accuracy per benchmark and category</h2>${categoryCharts(r)}
<h2>LVR steps sweep</h2>${stepsChart(r)}
<h2>Accuracy over model versions</h2>${versionsChart(r)}
<h2>Headline</h2>${scoresTable(r.scores, true)}
<h2>Wrong answers</h2>${confusionCharts(r, input.samples)}${wrongGallery(input)}
<h2>All scores</h2>${scoresTable(r.scores, false)}
<h2>Protocols</h2><dl>${protocols}</dl>
</body></html>
`;
}
