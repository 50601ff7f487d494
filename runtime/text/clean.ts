/**
 * Open-Sora's prompt cleaning, ported so `sorac generate` feeds the T5 encoder the same text the
 * released pipelines do. Upstream: `clean_caption` / `basic_clean` / `text_preprocessing` in
 * opensora/models/text_encoder/t5.py (identical code at v1.0.0 — as T5Embedder methods — v1.1.0,
 * v1.2.0 and v1.3; adapted from PixArt/DeepFloyd IF). text_preprocessing applies clean_caption twice.
 * Where each release applies it: v1.0 inside T5Embedder.get_text_embeddings; v1.1/v1.2/v1.3 in
 * scripts/inference.py before encoding; v2.0 (HEAD) not at all.
 *
 * Python semantics are kept explicitly: `\w` is [\p{L}\p{N}_], `\d` is \p{Nd}, `\s` is the
 * str.isspace() set, `\b` is a lookaround on that `\w`, and `$` also matches before a final '\n'.
 * The other libraries it calls:
 * - urllib.parse.unquote_plus: '+' -> ' ', %XX runs decoded as UTF-8 with errors='replace';
 * - BeautifulSoup(..., "html.parser").text: html-text.ts;
 * - html.unescape: Python's Lib/html/__init__.py (HTML5 names, longest prefix without ';',
 *   numeric references with the windows-1252 fix-ups and invalid code points);
 * - ftfy.fix_text (6.x defaults), minus fix_encoding: entity unescaping (only when the segment
 *   has no '<'), C1 controls as windows-1252, Latin ligatures, full/half width, curly quotes,
 *   line breaks, surrogates, terminal escapes, control characters, NFC, repeated until stable,
 *   per line. NOT ported: fix_encoding (mojibake repair such as "Ã©" -> "é", with its
 *   restore_byte_a0 / replace_lossy_sequences / decode_inconsistent_utf8 heuristics); a prompt
 *   with mojibake keeps it here.
 */
import ENTITIES from './html-entities.json' with { type: 'json' };
import { TextError } from './errors.ts';
import { PY_WS_CLASS, soupText } from './html-text.ts';
import { SoracError } from '../../core/errors.ts';

const HTML5 = ENTITIES as Record<string, string>;

export type OpenSoraRelease = '1.0' | '1.1' | '1.2' | '1.3' | '2.0';

export interface ReleaseTextSettings {
  /** T5 sequence length the release's DiT expects. */
  readonly maxLength: number;
  /** Whether prompts go through text_preprocessing (clean_caption twice). */
  readonly clean: boolean;
  /** Where upstream does it, for messages and docs. */
  readonly source: string;
}

const RELEASES: Record<OpenSoraRelease, ReleaseTextSettings> = {
  '1.0': { maxLength: 120, clean: true, source: 'opensora/models/text_encoder/t5.py@v1.0.0 T5Embedder.get_text_embeddings' },
  '1.1': { maxLength: 200, clean: true, source: 'scripts/inference.py@v1.1.0 (text_preprocessing per batch)' },
  '1.2': { maxLength: 300, clean: true, source: 'scripts/inference.py@v1.2.0' },
  '1.3': { maxLength: 300, clean: true, source: 'scripts/inference.py@v1.3' },
  '2.0': { maxLength: 512, clean: false, source: 'opensora/models/text/conditioner.py@HEAD (no cleaning)' },
};

