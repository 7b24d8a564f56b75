// chart.png carries the hash of the page it was rendered from, in a PNG tEXt chunk, so
// `pnpm chart` renders it again only when the page changed. A screenshot is not
// byte-stable across machines or chromium versions; the page is, so with nothing new in
// bench-results/ the work tree stays clean.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
export const PAGE_HASH_KEY = 'aios-page-sha256';

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** The PNG's chunks as [type, data, start, end]. Throws on a file that is not a PNG. */
function chunks(png: Buffer): { type: string; data: Buffer; start: number; end: number }[] {
  if (!png.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG file');
  const out = [];
  for (let at = 8; at + 12 <= png.length; ) {
    const len = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    out.push({ type, data: png.subarray(at + 8, at + 8 + len), start: at, end: at + 12 + len });
    at += 12 + len;
  }
  return out;
}

/** The text stored under `key` in a PNG's tEXt chunks, or undefined (also when the file is missing or not a PNG). */
export function readPngText(file: string, key: string): string | undefined {
  if (!existsSync(file)) return undefined;
  try {
    for (const c of chunks(readFileSync(file))) {
      if (c.type !== 'tEXt') continue;
      const nul = c.data.indexOf(0);
      if (nul > 0 && c.data.toString('latin1', 0, nul) === key) return c.data.toString('latin1', nul + 1);
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** Writes `key` = `value` into the PNG as a tEXt chunk right after IHDR (replacing an earlier one of that key). */
export function writePngText(file: string, key: string, value: string): void {
  const png = readFileSync(file);
  const all = chunks(png);
  const ihdr = all[0];
  if (!ihdr || ihdr.type !== 'IHDR') throw new Error(`${file}: no IHDR chunk first`);
  const kept = all.slice(1).filter((c) => !(c.type === 'tEXt' && c.data.indexOf(0) > 0 && c.data.toString('latin1', 0, c.data.indexOf(0)) === key));
  const text = chunk('tEXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0]), Buffer.from(value, 'latin1')]));
  writeFileSync(file, Buffer.concat([SIGNATURE, png.subarray(ihdr.start, ihdr.end), text, ...kept.map((c) => png.subarray(c.start, c.end))]));
}
