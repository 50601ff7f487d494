/**
 * `BeautifulSoup(text, features="html.parser").text` without Python, for Open-Sora's prompt
 * cleaning (clean.ts). Ported from the two pieces that produce it:
 * - CPython 3.11 Lib/html/parser.py (HTMLParser.goahead, parse_starttag,
 *   check_for_whole_start_tag, parse_endtag, CDATA mode for script/style) and Lib/_markupbase.py
 *   (comments, marked sections), with convert_charrefs=False as Beautiful Soup sets it;
 * - Beautiful Soup 4.11 builder/_htmlparser.py (charrefs < 256 read as windows-1252, entity
 *   names from the HTML5 table, void elements closed at once) and __init__.py / element.py
 *   (strings are flushed at every markup event; an all-ASCII-whitespace string becomes ' ' or
 *   '\n' outside pre/textarea; `.text` keeps NavigableString and CData only, so comments,
 *   doctypes, processing instructions and everything inside script, style, template, rt, rp are
 *   dropped; an end tag closes the most recent open tag of that name and everything above it).
 * Python 3.11 raises AssertionError on `<![` not followed by a known marked-section keyword; that
 * surfaces here as a TextError (Open-Sora itself crashes on such a prompt).
 */
import ENTITIES from './html-entities.json' with { type: 'json' };
import { TextError } from './errors.ts';

const HTML5 = ENTITIES as Record<string, string>;

/** Python `\s` in str patterns (str.isspace). */
export const PY_WS_CLASS = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const S = `[${PY_WS_CLASS}]`;
const NS = `[^${PY_WS_CLASS}]`;