/** Max length and cleaning of an Open-Sora release. */
export function releaseTextSettings(release: string): ReleaseTextSettings {
  const r = RELEASES[release as OpenSoraRelease];
  if (!r) {
    throw new TextError('SORA8111', `unknown Open-Sora release ${JSON.stringify(release)}`, `use one of ${Object.keys(RELEASES).join(', ')}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Python regex vocabulary

const W = '\\p{L}\\p{N}_';
const B = `(?:(?<=[${W}])(?![${W}])|(?<![${W}])(?=[${W}]))`;
const D = '\\p{Nd}';
const S = `[${PY_WS_CLASS}]`;
const NS = `[^${PY_WS_CLASS}]`;
/** Python `$` without MULTILINE: end of string, or before a newline that ends it. */
const END = '(?=\\n?$)';
const re = (src: string) => new RegExp(src, 'gu');

const pyWs = new RegExp(`^${S}+|${S}+$`, 'gu');
/** Python str.strip(). */
export function pyStrip(s: string): string {
  return s.replace(pyWs, '');
}

// ---------------------------------------------------------------------------------------------
// urllib.parse.unquote_plus

const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export function unquotePlus(s: string): string {
  s = s.replaceAll('+', ' ');
  if (!s.includes('%')) return s;
  // unquote(): ASCII runs are unquoted to bytes and decoded together (errors='replace');
  // non-ASCII characters pass through
  return s.replace(/[\x00-\x7f]+/g, (run) => {
    if (!run.includes('%')) return run;
    const bytes: number[] = [];
    for (let i = 0; i < run.length; i++) {
      if (run[i] === '%' && /^[0-9a-fA-F]{2}$/.test(run.slice(i + 1, i + 3))) {
        bytes.push(parseInt(run.slice(i + 1, i + 3), 16));
        i += 2;
      } else bytes.push(run.charCodeAt(i));
    }
    return utf8.decode(Uint8Array.from(bytes));
  });
}

// ---------------------------------------------------------------------------------------------
// html.unescape (CPython Lib/html/__init__.py)

const INVALID_CHARREFS: Record<number, string> = {
  0x00: '\ufffd', 0x0d: '\r', 0x80: '\u20ac', 0x81: '\x81', 0x82: '\u201a', 0x83: '\u0192', 0x84: '\u201e', 0x85: '\u2026',
  0x86: '\u2020', 0x87: '\u2021', 0x88: '\u02c6', 0x89: '\u2030', 0x8a: '\u0160', 0x8b: '\u2039', 0x8c: '\u0152', 0x8d: '\x8d',
  0x8e: '\u017d', 0x8f: '\x8f', 0x90: '\x90', 0x91: '\u2018', 0x92: '\u2019', 0x93: '\u201c', 0x94: '\u201d', 0x95: '\u2022',
  0x96: '\u2013', 0x97: '\u2014', 0x98: '\u02dc', 0x99: '\u2122', 0x9a: '\u0161', 0x9b: '\u203a', 0x9c: '\u0153', 0x9d: '\x9d',
  0x9e: '\u017e', 0x9f: '\u0178',
};

function invalidCodepoint(n: number): boolean {
  return (
    (n >= 0x1 && n <= 0x8) || n === 0xb || (n >= 0xe && n <= 0x1f) || (n >= 0x7f && n <= 0x9f) || (n >= 0xfdd0 && n <= 0xfdef) ||
    (n & 0xfffe) === 0xfffe
  );
}

const charrefRe = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(charrefRe, (_m, g: string) => {
    if (g[0] === '#') {
      const num = g[1] === 'x' || g[1] === 'X' ? parseInt(g.slice(2).replace(/;$/, ''), 16) : parseInt(g.slice(1).replace(/;$/, ''), 10);
      if (num in INVALID_CHARREFS) return INVALID_CHARREFS[num]!;
      if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
      if (invalidCodepoint(num)) return '';
      return String.fromCodePoint(num);
    }
    const hit = HTML5[g];
    if (hit !== undefined) return hit;
    // longest matching name (as defined by the standard), Python indexing by code point
    const cps = [...g];
    for (let x = cps.length - 1; x > 1; x--) {
      const head = cps.slice(0, x).join('');
      const h = HTML5[head];
      if (h !== undefined) return h + cps.slice(x).join('');
    }
    return '&' + g;
  });
}

// ---------------------------------------------------------------------------------------------
// ftfy.fix_text (6.x defaults) without fix_encoding

let ftfyEntities: Map<string, string> | undefined;
function ftfyEntityTable(): Map<string, string> {
  if (ftfyEntities) return ftfyEntities;
  const m = new Map<string, string>();
  for (const [name, ch] of Object.entries(HTML5)) {
    if (!name.endsWith(';')) continue;
    m.set('&' + name, ch);
    if (name === name.toLowerCase()) {
      const upper = '&' + name.toUpperCase();
      if (htmlUnescape(upper) === upper) m.set(upper, ch.toUpperCase());
    }
  }
  ftfyEntities = m;
  return m;
}

const C1_1252: Record<number, number> = {
  0x80: 0x20ac, 0x82: 0x201a, 0x83: 0x0192, 0x84: 0x201e, 0x85: 0x2026, 0x86: 0x2020, 0x87: 0x2021, 0x88: 0x02c6, 0x89: 0x2030,
  0x8a: 0x0160, 0x8b: 0x2039, 0x8c: 0x0152, 0x8e: 0x017d, 0x91: 0x2018, 0x92: 0x2019, 0x93: 0x201c, 0x94: 0x201d, 0x95: 0x2022,
  0x96: 0x2013, 0x97: 0x2014, 0x98: 0x02dc, 0x99: 0x2122, 0x9a: 0x0161, 0x9b: 0x203a, 0x9c: 0x0153, 0x9e: 0x017e, 0x9f: 0x0178,
};
const LIGATURES: Record<string, string> = {
  'Ĳ': 'IJ', 'ĳ': 'ij', 'ŉ': 'ʼn', 'Ǳ': 'DZ', 'ǲ': 'Dz', 'ǳ': 'dz', 'Ǆ': 'DŽ', 'ǅ': 'Dž', 'ǆ': 'dž', 'Ǉ': 'LJ', 'ǈ': 'Lj', 'ǉ': 'lj',
  'Ǌ': 'NJ', 'ǋ': 'Nj', 'ǌ': 'nj', 'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'ſt', 'ﬆ': 'st',
};
let widthMap: Map<string, string> | undefined;
function widthTable(): Map<string, string> {
  if (widthMap) return widthMap;
  const m = new Map<string, string>([['\u3000', ' ']]);
  for (let i = 0xff01; i < 0xfff0; i++) {
    const c = String.fromCharCode(i);
    const alt = c.normalize('NFKC');
    if (alt !== c) m.set(c, alt);
  }
  widthMap = m;
  return m;
}

const ftfyEntityRe = /&#?[0-9A-Za-z]{1,24};/g;
const ansiRe = new RegExp(`\\x1b\\[((?:${D}|;)*)([a-zA-Z])`, 'gu');
// ftfy chardata CONTROL_CHARS: 00-08, 0B, 0E-1F, 7F, 206A-206F, FEFF, FFF9-FFFC
const controlRe = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;

function ftfySegment(text: string, unescape: boolean): string {
  for (;;) {
    const orig = text;
    if (unescape) {
      const table = ftfyEntityTable();
      text = text.replace(ftfyEntityRe, (m) => {
        const hit = table.get(m);
        if (hit !== undefined) return hit;
        if (m.startsWith('&#')) {
          const u = htmlUnescape(m);
          return u.includes(';') ? m : u;
        }
        return m;
      });
    }
    text = text.replace(/[\x80-\x9f]/g, (c) => {
      const v = C1_1252[c.charCodeAt(0)];
      return v === undefined ? c : String.fromCodePoint(v);
    });
    text = text.replace(/[ĲĳŉǱǲǳǄǅǆǇǈǉǊǋǌﬀﬁﬂﬃﬄﬅﬆ]/g, (c) => LIGATURES[c]!);
    const wm = widthTable();
    text = text.replace(/[\u3000\uff01-\uffef]/g, (c) => wm.get(c) ?? c);
    text = text.replace(/[\u201c-\u201f]/g, '"').replace(/[\u02bc\u2018-\u201b]/g, "'");
    text = text.replaceAll('\r\n', '\n').replaceAll('\r', '\n').replaceAll('\u2028', '\n').replaceAll('\u2029', '\n').replaceAll('\u0085', '\n');
    text = text.replace(/\p{Cs}/gu, '\ufffd');
    text = text.replace(ansiRe, '');
    text = text.replace(controlRe, '');
    text = text.normalize('NFC');
    if (text === orig) return text;
  }
}

/** ftfy.fix_text with default options, except that mojibake (fix_encoding) is not repaired. */
export function ftfyFixText(text: string): string {
  let unescape = true; // unescape_html="auto" turns off for good once a segment has '<'
  let out = '';
  let pos = 0;
  while (pos < text.length) {
    let brk = text.indexOf('\n', pos) + 1;
    if (brk === 0) brk = text.length;
    if (brk - pos > 1_000_000) brk = pos + 1_000_000;
    const seg = text.slice(pos, brk);
    if (unescape && seg.includes('<')) unescape = false;
    out += ftfySegment(seg, unescape);
    pos = brk;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// clean_caption

const R = {
  urlHttp: re(`${B}((?:https?:(?:\\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\\-]+[.](?:com|co|ru|net|org|edu|gov|it)[${W}/-]*${B}\\/?(?!@)))`),
  urlWww: re(`${B}((?:www:(?:\\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\\-]+[.](?:com|co|ru|net|org|edu|gov|it)[${W}/-]*${B}\\/?(?!@)))`),
  nick: re(`@[${W}${D}]+${B}`),
  cjk: [
    re('[\\u31c0-\\u31ef]+'),
    re('[\\u31f0-\\u31ff]+'),
    re('[\\u3200-\\u32ff]+'),
    re('[\\u3300-\\u33ff]+'),
    re('[\\u3400-\\u4dbf]+'),
    re('[\\u4dc0-\\u4dff]+'),
    re('[\\u4e00-\\u9fff]+'),
  ],
  dash: re('[\\u002D\\u058A\\u05BE\\u1400\\u1806\\u2010-\\u2015\\u2E17\\u2E1A\\u2E3A\\u2E3B\\u2E40\\u301C\\u3030\\u30A0\\uFE31\\uFE32\\uFE58\\uFE63\\uFF0D]+'),
  dquote: re('[`´«»“”¨]'),
  squote: re('[‘’]'),
  quot: re('&quot;?'),
  amp: re('&amp'),
  ip: re(`${D}{1,3}\\.${D}{1,3}\\.${D}{1,3}\\.${D}{1,3}`),
  articleId: re(`${D}:${D}${D}${S}+${END}`),
  backslashN: re('\\\\n'),
  hash3: re(`#${D}{1,3}${B}`),
  hash5: re(`#${D}{5,}${B}`),
  digits6: re(`${B}${D}{6,}${B}`),
  filename: re(`${NS}+\\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)`),
  quotes2: re(`["']{2,}`),
  dots2: re('[\\.]{2,}'),
  badPunct: re('[#®•©™&@·º½¾¿¡§~\\)\\(\\]\\[\\}\\{\\|\\\\/\\*]{1,}'),
  spacedDot: re(`${S}+\\.${S}+`),
  dashUnderscore: re('(?:-|_)'),
  code1: re(`${B}[a-zA-Z]{1,3}${D}{3,15}${B}`),
  code2: re(`${B}[a-zA-Z]+${D}+[a-zA-Z]+${B}`),
  code3: re(`${B}${D}+[a-zA-Z]+${D}+${B}`),
  shipping: re(`(worldwide${S}+)?(free${S}+)?shipping`),
  download: re(`(free${S})?download(${S}free)?`),
  click: re(`${B}click${B}${S}(?:for|on)${S}[${W}]+`),
  imageExt: re(`${B}(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)(${S}image[s]?)?`),
  page: re(`${B}page${S}+${D}+${B}`),
  code4: re(`${B}${D}*[a-zA-Z]+${D}+[a-zA-Z]+${D}+[a-zA-Z${D}]*${B}`),
  size: re(`${B}${D}+\\.?${D}*[xх×]${D}+\\.?${D}*${B}`),
  colon: re(`${B}${S}+:${S}+`),
  punctSpace: re(`(\\P{Nd}[,\\./])${B}`),
  spaces: re(`${S}+`),
  wrapped: re(`^["']([\\s\\S]+)["']${END}`),
  lead: re("^['_,\\-:;]"),
  trail: re(`['_,\\-:+]${END}`),
  dotfile: re(`^\\.${NS}+${END}`),
};

/** Open-Sora's `basic_clean`: ftfy, html.unescape twice, strip. */
export function basicClean(text: string): string {
  return pyStrip(htmlUnescape(htmlUnescape(ftfyFixText(text))));
}

/** Open-Sora's `clean_caption` (one pass). */
export function cleanCaption(caption: string): string {
  let c = String(caption);
  c = unquotePlus(c);
  c = pyStrip(c).toLowerCase();
  c = c.replaceAll('<person>', 'person');
  c = c.replace(R.urlHttp, '');
  c = c.replace(R.urlWww, '');
  c = soupText(c);
  c = c.replace(R.nick, '');
  for (const r of R.cjk) c = c.replace(r, '');
  c = c.replace(R.dash, '-');
  c = c.replace(R.dquote, '"');
  c = c.replace(R.squote, "'");
  c = c.replace(R.quot, '');
  c = c.replace(R.amp, '');
  c = c.replace(R.ip, ' ');
  c = c.replace(R.articleId, '');
  c = c.replace(R.backslashN, ' ');
  c = c.replace(R.hash3, '');
  c = c.replace(R.hash5, '');
  c = c.replace(R.digits6, '');
  c = c.replace(R.filename, '');
  c = c.replace(R.quotes2, '"');
  c = c.replace(R.dots2, ' ');
  c = c.replace(R.badPunct, ' ');
  c = c.replace(R.spacedDot, ' ');
  if ((c.match(R.dashUnderscore) ?? []).length > 3) c = c.replace(R.dashUnderscore, ' ');
  c = basicClean(c);
  c = c.replace(R.code1, '');
  c = c.replace(R.code2, '');
  c = c.replace(R.code3, '');
  c = c.replace(R.shipping, '');
  c = c.replace(R.download, '');
  c = c.replace(R.click, '');
  c = c.replace(R.imageExt, '');
  c = c.replace(R.page, '');
  c = c.replace(R.code4, ' ');
  c = c.replace(R.size, '');
  c = c.replace(R.colon, ': ');
  c = c.replace(R.punctSpace, '$1 ');
  c = c.replace(R.spaces, ' ');
  c = c.replace(R.wrapped, '$1');
  c = c.replace(R.lead, '');
  c = c.replace(R.trail, '');
  c = c.replace(R.dotfile, '');
  return pyStrip(c);
}

/** Open-Sora's `text_preprocessing(text)`: clean_caption applied twice ("as in the training stage"). */
export function textPreprocessing(text: string): string {
  return cleanCaption(cleanCaption(text));
}

/**
 * Open-Sora 2.0's prompt text (scripts/diffusion/inference.py at HEAD): add_fps_info_to_text (strip, end with ".",
 * append " {fps_save} FPS." unless the prompt already ends with "<digits> FPS."), then, when the config has
 * motion_score, add_motion_score_to_text: " {motion_score} motion score." ("dynamic" asks an LLM: not supported).
 */
export function promptV2(prompt: string, s: { fps: number; motionScore?: string | number }): string {
  let p = pyStrip(prompt);
  if (!p.endsWith('.')) p += '.';
  if (!/\p{Nd}+ FPS\.$/u.test(p)) p = `${p} ${s.fps} FPS.`;
  if (s.motionScore !== undefined) {
    if (s.motionScore === 'dynamic') throw new SoracError('SORA8007', 'motion_score "dynamic" (a motion score chosen by an LLM prompt refiner) is not supported', { hint: 'set motion_score to a number such as "4" (the release default), or none' });
    p = `${p} ${s.motionScore} motion score.`;
  }
  return p;
}
