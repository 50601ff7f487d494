/**
 * Prompt cleaning against the REAL Open-Sora functions (expected-clean.json: text_preprocessing
 * from opensora/models/text_encoder/t5.py at v1.0.0/v1.1.0/v1.2.0/v1.3, identical outputs, run by
 * make_fixtures.py with Debian's python3-bs4 and the ftfy recorded in the file) on a hand-written
 * corpus plus 400 seeded fuzz prompts built from HTML/entity/URL/unicode fragments. `null` means the
 * Python function raised (html.parser AssertionError on "<![" + unknown keyword).
 */
import { describe, expect, it } from 'vitest';
import { cleanCaption, ftfyFixText, htmlUnescape, releaseTextSettings, textPreprocessing, unquotePlus } from '../../runtime/text/clean.ts';
import { TextError } from '../../runtime/text/errors.ts';
import { soupText } from '../../runtime/text/html-text.ts';
import { fixtureJson } from './helpers.ts';

const exp = fixtureJson<{ ftfy: string; rows: { text: string; expected: string | null }[] }>('expected-clean.json');

describe('text_preprocessing vs Open-Sora', () => {
  it('was generated with the real ftfy (not the NFC-only shim)', () => {
    expect(exp.ftfy).toMatch(/\(real\)$/);
  });

  it.each(exp.rows.map((r, i) => [i, JSON.stringify(r.text).slice(0, 60), r] as const))('#%i %s', (_i, _t, r) => {
    if (r.expected === null) {
      expect(() => textPreprocessing(r.text)).toThrow(TextError);
      try {
        textPreprocessing(r.text);
      } catch (e) {
        expect((e as TextError).code).toBe('SORA8112');
      }
    } else {
      expect(textPreprocessing(r.text)).toBe(r.expected);
    }
  });
});

// Expected values below were checked by running the same inputs through Python 3.11.2
// (urllib.parse, html, bs4 4.11.2 html.parser) and ftfy 6.3.1.
describe('pieces', () => {
  it('unquote_plus decodes UTF-8 runs and keeps bad escapes', () => {
    expect(unquotePlus('a+b%20c%E2%9C%93%ZZ%E2%82x')).toBe('a b c\u2713%ZZ\ufffdx');
  });
  it('html.unescape: longest prefix without ;, windows-1252 charrefs, invalid code points', () => {
    expect(htmlUnescape('&amp;&ampx &notit; &#150; &#x110000; &#1; &Eacute')).toBe('&&x ¬it; \u2013 \ufffd  É');
  });
  it('BeautifulSoup .text drops comments, script/style/template/rt, keeps CDATA, collapses whitespace-only strings', () => {
    expect(soupText('a<!-- c --><script>x</script><b> </b>\n<i>\n</i><![CDATA[d]]><rt>r</rt>e')).toBe('a \n\nde');
  });
  it('ftfy: ligatures, width, quotes, line breaks, controls, NFC', () => {
    expect(ftfyFixText('ﬁ Ｆｕｌｌ\u3000“q” ‘s’\r\nx\x00e\u0301')).toBe('fi Full "q" \'s\'\nxé');
  });
  it('one clean_caption pass lower-cases and strips markup', () => {
    expect(cleanCaption('  <p>A CAT</p> on www.example.com/x  ')).toBe('a cat on');
  });
});

describe('release settings', () => {
  it('max length and cleaning per release', () => {
    expect(releaseTextSettings('1.0')).toMatchObject({ maxLength: 120, clean: true });
    expect(releaseTextSettings('1.1')).toMatchObject({ maxLength: 200, clean: true });
    expect(releaseTextSettings('1.2')).toMatchObject({ maxLength: 300, clean: true });
    expect(releaseTextSettings('1.3')).toMatchObject({ maxLength: 300, clean: true });
    expect(releaseTextSettings('2.0')).toMatchObject({ maxLength: 512, clean: false });
    expect(() => releaseTextSettings('1.4')).toThrow(/unknown Open-Sora release/);
  });
});
