import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isCorrect, parseAnswer, upstreamLvrAnswer } from '../../apps/evaluator/src/scoring/answer-parser';
import { ScorableSample, protocolsFor, scoreSamples } from '../../apps/evaluator/src/scoring/protocols';
import { wilsonInterval } from '../../apps/evaluator/src/scoring/stats';

const AB = [
  { letter: 'A', text: 'red' },
  { letter: 'B', text: 'dark blue' },
];
const ABCD = [...AB, { letter: 'C', text: 'green' }, { letter: 'D', text: 'yellow' }];

describe('answer parsing', () => {
  test('upstream LVR extraction follows the script exactly', () => {
    assert.equal(upstreamLvrAnswer('<answer>A. cat</answer>'), 'A');
    assert.equal(upstreamLvrAnswer('think <answer>B</answer> then <answer> C </answer>'), 'C');
    assert.equal(upstreamLvrAnswer('<answer>(B)</answer>'), '(');
    assert.equal(upstreamLvrAnswer('B'), 'B');
    assert.equal(upstreamLvrAnswer('The answer is B'), 'T');
    assert.equal(upstreamLvrAnswer('<answer>b</answer>'), 'b');
    assert.equal(upstreamLvrAnswer(''), '');
  });

  test('robust parsing reads letters, tags and option text, and refuses to guess', () => {
    const cases: [string, string | null, string][] = [
      ['A', 'A', 'letter'],
      ['(B)', 'B', 'letter'],
      ['B. dark blue', 'B', 'letter'],
      ['The answer is (D).', 'D', 'letter'],
      ['Answer: C', 'C', 'letter'],
      ['I pick option B', 'B', 'letter'],
      ['<answer>(C)</answer>', 'C', 'answer-tag'],
      ['<answer>green</answer>', 'C', 'answer-tag'],
      ['It is yellow.', 'D', 'option-text'],
      ['Dark Blue', 'B', 'option-text'],
      ['A cat sits on the mat', null, 'none'],
      ['red or green', null, 'none'],
      ['E', null, 'none'],
      ['', null, 'none'],
      ['<|im_end|> random tokens', null, 'none'],
    ];
    for (const [raw, answer, method] of cases)
      assert.deepEqual(parseAnswer(raw, ABCD), { answer, method }, `parsing ${JSON.stringify(raw)}`);
  });

  test('open answers compare after normalising', () => {
    const parsed = parseAnswer('<answer> Seven. </answer>', []);
    assert.deepEqual(parsed, { answer: 'seven', method: 'answer-tag' });
    assert.equal(isCorrect(parsed, 'seven', []), true);
    assert.equal(isCorrect(parseAnswer('', []), 'seven', []), false);
  });
});

function sample(overrides: Partial<ScorableSample> & { sampleId: string }): ScorableSample {
  return {
    benchmark: 'b',
    config: 'default',
    category: 'x',
    correct: false,
    unparseable: false,
    upstreamCorrect: false,
    upstreamTagged: true,
    failed: false,
    ...overrides,
  };
}

