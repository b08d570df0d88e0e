// Checks wire.js against docs/protocol.md's hex vectors and the shared
// expectations in docs/protocol-vectors.json. Run: node --test crates/framewire-web/assets/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { decodeMessage, StreamDecoder, WireError } from './wire.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const doc = readFileSync(join(root, 'docs', 'protocol.md'), 'utf8');
const expected = JSON.parse(readFileSync(join(root, 'docs', 'protocol-vectors.json'), 'utf8'));

/** name -> Uint8Array for every ```hex NAME block. */
function vectors(text) {
  const out = new Map();
  const re = /```hex ([a-z0-9-]+)\n([\s\S]*?)```/g;
  for (const m of text.matchAll(re)) {
    const hex = m[2].split('\n').map((l) => l.split('#')[0]).join(' ').trim().split(/\s+/).filter(Boolean);
    out.set(m[1], Uint8Array.from(hex.map((h) => {
      assert.match(h, /^[0-9a-f]{2}$/, `vector ${m[1]}: bad byte ${h}`);
      return parseInt(h, 16);
    })));
  }
  return out;
}

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** The neutral form docs/protocol-vectors.json uses (see its _about). */
function normalize(m) {
  const o = { type: m.type, channel: m.channel, payload_length: m.payloadLength };
  switch (m.type) {
    case 'video-frame':
      Object.assign(o, {
        sequence: m.sequence.toString(), timestamp_ns: m.timestamp_ns.toString(), flags: m.flags,
        keyframe: m.keyframe, discontinuity: m.discontinuity, data_hex: hex(m.data),
      });
      break;
    case 'control-request':
      Object.assign(o, { request_id: m.request_id, command: m.command });
      if (m.stream_open) o.stream_open = openFields(m.stream_open);
      break;
    case 'control-response':
      Object.assign(o, { request_id: m.request_id, status: m.status, command: m.command });
      if (m.message !== undefined) o.message = m.message;
      break;
    case 'stream-event':
      o.event = m.event;
      if (m.stream_open) o.stream_open = openFields(m.stream_open);
      else Object.assign(o, { timestamp_ns: m.timestamp_ns.toString(), reason: m.reason, message: m.message });
      break;
    default:
      o.body_hex = hex(m.body);
  }
  return o;
}

function openFields(s) {
  const { format, pixel_format, origin, width, height, fps_num, fps_den, name } = s;
  const o = { format, pixel_format, origin, width, height, fps_num, fps_den, name };
  if (s.codec_config && s.codec_config.length > 0) o.codec_config_hex = hex(s.codec_config);
  return o;
}

const all = vectors(doc);

test('the document has vectors', () => {
  assert.ok(all.size >= 20, `only ${all.size} vectors found`);
});

test('every expectation names a vector in docs/protocol.md', () => {
  for (const name of Object.keys(expected)) {
    if (name.startsWith('_')) continue;
    assert.ok(all.has(name), `docs/protocol-vectors.json names ${name}, docs/protocol.md has no such vector`);
  }
});

test('every vector decodes with a consistent header', () => {
  for (const [name, bytes] of all) {
    const m = decodeMessage(bytes);
    assert.equal(m.payloadLength, bytes.length - 8, name);
    assert.equal(typeof m.type, 'string', name);
  }
});

for (const [name, want] of Object.entries(expected)) {
  if (name.startsWith('_')) continue;
  test(`vector ${name}`, () => {
    assert.deepEqual(normalize(decodeMessage(all.get(name))), want);
  });
}

test('stream decoder splits and joins messages at any chunk size', () => {
  const names = Object.keys(expected).filter((n) => !n.startsWith('_'));
  const joined = Uint8Array.from(names.flatMap((n) => Array.from(all.get(n))));
  for (const size of [1, 3, 7, 64, joined.length]) {
    const d = new StreamDecoder();
    const got = [];
    for (let i = 0; i < joined.length; i += size) got.push(...d.push(joined.subarray(i, i + size)));
    assert.deepEqual(got.map(normalize), names.map((n) => expected[n]), `chunk size ${size}`);
  }
});

test('bad input is a WireError, never a crash or a wrong value', () => {
  const frame = all.get('video-frame');
  assert.throws(() => decodeMessage(frame.subarray(0, 5)), WireError);
  assert.throws(() => decodeMessage(frame.subarray(0, frame.length - 1)), WireError);
  assert.throws(() => decodeMessage(Uint8Array.of(...frame, 0)), WireError);
  // A payload too short for the video prefix.
  assert.throws(() => decodeMessage(Uint8Array.of(1, 0, 1, 0, 4, 0, 0, 0, 1, 2, 3, 4)), WireError);
  // Oversize payload_length refused from the header alone.
  assert.throws(() => new StreamDecoder(1024).push(Uint8Array.of(1, 0, 1, 0, 0, 0, 0, 1)), WireError);
  // Bad UTF-8 in a string field.
  const open = Uint8Array.from(all.get('stream-open-request'));
  open[open.length - 1] = 0xff;
  assert.throws(() => decodeMessage(open), WireError);
});
