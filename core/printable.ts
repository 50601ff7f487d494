/**
 * Text from untrusted files (tensor keys, metadata, paths, pickled strings) on a terminal: control
 * characters are shown escaped, never sent raw, so a key holding `\x1b]0;…\x07` or `\x1b[2J` cannot
 * retitle, clear or rewrite the user's terminal. Newlines and tabs are kept (they are layout).
 * JSON output needs nothing: JSON.stringify already escapes C0 controls.
 */

// C0 controls except \t \n, DEL, C1 controls (0x80-0x9f: 0x9b is a one-byte CSI), and the
// bidirectional overrides/isolates that can reorder what a line appears to say
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

export function printable(s: string): string {
  return s.replace(UNSAFE, (c) => {
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  });
}
