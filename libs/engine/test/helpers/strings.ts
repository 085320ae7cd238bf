import { Rng } from './random';

const WORDS = [
  'the',
  'The',
  'quick',
  'brown',
  'fox',
  "don't",
  "IT'S",
  "we'RE",
  "I'll",
  "you'Ve",
  "she'd",
  "'m",
  'naïve',
  'café',
  'Straße',
  'ſ',
  "'ſ",
  "'S",
  'HELLO',
  'x',
  '42',
  '3.14159',
  '1,000,000',
  '$',
  '%',
];
const CJK =
  '的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切图ひらがなカタカナ한국어조선말';
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🇯🇵', '🏳️‍🌈', '❤️', '🤖', '✨', '🧪', '1️⃣', '👩🏿‍🚀'];
const SCRIPTS = [
  'مرحبا بالعالم',
  'שלום עולם',
  'नमस्ते दुनिया',
  'สวัสดีชาวโลก',
  'Привет, мир',
  'Γειά σου Κόσμε',
  'Xin chào thế giới',
  'ᐊᐃᖓᐃ',
  'ⴰⵣⵓⵍ',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  '𝟘𝟙𝟚',
  '٣٤٥',
  '¹²³',
  'Ⅻ',
  '½',
];
const CODE = [
  'def f(x):\n    return x ** 2\n',
  'for (let i = 0; i < n; i++) {\n\tsum += a[i];\n}',
  'SELECT * FROM users WHERE id = 42;',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 1); }',
  '{"key": [1, 2.5, null, true], "s": "a\\"b"}',
  '<div class="x">&nbsp;</div>',
  'x = a->b ?: c; // comment',
  '```python\nprint("hi")\n```',
  '    indented\n        more\r\n\r\n',
];
const SPECIAL = [
  '<|im_start|>',
  '<|im_end|>',
  '<|endoftext|>',
  '<|vision_start|>',
  '<|image_pad|>',
  '<|vision_end|>',
  '<|lvr_start|>',
  '<|lvr|>',
  '<|lvr_latent_end|>',
  '<|lvr_end|>',
  '<|im_st',
  '<|lvr',
  '|>',
  '<|',
  '<tool_call>',
  '<|fim_pad|>',
];
const SPACES = [
  ' ',
  '  ',
  '   ',
  '\t',
  '\n',
  '\r\n',
  '\n\n',
  ' \n',
  '\u3000',
  '\u00a0',
  '\u0085',
  '\ufeff',
  '\u2028',
  '\u200b',
  '\u2003',
  '\r',
  '\u000b',
  '\u000c',
];
// Decomposed sequences that NFC composes, plus combining runs.
const COMBINING = [
  'e\u0301',
  'A\u030a',
  'n\u0303',
  '\u1100\u1161\u11a8',
  'o\u0308\u0304',
  'a\u0300\u0301\u0302',
  '\u0915\u093c',
];
// Marks and letters whose Unicode data differs between Node's ICU and the Rust side (see unicode-compat.ts).
const MARKS = [
  '\u0301',
  '\u0316',
  '\u0334',
  '\u0345',
  '\u05b0',
  '\u1df6',
  '\u07fd',
  '\u0898',
  '\u0c3c',
  '\u302a',
  '\u{11938}',
  '\u{11935}\u{11930}',
  '\u0303',
  '\u0323',
];
const NEW_LETTERS = ['\u088f', '\ua7ce', '\u{10940}', '\u{11de0}', '\u{31350}', '\u{2ebf0}'];
const LONE = ['\ud800', '\udfff', '\ud83d', '\ude00', 'a\ud800b', '\udc00\ud800'];

function randomCodePoint(rng: Rng): string {
  for (;;) {
    const r = rng.next();
    const cp =
      r < 0.5 ? rng.int(0x20, 0x3000) : r < 0.85 ? rng.int(0x3000, 0x10000) : rng.int(0x10000, 0x30000);
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    return String.fromCodePoint(cp);
  }
}

function piece(rng: Rng): string {
  switch (rng.int(0, 12)) {
    case 0:
    case 1:
      return rng.pick(WORDS);
    case 2: {
      let s = '';
      const n = rng.int(1, 12);
      for (let i = 0; i < n; i++) s += CJK[rng.int(0, CJK.length)];
      return s;
    }
    case 3:
      return rng.pick(EMOJI);
    case 4:
      return rng.pick(SCRIPTS);
    case 5:
      return rng.pick(CODE);
    case 6:
      return rng.pick(SPECIAL);
    case 7: {
      let s = '';
      const n = rng.int(1, 6);
      for (let i = 0; i < n; i++) s += rng.pick(SPACES);
      return s;
    }
    case 8:
      return rng.pick(COMBINING);
    case 9: {
      let s = '';
      const n = rng.int(1, 8);
      for (let i = 0; i < n; i++) s += randomCodePoint(rng);
      return s;
    }
    case 10: {
      let s = rng.pick(['a', 'e', 'A', 'o', '\u1100', rng.pick(NEW_LETTERS), ' ']);
      const n = rng.int(1, 5);
      for (let i = 0; i < n; i++) s += rng.pick(MARKS);
      return s;
    }
    default:
      return rng.next() < 0.3 ? rng.pick(LONE) : String(rng.int(0, 1e9));
  }
}

/** `count` varied strings: words, CJK, emoji, scripts, code, special-token text, whitespace runs, lone surrogates. */
export function variedStrings(count: number, seed = 1234): string[] {
  const rng = new Rng(seed);
  const out: string[] = [
    '',
    ' ',
    '\n',
    'Hello world',
    '  leading',
    'trailing  ',
    '\t\t\n \n',
    'a'.repeat(3000),
  ];
  while (out.length < count) {
    const n = rng.int(1, 9);
    let s = '';
    for (let i = 0; i < n; i++) {
      s += piece(rng);
      if (rng.next() < 0.5) s += rng.pick([' ', '', '', '\n', ', ', '. ']);
    }
    out.push(s);
  }
  return out;
}
