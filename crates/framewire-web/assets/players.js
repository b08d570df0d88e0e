// Players of a stream, used by the node panel's previews and by the
// multiview: `preview` draws framewire wire messages from a WebSocket
// (JPEG, or H.264 decoded by WebCodecs) on a canvas; `live` plays the
// stream over WebRTC (WHEP) in a <video>. Both measure how old each shown
// picture is (latency.js) and say so in their bar.
import { decodeMessage } from './wire.js';
import { readTimeCode, ageOf, ageMeter, note } from './latency.js';
import { el, enc } from './dom.js';


// ---- previews: framewire wire messages over a WebSocket -------------------------

/** The WebCodecs codec string of an H.264 stream, from the SPS in its
 *  codec configuration (profile, constraints, level), or baseline 3.0. */
function avcCodec(config) {
  const hex = (b) => b.toString(16).padStart(2, '0');
  for (let i = 0; config && i + 7 < config.length; i++) {
    if (config[i] === 0 && config[i + 1] === 0 && config[i + 2] === 1 && (config[i + 3] & 0x1f) === 7) {
      return `avc1.${hex(config[i + 4])}${hex(config[i + 5])}${hex(config[i + 6])}`;
    }
  }
  return 'avc1.42e01e';
}

/** Whether this browser decodes H.264 itself (WebCodecs). */
const webCodecs = typeof VideoDecoder === 'function' && window.isSecureContext;

export function preview(node, stream, { container, jpegOnly = false, onClose = () => {}, measure = true }) {
  const h = {};
  const canvas = el('canvas', { width: 320, height: 180 });
  const info = el('span', { text: 'connecting…' });
  const box = el('div', { class: 'preview', 'data-node': node, 'data-stream': stream },
    el('div', { class: 'bar' }, el('strong', { text: `${node} / ${stream}` }), info, el('span', { class: 'spacer' }),
      el('a', { href: `/stream/${enc(node)}/${enc(stream)}.mjpeg`, target: '_blank', text: 'MJPEG' }),
      el('button', { text: '×', title: 'close', onclick: () => close() })),
    canvas);
  container.append(box);
  // H.264 comes as it is when this browser decodes it; anything else as JPEG.
  const codec = webCodecs && !jpegOnly ? '?codec=h264' : '';
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/preview/${enc(node)}/${enc(stream)}${codec}`);
  ws.binaryType = 'arraybuffer';
  const ctx = canvas.getContext('2d');
  let busy = false, pending = null, frames = 0, decoder = null, started = false, h264 = false;
  const queued = [];
  const meter = ageMeter();
  const shown = (sequence) => {
    frames++;
    canvas.dataset.sequence = String(sequence);
    // A test-pattern picture says how old it is: capture to drawn here.
    // (A recording played back shows old pictures: not a latency.)
    const code = measure ? readTimeCode(ctx, canvas.width, canvas.height) : null;
    const age = code ? ageOf(code) : null;
    note(node, stream, h264 ? 'preview-h264' : 'preview', age);
    const p50 = meter(age);
    if (p50 !== null) canvas.dataset.latencyMs = p50.toFixed(1);
    info.textContent = `#${sequence} · ${frames} shown${p50 === null ? '' : ` · ${p50.toFixed(0)} ms old (p50)`}`;
  };
  const draw = async (m) => {
    busy = true;
    try {
      const bmp = await createImageBitmap(new Blob([m.data], { type: 'image/jpeg' }));
      if (canvas.width !== bmp.width || canvas.height !== bmp.height) { canvas.width = bmp.width; canvas.height = bmp.height; }
      ctx.drawImage(bmp, 0, 0);
      bmp.close();
      shown(m.sequence);
    } catch (e) {
      info.textContent = `bad frame: ${e.message}`;
    }
    busy = false;
    if (pending) { const p = pending; pending = null; draw(p); }
  };
  const startDecoder = async (o) => {
    const config = { codec: avcCodec(o.codec_config), optimizeForLatency: true };
    const ok = await VideoDecoder.isConfigSupported(config).then((r) => r.supported, () => false);
    if (!ok) { reopenAsJpeg(); return; }
    decoder = new VideoDecoder({
      output: (frame) => {
        if (canvas.width !== frame.displayWidth || canvas.height !== frame.displayHeight) {
          canvas.width = frame.displayWidth; canvas.height = frame.displayHeight;
        }
        ctx.drawImage(frame, 0, 0);
        shown(frame.timestamp);
        frame.close();
      },
      error: (e) => { info.textContent = `decoder: ${e.message}`; reopenAsJpeg(); },
    });
    decoder.configure(config);
    canvas.dataset.decoder = 'webcodecs';
    for (const m of queued.splice(0)) feed(m);
  };
  // Every frame in order, from the first keyframe on.
  const feed = (m) => {
    if (!started && !m.keyframe) return;
    started = true;
    if (decoder.state === 'configured') {
      decoder.decode(new EncodedVideoChunk({ type: m.keyframe ? 'key' : 'delta', timestamp: Number(m.sequence), data: m.data }));
    }
  };
  // A browser that cannot decode this stream gets JPEG instead.
  const reopenAsJpeg = () => {
    if (jpegOnly) return;
    const next = preview(node, stream, { container, jpegOnly: true, onClose, measure });
    box.replaceWith(next.box);
    stop();
    Object.assign(h, next);
  };
  ws.onmessage = (ev) => {
    let m;
    try { m = decodeMessage(new Uint8Array(ev.data)); } catch (e) { info.textContent = `protocol error: ${e.message}`; ws.close(); return; }
    if (m.type === 'control-request' && m.stream_open) {
      const o = m.stream_open;
      info.textContent = `${o.format} ${o.width}×${o.height}`;
      if (o.format === 'h264') { h264 = true; startDecoder(o); }
    } else if (m.type === 'video-frame') {
      if (h264) {
        if (decoder) feed(m); else if (queued.length < 120) queued.push(m);
      } else if (busy) {
        // Newest wins: a frame arriving while one decodes replaces the waiting one.
        pending = m;
      } else {
        draw(m);
      }
    } else if (m.type === 'stream-event') {
      info.textContent = `stream ${m.event}`;
    }
  };
  ws.onclose = () => { info.textContent += ' · closed'; };
  function stop() {
    ws.close();
    if (decoder && decoder.state !== 'closed') decoder.close();
  }
  function close() {
    stop();
    h.box.remove();
    onClose();
  }
  return Object.assign(h, { box, close });
}