const interestingNormal = /[&<]/g;
const incomplete = /&[a-zA-Z#]/y;
const entityref = /&([a-zA-Z][-.a-zA-Z0-9]*)[^a-zA-Z0-9]/uy;
const charref = /&#(?:[0-9]+|[xX][0-9a-fA-F]+)[^0-9a-fA-F]/uy;
const starttagopen = /<[a-zA-Z]/y;
const commentclose = new RegExp(`--${S}*>`, 'gu');
const tagfindTolerant = new RegExp(`([a-zA-Z][^\\t\\n\\r\\f />\\x00]*)(?:${S}|/(?!>))*`, 'uy');
const attrfindTolerant = new RegExp(
  `((?<=['"${PY_WS_CLASS}/])[^${PY_WS_CLASS}/>][^${PY_WS_CLASS}/=>]*)(${S}*=+${S}*('[^']*'|"[^"]*"|(?!['"])[^>${PY_WS_CLASS}]*))?(?:${S}|/(?!>))*`,
  'uy',
);
const locatestarttagendTolerant = new RegExp(
  `<[a-zA-Z][^\\t\\n\\r\\f />\\x00]*` +
    `(?:[${PY_WS_CLASS}/]*` +
    `(?:(?<=['"${PY_WS_CLASS}/])[^${PY_WS_CLASS}/>][^${PY_WS_CLASS}/=>]*` +
    `(?:${S}*=+${S}*(?:'[^']*'|"[^"]*"|(?!['"])[^>${PY_WS_CLASS}]*)${S}*)?(?:${S}|/(?!>))*` +
    `)*` +
    `)?` +
    `${S}*`,
  'uy',
);
const endtagfind = new RegExp(`</${S}*([a-zA-Z][-.a-zA-Z0-9:_]*)${S}*>`, 'uy');
const declnameMatch = new RegExp(`[a-zA-Z][-_.a-zA-Z0-9]*${S}*`, 'uy');
const markedsectionclose = new RegExp(`\\]${S}*\\]${S}*>`, 'gu');
const msmarkedsectionclose = new RegExp(`\\]${S}*>`, 'gu');

const VOID = new Set([
  'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'keygen', 'link', 'menuitem', 'meta', 'param', 'source', 'track', 'wbr',
  'basefont', 'bgsound', 'command', 'frame', 'image', 'isindex', 'nextid', 'spacer',
]);
const CONTAINERS = new Set(['rt', 'rp', 'style', 'script', 'template']);
const PRESERVE_WS = new Set(['pre', 'textarea']);
const CP1252: Record<number, number> = {
  0x80: 0x20ac, 0x82: 0x201a, 0x83: 0x0192, 0x84: 0x201e, 0x85: 0x2026, 0x86: 0x2020, 0x87: 0x2021, 0x88: 0x02c6, 0x89: 0x2030,
  0x8a: 0x0160, 0x8b: 0x2039, 0x8c: 0x0152, 0x8e: 0x017d, 0x91: 0x2018, 0x92: 0x2019, 0x93: 0x201c, 0x94: 0x201d, 0x95: 0x2022,
  0x96: 0x2013, 0x97: 0x2014, 0x98: 0x02dc, 0x99: 0x2122, 0x9a: 0x0161, 0x9b: 0x203a, 0x9c: 0x0153, 0x9e: 0x017e, 0x9f: 0x0178,
};

const pyStrip = (s: string) => s.replace(new RegExp(`^${S}+|${S}+$`, 'gu'), '');

function execAt(re: RegExp, s: string, i: number): RegExpExecArray | null {
  re.lastIndex = i;
  return re.exec(s);
}

/** A minimal Beautiful Soup tree builder: just what `.text` needs. */
class Soup {
  private readonly out: string[] = [];
  private current: string[] = [];
  private readonly stack: string[] = [];
  private containers = 0;
  private preserve = 0;

  data(d: string): void {
    this.current.push(d);
  }

  /** endData: flush the pending string with the given kind. */
  flush(kind: 'text' | 'cdata' | 'other' = 'text'): void {
    if (this.current.length === 0) return;
    let s = this.current.join('');
    this.current = [];
    if (this.preserve === 0 && /^[ \n\t\f\r]*$/.test(s)) s = s.includes('\n') ? '\n' : ' ';
    if (kind === 'other') return;
    if (kind === 'text' && this.containers > 0) return; // Script, Stylesheet, TemplateString, Ruby*
    this.out.push(s);
  }

  start(name: string): void {
    this.flush();
    this.stack.push(name);
    if (CONTAINERS.has(name)) this.containers++;
    if (PRESERVE_WS.has(name)) this.preserve++;
  }

  end(name: string): void {
    this.flush();
    const at = this.stack.lastIndexOf(name);
    if (at < 0) return;
    while (this.stack.length > at) {
      const t = this.stack.pop()!;
      if (CONTAINERS.has(t)) this.containers--;
      if (PRESERVE_WS.has(t)) this.preserve--;
    }
  }

  text(): string {
    this.flush();
    return this.out.join('');
  }
}

class Parser {
  private raw = '';
  private cdataElem: string | null = null;
  private interesting: RegExp = interestingNormal;
  private alreadyClosed: string[] = [];

  constructor(private readonly soup: Soup) {}

  feed(data: string): void {
    this.raw += data;
    this.goahead(false);
  }

  close(): void {
    this.goahead(true);
  }

  private goahead(end: boolean): void {
    const raw = this.raw;
    let i = 0;
    const n = raw.length;
    while (i < n) {
      let j: number;
      const re = this.interesting;
      re.lastIndex = i;
      const m = re.exec(raw);
      if (m) j = m.index;
      else {
        if (this.cdataElem) break;
        j = n;
      }
      if (i < j) this.soup.data(raw.slice(i, j));
      i = j;
      if (i === n) break;
      if (raw.startsWith('<', i)) {
        let k: number;
        if (execAt(starttagopen, raw, i)) k = this.parseStarttag(i);
        else if (raw.startsWith('</', i)) k = this.parseEndtag(i);
        else if (raw.startsWith('<!--', i)) k = this.parseComment(i);
        else if (raw.startsWith('<?', i)) k = this.parsePi(i);
        else if (raw.startsWith('<!', i)) k = this.parseHtmlDeclaration(i);
        else if (i + 1 < n) {
          this.soup.data('<');
          k = i + 1;
        } else break;
        if (k < 0) {
          if (!end) break;
          k = raw.indexOf('>', i + 1);
          if (k < 0) {
            k = raw.indexOf('<', i + 1);
            if (k < 0) k = i + 1;
          } else k += 1;
          this.soup.data(raw.slice(i, k));
        }
        i = k;
      } else if (raw.startsWith('&#', i)) {
        const cm = execAt(charref, raw, i);
        if (cm) {
          this.handleCharref(cm[0].slice(2, -1));
          let k = i + cm[0].length;
          if (!raw.startsWith(';', k - 1)) k -= 1;
          i = k;
          continue;
        }
        if (raw.slice(i).includes(';')) {
          this.soup.data(raw.slice(i, i + 2));
          i += 2;
        }
        break;
      } else if (raw.startsWith('&', i)) {
        const em = execAt(entityref, raw, i);
        if (em) {
          this.handleEntityref(em[1]!);
          let k = i + em[0].length;
          if (!raw.startsWith(';', k - 1)) k -= 1;
          i = k;
          continue;
        }
        const im = execAt(incomplete, raw, i);
        if (im) {
          if (end && im[0] === raw.slice(i)) i = i + 1;
          break;
        } else if (i + 1 < n) {
          this.soup.data('&');
          i += 1;
        } else break;
      }
    }
    if (end && i < n && !this.cdataElem) {
      this.soup.data(raw.slice(i, n));
      i = n;
    }
    this.raw = raw.slice(i);
  }

  private handleCharref(name: string): void {
    const num = name[0] === 'x' || name[0] === 'X' ? parseInt(name.replace(/^[xX]+/, ''), 16) : parseInt(name, 10);
    let data: string | null = null;
    if (num < 256) {
      if (num >= 0x80 && num <= 0x9f) data = CP1252[num] !== undefined ? String.fromCodePoint(CP1252[num]!) : null;
      else data = String.fromCharCode(num);
    }
    if (data === null && num <= 0x10ffff) data = String.fromCodePoint(num);
    this.soup.data(data || '\ufffd');
  }

  private handleEntityref(name: string): void {
    const ch = HTML5[name + ';'] ?? HTML5[name];
    this.soup.data(ch ?? `&${name}`);
  }

  private parseStarttag(i: number): number {
    const endpos = this.checkForWholeStartTag(i);
    if (endpos < 0) return endpos;
    const raw = this.raw;
    const m = execAt(tagfindTolerant, raw, i + 1)!;
    let k = i + 1 + m[0].length;
    const tag = m[1]!.toLowerCase();
    while (k < endpos) {
      const am = execAt(attrfindTolerant, raw, k);
      if (!am) break;
      k += am[0].length;
    }
    const end = pyStrip(raw.slice(k, endpos));
    if (end !== '>' && end !== '/>') {
      this.soup.data(raw.slice(i, endpos));
      return endpos;
    }
    if (end.endsWith('/>')) {
      this.startTag(tag, false);
      this.endTag(tag, true);
    } else {
      this.startTag(tag, true);
      if (tag === 'script' || tag === 'style') {
        this.cdataElem = tag;
        this.interesting = new RegExp(`</${S}*${tag}${S}*>`, 'giu');
      }
    }
    return endpos;
  }

  private checkForWholeStartTag(i: number): number {
    const raw = this.raw;
    const m = execAt(locatestarttagendTolerant, raw, i);
    if (!m) throw new Error('html.parser: we should not get here');
    const j = i + m[0].length;
    const next = raw.slice(j, j + 1);
    if (next === '>') return j + 1;
    if (next === '/') {
      if (raw.startsWith('/>', j)) return j + 2;
      if (raw.startsWith('/', j)) return -1;
      return j > i ? j : i + 1;
    }
    if (next === '') return -1;
    if (/^[a-zA-Z=/]$/.test(next)) return -1;
    return j > i ? j : i + 1;
  }

  private parseEndtag(i: number): number {
    const raw = this.raw;
    const gt = raw.indexOf('>', i + 1);
    if (gt < 0) return -1;
    const gtpos = gt + 1;
    const m = execAt(endtagfind, raw, i);
    if (!m) {
      if (this.cdataElem !== null) {
        this.soup.data(raw.slice(i, gtpos));
        return gtpos;
      }
      const nm = execAt(tagfindTolerant, raw, i + 2);
      if (!nm) {
        if (raw.slice(i, i + 3) === '</>') return i + 3;
        return this.parseBogusComment(i);
      }
      const tagname = nm[1]!.toLowerCase();
      const g = raw.indexOf('>', i + 2 + nm[0].length);
      this.endTag(tagname, true);
      return g + 1;
    }
    const elem = m[1]!.toLowerCase();
    if (this.cdataElem !== null && elem !== this.cdataElem) {
      this.soup.data(raw.slice(i, gtpos));
      return gtpos;
    }
    this.endTag(elem, true);
    this.cdataElem = null;
    this.interesting = interestingNormal;
    return gtpos;
  }

  private parseComment(i: number): number {
    commentclose.lastIndex = i + 4;
    const m = commentclose.exec(this.raw);
    if (!m) return -1;
    this.markup();
    return m.index + m[0].length;
  }

  private parseBogusComment(i: number): number {
    const pos = this.raw.indexOf('>', i + 2);
    if (pos < 0) return -1;
    this.markup();
    return pos + 1;
  }

  private parsePi(i: number): number {
    const pos = this.raw.indexOf('>', i + 2);
    if (pos < 0) return -1;
    this.markup();
    return pos + 1;
  }

  private parseHtmlDeclaration(i: number): number {
    const raw = this.raw;
    if (raw.slice(i, i + 4) === '<!--') return this.parseComment(i);
    if (raw.slice(i, i + 3) === '<![') return this.parseMarkedSection(i);
    if (raw.slice(i, i + 9).toLowerCase() === '<!doctype') {
      const gt = raw.indexOf('>', i + 9);
      if (gt < 0) return -1;
      this.markup();
      return gt + 1;
    }
    return this.parseBogusComment(i);
  }

  private parseMarkedSection(i: number): number {
    const raw = this.raw;
    const start = i + 3;
    if (start === raw.length) return -1;
    const m = execAt(declnameMatch, raw, start);
    if (!m) throw uncleanable(raw, i, 'expected name token');
    if (start + m[0].length === raw.length) return -1;
    const name = pyStrip(m[0]).toLowerCase();
    let close: RegExp;
    if (['temp', 'cdata', 'ignore', 'include', 'rcdata'].includes(name)) close = markedsectionclose;
    else if (['if', 'else', 'endif'].includes(name)) close = msmarkedsectionclose;
    else throw uncleanable(raw, i, `unknown status keyword ${JSON.stringify(name)} in marked section`);
    close.lastIndex = start;
    const cm = close.exec(raw);
    if (!cm) return -1;
    const body = raw.slice(start, cm.index);
    // Beautiful Soup unknown_decl: CDATA[...] becomes a CData string (kept by .text)
    this.soup.flush();
    if (body.toUpperCase().startsWith('CDATA[')) {
      this.soup.data(body.slice('CDATA['.length));
      this.soup.flush('cdata');
    } else {
      this.soup.data(body);
      this.soup.flush('other');
    }
    return cm.index + cm[0].length;
  }

  /** A comment, doctype or processing instruction: a string boundary whose text is dropped. */
  private markup(): void {
    this.soup.flush();
  }

  /** BeautifulSoupHTMLParser.handle_starttag. */
  private startTag(name: string, handleEmpty: boolean): void {
    this.soup.start(name);
    if (VOID.has(name) && handleEmpty) {
      this.soup.end(name);
      this.alreadyClosed.push(name);
    }
  }

  /** BeautifulSoupHTMLParser.handle_endtag. */
  private endTag(name: string, checkAlreadyClosed: boolean): void {
    const at = this.alreadyClosed.indexOf(name);
    if (checkAlreadyClosed && at >= 0) this.alreadyClosed.splice(at, 1);
    else this.soup.end(name);
  }
}

function uncleanable(raw: string, i: number, why: string): TextError {
  return new TextError(
    'SORA8112',
    `prompt cannot be cleaned: Open-Sora's HTML step (Python html.parser) fails at ${JSON.stringify(raw.slice(i, i + 20))}: ${why}`,
    'remove the "<![" from the prompt (Open-Sora itself raises AssertionError on it)',
  );
}

/** `BeautifulSoup(markup, features="html.parser").text` (bs4 4.11, Python 3.11). */
export function soupText(markup: string): string {
  const soup = new Soup();
  const p = new Parser(soup);
  p.feed(markup);
  p.close();
  return soup.text();
}