describe('protocols', () => {
  // Hand-computed fixture: MMVP-like, 3 pairs (6 questions), two categories.
  //   pair p1 (cat orient):  q1 right, q2 right   -> pair right
  //   pair p2 (cat orient):  q3 right, q4 wrong   -> pair wrong
  //   pair p3 (cat colour):  q5 unparseable, q6 right -> pair wrong
  // per question: 4/6; pairs: 1/3; orient 3/4 questions, 1/2 pairs; colour 1/2 questions, 0/1 pairs.
  const samples = [
    sample({ sampleId: 'q1', pairId: 'p1', category: 'orient', correct: true, upstreamCorrect: true }),
    sample({
      sampleId: 'q2',
      pairId: 'p1',
      category: 'orient',
      correct: true,
      upstreamCorrect: false,
      upstreamTagged: false,
    }),
    sample({ sampleId: 'q3', pairId: 'p2', category: 'orient', correct: true, upstreamCorrect: true }),
    sample({ sampleId: 'q4', pairId: 'p2', category: 'orient' }),
    sample({ sampleId: 'q5', pairId: 'p3', category: 'colour', unparseable: true, upstreamTagged: false }),
    sample({ sampleId: 'q6', pairId: 'p3', category: 'colour', correct: true, upstreamCorrect: true }),
  ];

  test('MMVP per-question and pair accuracy match the hand count', () => {
    const scores = scoreSamples('mmvp', 'steps-8', ['mmvp-question', 'mmvp-pair'], samples);
    const get = (protocol: string, group: string) =>
      scores.find((s) => s.protocol === protocol && s.group === group)!;
    assert.deepEqual(
      [get('mmvp-question', 'overall').correct, get('mmvp-question', 'overall').total],
      [4, 6],
    );
    assert.equal(get('mmvp-question', 'overall').unparseable, 1);
    assert.deepEqual([get('mmvp-pair', 'overall').correct, get('mmvp-pair', 'overall').total], [1, 3]);
    assert.equal(get('mmvp-pair', 'overall').unit, 'pair');
    assert.deepEqual(
      [get('mmvp-question', 'category:orient').correct, get('mmvp-question', 'category:orient').total],
      [3, 4],
    );
    assert.deepEqual(
      [get('mmvp-pair', 'category:orient').correct, get('mmvp-pair', 'category:orient').total],
      [1, 2],
    );
    assert.deepEqual(
      [get('mmvp-pair', 'category:colour').correct, get('mmvp-pair', 'category:colour').total],
      [0, 1],
    );
    assert.ok(Math.abs(get('mmvp-pair', 'overall').accuracy - 1 / 3) < 1e-12);
  });

  test('the upstream protocol is scored from its own extraction and counts untagged answers', () => {
    const scores = scoreSamples('mmvp', 'steps-8', ['lvr-answer-tag'], samples);
    const overall = scores.find((s) => s.group === 'overall')!;
    assert.deepEqual([overall.correct, overall.total, overall.unparseable], [3, 6, 2]);
  });

  test('BLINK groups by subtask, V* by category; failed requests are wrong and counted apart', () => {
    const blink = [
      sample({ sampleId: 'a', subtask: 'Counting', category: 'blink', correct: true }),
      sample({ sampleId: 'b', subtask: 'Counting', category: 'blink', failed: true, unparseable: true }),
      sample({ sampleId: 'c', subtask: 'Jigsaw', category: 'blink', correct: true }),
    ];
    const scores = scoreSamples('blink', 'default', ['blink-subtask'], blink);
    assert.deepEqual(
      scores.map((s) => [s.group, s.correct, s.total, s.failed, s.unparseable]),
      [
        ['overall', 2, 3, 1, 0],
        ['subtask:Counting', 1, 2, 1, 0],
        ['subtask:Jigsaw', 1, 1, 0, 0],
      ],
    );
  });

  test('protocol selection: manifest protocols plus upstream, unknown ones refused', () => {
    assert.deepEqual(protocolsFor(['mmvp-pair']), ['mmvp-pair', 'lvr-answer-tag']);
    assert.deepEqual(protocolsFor([]), ['mc-letter', 'lvr-answer-tag']);
    // the synthetic generator's manifest says `lvr`: the upstream rule first, plus a robust reading
    assert.deepEqual(protocolsFor(['lvr']), ['lvr-answer-tag', 'mc-letter']);
    assert.throws(() => protocolsFor(['gpt-judge']), /unknown protocol\(s\) gpt-judge/);
  });

  test('Wilson interval matches the closed form on hand-checked values', () => {
    // 4/6: centre (p + z²/2n)/(1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²)/(1 + z²/n)
    const [lo, hi] = wilsonInterval(4, 6);
    assert.ok(Math.abs(lo - 0.3) < 1e-3, `lo=${lo}`);
    assert.ok(Math.abs(hi - 0.9032) < 1e-3, `hi=${hi}`);
    assert.deepEqual(wilsonInterval(0, 0), [0, 1]);
    const [zeroLo] = wilsonInterval(0, 10);
    assert.equal(zeroLo, 0);
  });
});