// ---- live: WebRTC (WHEP), the MJPEG preview where it fails -------------------

/** Plays `stream` of `node` over WebRTC in a <video>; falls back to the
 *  preview (JPEG or WebCodecs) when WebRTC cannot connect. */
export function live(node, stream, { container, csrf, onClose = () => {}, onFallback }) {
  const h = {};
  const video = el('video', { autoplay: '', muted: '', playsinline: '', width: 320, height: 180 });
  video.muted = true;
  const info = el('span', { text: 'connecting (WebRTC)…' });
  const box = el('div', { class: 'preview live', 'data-node': node, 'data-stream': stream },
    el('div', { class: 'bar' }, el('strong', { text: `${node} / ${stream} · live` }), info, el('span', { class: 'spacer' }),
      el('button', { text: '×', title: 'close', onclick: () => close() })),
    video);
  container.append(box);
  let pc = null, location_ = null, closed = false, frames = 0;
  const teardown = () => {
    closed = true;
    if (pc) pc.close();
    if (location_) {
      const headers = csrf() ? { 'x-csrf-token': csrf() } : {};
      fetch(location_, { method: 'DELETE', headers, credentials: 'same-origin' }).catch(() => {});
    }
    box.remove();
  };
  const close = () => { teardown(); onClose(); };
  Object.assign(h, { box, close });
  // WebRTC failed: the caller shows something else instead (onClose is not called).
  const fallback = (why) => {
    if (closed) return;
    teardown();
    console.warn(`${node} / ${stream}: WebRTC failed (${why}); showing the preview instead`);
    onFallback(why);
  };
  connect();
  return h;

  async function connect() {
  try {
    if (typeof RTCPeerConnection !== 'function') throw new Error('no WebRTC in this browser');
    pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.ontrack = (ev) => { video.srcObject = ev.streams[0] || new MediaStream([ev.track]); };
    pc.onconnectionstatechange = () => {
      info.textContent = `WebRTC ${pc.connectionState}`;
      if (pc.connectionState === 'failed') fallback('connection failed');
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const headers = { 'content-type': 'application/sdp' };
    if (csrf()) headers['x-csrf-token'] = csrf();
    const r = await fetch(`/whep/${enc(node)}/${enc(stream)}`, { method: 'POST', headers, body: offer.sdp, credentials: 'same-origin' });
    if (r.status !== 201) throw new Error((await r.text()) || `${r.status}`);
    location_ = r.headers.get('location');
    await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
    // Count what is shown, and how old it is when shown: the RTP time is
    // the frame's capture time (90 kHz, same clock as Date.now() on this
    // host; another host's clock offset adds to it).
    const ages = [];
    const count = (now, meta) => {
      if (closed) return;
      frames++;
      video.dataset.frames = String(frames);
      if (meta && meta.rtpTimestamp !== undefined) {
        const shown = performance.timeOrigin + (meta.expectedDisplayTime ?? now);
        const age = ((Math.round(shown * 90) - meta.rtpTimestamp) % 2 ** 32 + 2 ** 32) % 2 ** 32 / 90;
        if (age < 10000) { ages.push(age); if (ages.length > 100) ages.shift(); }
        note(node, stream, 'whep', age);
      }
      const p50 = ages.length ? [...ages].sort((a, b) => a - b)[Math.floor(ages.length / 2)] : null;
      if (p50 !== null) video.dataset.latencyMs = p50.toFixed(1);
      info.textContent = `WebRTC · ${video.videoWidth}×${video.videoHeight} · ${frames} shown${p50 === null ? '' : ` · ${p50.toFixed(0)} ms old (p50)`}`;
      video.requestVideoFrameCallback(count);
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(count);
    setTimeout(() => { if (!closed && frames === 0) fallback('no picture within 10 s'); }, 10000);
  } catch (e) {
    fallback(e.message);
  }
  }
}

