// framewire wire format, decoding side, for the browser (an ES module with
// no dependencies). The normative description is docs/protocol.md; its hex
// vectors are checked against this module by wire.test.mjs, and against the
// Rust codec by the same expectation file (docs/protocol-vectors.json).
//
// Every message: an 8-byte header `message_type u16 | channel_id u16 |
// payload_length u32` (little-endian), then the payload. u64 fields are
// returned as BigInt.

export const HEADER_LEN = 8;
export const VIDEO_PREFIX_LEN = 20;
export const DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024;

function table(entries) {
  const byCode = new Map(entries);
  return (code) => byCode.get(code) ?? `unknown(0x${code.toString(16)})`;
}

export const messageTypeName = table([
  [0x0001, 'video-frame'], [0x0002, 'control-request'], [0x0003, 'control-response'],
  [0x0004, 'stream-event'], [0x0005, 'input-event'], [0x0006, 'audio-frame'],
  [0x0010, 'node-announcement'], [0x0011, 'node-goodbye'],
]);
export const commandName = table([
  [0x0001, 'hello'], [0x0002, 'auth'], [0x0010, 'list-streams'], [0x0011, 'subscribe'],
  [0x0012, 'unsubscribe'], [0x0013, 'stream-open'], [0x0014, 'get-stats'], [0x0015, 'connect'],
  [0x0016, 'disconnect'], [0x0017, 'describe'], [0x0018, 'snapshot'], [0x0019, 'shutdown'],
  [0x001a, 'update-subscription'],
  [0x001b, 'request-keyframe'],
  [0x0020, 'v4l2-list-devices'], [0x0021, 'v4l2-list-controls'], [0x0022, 'v4l2-get-controls'],
  [0x0023, 'v4l2-set-controls'], [0x0030, 'list-monitors'], [0x0040, 'watch-status'],
  [0x0041, 'status-report'], [0x0050, 'source-add'], [0x0051, 'source-set'], [0x0052, 'source-remove'],
]);
export const statusName = table([
  [0, 'ok'], [1, 'unknown-command'], [2, 'bad-request'], [3, 'not-found'], [4, 'unsupported-format'],
  [5, 'permission-denied'], [6, 'busy'], [7, 'internal'], [8, 'version-mismatch'],
]);
export const formatName = table([
  [1, 'mjpeg'], [2, 'h264'], [3, 'h265'], [4, 'av1'], [5, 'ffv1'], [6, 'prores'], [7, 'qoi'],
  [8, 'raw'], [9, 'raw-zstd'],
]);
export const pixelFormatName = table([
  [0, 'none'], [1, 'bgra'], [2, 'rgba'], [3, 'bgr'], [4, 'yuv420p'], [5, 'yuyv422'],
]);
export const originName = table([
  [0, 'unspecified'], [1, 'device-native'], [2, 'libjpeg-turbo'], [3, 'libavcodec'],
  [4, 'ffmpeg-subprocess'], [5, 'vaapi'], [6, 'nvenc'], [7, 'software'],
]);
export const eventName = table([[1, 'interrupted'], [2, 'resumed'], [3, 'closed'], [4, 'format-changed']]);
export const reasonName = table([
  [0, 'unspecified'], [1, 'device-lost'], [2, 'upstream-lost'], [3, 'shutdown'], [4, 'unsubscribed'], [5, 'error'],
  [6, 'stalled'], [7, 'source-removed'], [8, 'reconfigured'],
]);

/** A decoding failure: short input, bad UTF-8, oversize payload. */
export class WireError extends Error {}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads little-endian fields from a Uint8Array, failing on short input. */
class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.o = 0;
  }
  need(n, field) {
    if (this.o + n > this.b.length) {
      throw new WireError(`short input reading ${field}: need ${n} bytes at offset ${this.o}, have ${this.b.length - this.o}`);
    }
  }
  u8(f) { this.need(1, f); return this.v.getUint8(this.o++); }
  u16(f) { this.need(2, f); const x = this.v.getUint16(this.o, true); this.o += 2; return x; }
  u32(f) { this.need(4, f); const x = this.v.getUint32(this.o, true); this.o += 4; return x; }
  u64(f) { this.need(8, f); const x = this.v.getBigUint64(this.o, true); this.o += 8; return x; }
  string(f) {
    const n = this.u16(f);
    this.need(n, f);
    const s = this.b.subarray(this.o, this.o + n);
    this.o += n;
    try { return utf8.decode(s); } catch { throw new WireError(`${f} is not UTF-8`); }
  }
  rest() { const r = this.b.subarray(this.o); this.o = this.b.length; return r; }
  remaining() { return this.b.length - this.o; }
  blob16(f) { const n = this.u16(f); this.need(n, f); const r = this.b.subarray(this.o, this.o + n); this.o += n; return r; }
}

/** The header of `bytes` (at least 8 bytes). */
export function decodeHeader(bytes) {
  const r = new Reader(bytes);
  return { messageType: r.u16('message_type'), channel: r.u16('channel_id'), payloadLength: r.u32('payload_length') };
}

/** STREAM_OPEN fields. */
export function decodeStreamOpen(r) {
  const format = r.u16('format');
  const pixelFormat = r.u16('pixel_format');
  const origin = r.u16('origin');
  return {
    format: formatName(format), formatCode: format,
    pixel_format: pixelFormatName(pixelFormat), origin: originName(origin),
    width: r.u32('width'), height: r.u32('height'),
    fps_num: r.u32('fps_num'), fps_den: r.u32('fps_den'),
    name: r.string('name'),
  };
}

function decodePayload(h, payload) {
  const r = new Reader(payload);
  const msg = { type: messageTypeName(h.messageType), messageType: h.messageType, channel: h.channel, payloadLength: h.payloadLength };
  switch (h.messageType) {
    case 0x0001: {
      msg.sequence = r.u64('sequence');
      msg.timestamp_ns = r.u64('timestamp_ns');
      msg.flags = r.u32('flags');
      msg.keyframe = (msg.flags & 1) !== 0;
      msg.discontinuity = (msg.flags & 2) !== 0;
      msg.data = r.rest();
      break;
    }
    case 0x0002: {
      msg.request_id = r.u16('request_id');
      const command = r.u16('command');
      msg.command = commandName(command);
      if (command === 0x0013) {
        msg.stream_open = decodeStreamOpen(r);
        // H.264/H.265 parameter sets, when the sender knows them.
        if (r.remaining() > 0) msg.stream_open.codec_config = r.blob16('codec_config');
      }
      msg.body = r.rest();
      break;
    }
    case 0x0003: {
      msg.request_id = r.u16('request_id');
      const status = r.u16('status');
      msg.status = statusName(status);
      msg.command = commandName(r.u16('command'));
      if (status !== 0) msg.message = r.string('message');
      msg.body = r.rest();
      break;
    }
    case 0x0004: {
      const code = r.u8('event_code');
      msg.event = eventName(code);
      if (code >= 1 && code <= 3) {
        msg.timestamp_ns = r.u64('timestamp_ns');
        msg.reason = reasonName(r.u8('reason'));
        msg.message = r.string('message');
      } else if (code === 4) {
        msg.stream_open = decodeStreamOpen(r);
        if (r.remaining() > 0) msg.stream_open.codec_config = r.blob16('codec_config');
      } else {
        msg.body = r.rest();
      }
      break;
    }
    default:
      msg.body = r.rest();
  }
  return msg;
}

/**
 * Decodes exactly one whole message (as one WebSocket binary message
 * carries). Throws WireError on short, long or malformed input.
 */
export function decodeMessage(bytes, maxPayload = DEFAULT_MAX_PAYLOAD) {
  if (!(bytes instanceof Uint8Array)) bytes = new Uint8Array(bytes);
  if (bytes.length < HEADER_LEN) throw new WireError(`short input: ${bytes.length} bytes, a header is ${HEADER_LEN}`);
  const h = decodeHeader(bytes);
  if (h.payloadLength > maxPayload) throw new WireError(`payload_length ${h.payloadLength} above the limit ${maxPayload}`);
  if (bytes.length !== HEADER_LEN + h.payloadLength) {
    throw new WireError(`message is ${bytes.length} bytes, its header says ${HEADER_LEN + h.payloadLength}`);
  }
  return decodePayload(h, bytes.subarray(HEADER_LEN));
}

/**
 * Splits a byte stream into messages: `push(chunk)` returns the messages
 * completed by that chunk; partial input waits for the next chunk.
 */
export class StreamDecoder {
  constructor(maxPayload = DEFAULT_MAX_PAYLOAD) { this.max = maxPayload; this.buf = new Uint8Array(0); }
  push(chunk) {
    const c = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
    const joined = new Uint8Array(this.buf.length + c.length);
    joined.set(this.buf); joined.set(c, this.buf.length);
    const out = [];
    let off = 0;
    while (joined.length - off >= HEADER_LEN) {
      const h = decodeHeader(joined.subarray(off));
      if (h.payloadLength > this.max) throw new WireError(`payload_length ${h.payloadLength} above the limit ${this.max}`);
      const end = off + HEADER_LEN + h.payloadLength;
      if (end > joined.length) break;
      out.push(decodePayload(h, joined.subarray(off + HEADER_LEN, end)));
      off = end;
    }
    this.buf = joined.slice(off);
    return out;
  }
}
