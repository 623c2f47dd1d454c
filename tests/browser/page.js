// The in-page half of the browser harness (see README.md). harness.mjs injects this file
// into a blank page and calls `window.__h.handle(cmd)` for every command; events leave the
// page through `window.__emit(obj)`, a function harness.mjs exposes, which prints one line.
//
// Every handler returns `{ ok: value }` or `{ error: "Name: message" }`; nothing throws out
// of `handle`, so an error always reaches stdout as a reply to the command that caused it.
(() => {
  'use strict';

  const emit = (ev) => {
    try {
      window.__emit(ev);
    } catch (e) {
      console.error('emit failed', e);
    }
  };

  /** pc index -> { pc, chain, senders: RTCRtpSender[], transceivers: RTCRtpTransceiver[] } */
  const pcs = new Map();
  /** channel key -> { key, pcIndex, ch, mode, notify, collector } */
  const channels = new Map();
  let nextChannelKey = 0;
  /** The fake-device stream from getUserMedia, opened once in init(). */
  let media = null;

  // ---- the bulk pattern: byte i = ((i * 31) ^ (i >> 9)) & 255 -------------------------------
  // Its period is 2^17 bytes (i*31 mod 256 repeats every 256, (i >> 9) mod 256 every 2^17),
  // so one period plus one chunk lets every chunk be a subarray, without copying.
  const PERIOD = 1 << 17;
  let pattern = new Uint8Array(0);
  function patternFor(chunk) {
    if (pattern.length < PERIOD + chunk) {
      pattern = new Uint8Array(PERIOD + chunk);
      for (let i = 0; i < pattern.length; i++) pattern[i] = ((i * 31) ^ (i >> 9)) & 255;
    }
    return pattern;
  }

  // ---- helpers ---------------------------------------------------------------------------
  class HarnessError extends Error {
    constructor(message) {
      super(message);
      this.name = 'HarnessError';
    }
  }
  const fail = (msg) => {
    throw new HarnessError(msg);
  };

  function b64encode(u8) {
    let s = '';
    for (let i = 0; i < u8.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
    }
    return btoa(s);
  }
  function b64decode(s) {
    const bin = atob(s);
    const u8 = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    return u8;
  }
  const utf8 = new TextEncoder();
  const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');

  function pcIndexOf(cmd) {
    const i = cmd.pc ?? 0;
    if (!Number.isInteger(i) || i < 0) fail(`"pc" must be a non-negative integer, got ${JSON.stringify(cmd.pc)}`);
    return i;
  }
  function getPc(cmd) {
    const i = pcIndexOf(cmd);
    const st = pcs.get(i);
    if (!st) fail(`no RTCPeerConnection ${i} (send {"op":"create","pc":${i}} first)`);
    return st;
  }
  function getChannel(cmd) {
    if (cmd.channel === undefined) fail('missing "channel"');
    const st = channels.get(cmd.channel);
    if (!st) fail(`no data channel with key ${JSON.stringify(cmd.channel)}`);
    return st;
  }
  function requireOpen(cst) {
    if (cst.ch.readyState !== 'open') fail(`channel ${cst.key} (${cst.ch.label}) is ${cst.ch.readyState}, not open`);
  }
  function dropNulls(obj) {
    const out = {};
    for (const [k, v] of Object.entries(obj ?? {})) if (v !== null && v !== undefined) out[k] = v;
    return out;
  }
  function trackFor(kind) {
    if (kind !== 'audio' && kind !== 'video') fail(`"kind" must be "audio" or "video", got ${JSON.stringify(kind)}`);
    if (!media) fail('no fake media stream (getUserMedia failed at start; see the ready event)');
    const t = kind === 'audio' ? media.getAudioTracks()[0] : media.getVideoTracks()[0];
    if (!t) fail(`the fake media stream has no ${kind} track`);
    // A clone, so the same fake source can be added to several transceivers and connections.
    return t.clone();
  }
  /** The first a=ssrc of the m-section with this mid in an SDP text, if any. */
  function ssrcForMid(sdp, mid) {
    if (!sdp || mid === null || mid === undefined) return null;
    for (const section of sdp.split(/\r?\nm=/).slice(1)) {
      const lines = section.split(/\r?\n/);
      if (!lines.some((l) => l === `a=mid:${mid}`)) continue;
      for (const l of lines) {
        const m = /^a=ssrc:(\d+) /.exec(l);
        if (m) return Number(m[1]);
      }
      return null;
    }
    return null;
  }
  function channelInfo(cst) {
    const ch = cst.ch;
    return {
      channel: cst.key,
      pc: cst.pcIndex,
      label: ch.label,
      protocol: ch.protocol,
      id: ch.id,
      ordered: ch.ordered,
      maxRetransmits: ch.maxRetransmits,
      maxPacketLifeTime: ch.maxPacketLifeTime,
      negotiated: ch.negotiated,
      readyState: ch.readyState,
      bufferedAmount: ch.bufferedAmount,
      mode: cst.mode,
    };
  }
  /** Resolves at once when bufferedAmount <= low, else on bufferedamountlow; rejects on close or stall. */
  function waitLow(cst, low, stallMs) {
    const ch = cst.ch;
    return new Promise((resolve, reject) => {
      const done = (fn, arg) => {
        clearTimeout(timer);
        ch.removeEventListener('bufferedamountlow', onLow);
        ch.removeEventListener('close', onClose);
        fn(arg);
      };
      const onLow = () => done(resolve);
      const onClose = () => done(reject, new HarnessError(`channel ${cst.key} closed while sending`));
      const timer = setTimeout(
        () => done(reject, new HarnessError(`send stalled: bufferedAmount stayed at ${ch.bufferedAmount} for ${stallMs} ms`)),
        stallMs,
      );
      ch.addEventListener('bufferedamountlow', onLow);
      ch.addEventListener('close', onClose);
      if (ch.bufferedAmount <= low) done(resolve);
    });
  }

  // ---- data channels ---------------------------------------------------------------------
  function newCollector() {
    return { bytes: 0, messages: 0, parts: [], firstMs: null, lastMs: null, waiters: [] };
  }
  function registerChannel(pcIndex, ch) {
    const key = nextChannelKey++;
    const cst = { key, pcIndex, ch, mode: 'events', notify: true, collector: null };
    channels.set(key, cst);
    ch.binaryType = 'arraybuffer';
    ch.addEventListener('open', () => emit({ event: 'open', pc: pcIndex, channel: key, label: ch.label, id: ch.id }));
    ch.addEventListener('closing', () => emit({ event: 'closing', pc: pcIndex, channel: key, label: ch.label }));
    ch.addEventListener('close', () => {
      emit({ event: 'close', pc: pcIndex, channel: key, label: ch.label });
      const c = cst.collector;
      if (c) for (const w of c.waiters.splice(0)) w.reject(new HarnessError(`channel ${key} closed after ${c.bytes} of ${w.bytes} bytes`));
    });
    ch.addEventListener('error', (e) =>
      emit({ event: 'channelerror', pc: pcIndex, channel: key, label: ch.label, error: String(e.error?.message ?? e.error ?? e) }),
    );
    ch.addEventListener('message', (e) => onMessage(cst, e.data));
    return cst;
  }
  function onMessage(cst, data) {
    const isText = typeof data === 'string';
    if (cst.mode === 'echo') {
      try {
        cst.ch.send(data);
      } catch (err) {
        emit({ event: 'channelerror', pc: cst.pcIndex, channel: cst.key, error: `echo failed: ${err.name}: ${err.message}` });
      }
    } else if (cst.mode === 'file') {
      receiveFile(cst, data);
      return;
    } else if (cst.mode === 'collect') {
      const c = cst.collector;
      const now = performance.now();
      const part = isText ? utf8.encode(data) : new Uint8Array(data);
      if (c.firstMs === null) c.firstMs = now;
      c.lastMs = now;
      c.parts.push(part);
      c.bytes += part.length;
      c.messages += 1;
      for (let i = c.waiters.length - 1; i >= 0; i--) {
        if (c.bytes >= c.waiters[i].bytes) c.waiters.splice(i, 1)[0].resolve();
      }
    }
    if (cst.mode === 'events' || cst.notify) {
      const ev = { event: 'message', pc: cst.pcIndex, channel: cst.key };
      if (isText) {
        ev.text = data;
        ev.bytes = utf8.encode(data).length;
      } else {
        const u8 = new Uint8Array(data);
        ev.binary = b64encode(u8);
        ev.bytes = u8.length;
      }
      emit(ev);
    }
  }

  /**
   * A file as webrtc-peer sends it, as a browser page would take it: a JSON text header
   * {name, size}, then binary messages; once `size` bytes are in, the page answers
   * "sha256:<hex>" on the channel and reports {event: "file", name, size, sha256}.
   */
  function receiveFile(cst, data) {
    const f = (cst.file ??= { header: null, parts: [], bytes: 0, done: false });
    if (f.done) return;
    if (f.header === null) {
      try {
        f.header = JSON.parse(data);
      } catch (err) {
        emit({ event: 'channelerror', pc: cst.pcIndex, channel: cst.key, error: `file header: ${err.message}` });
        f.done = true;
      }
      return;
    }
    const part = typeof data === 'string' ? utf8.encode(data) : new Uint8Array(data);
    f.parts.push(part);
    f.bytes += part.length;
    if (f.bytes < f.header.size) return;
    f.done = true;
    const all = new Uint8Array(f.bytes);
    let off = 0;
    for (const p of f.parts) {
      all.set(p, off);
      off += p.length;
    }
    crypto.subtle.digest('SHA-256', all).then((d) => {
      const sha256 = hex(d);
      cst.ch.send(`sha256:${sha256}`);
      emit({ event: 'file', pc: cst.pcIndex, channel: cst.key, name: f.header.name, size: f.bytes, sha256 });
    });
  }

  // ---- peer connections --------------------------------------------------------------------
  async function makeConfig(config) {
    const cfg = { ...(config ?? {}) };
    // Certificates cannot travel as JSON; accept key-generation parameters instead,
    // e.g. [{"name":"ECDSA","namedCurve":"P-256"}] or [{"name":"RSASSA-PKCS1-v1_5",...}].
    if (Array.isArray(cfg.certificates)) {
      cfg.certificates = await Promise.all(cfg.certificates.map((alg) => RTCPeerConnection.generateCertificate(alg)));
    }
    return cfg;
  }
  function wirePc(index, pc) {
    const e = (event, extra) => emit({ event, pc: index, ...extra });
    pc.addEventListener('icecandidate', (ev) => e('icecandidate', { candidate: ev.candidate ? ev.candidate.toJSON() : null }));
    pc.addEventListener('icecandidateerror', (ev) =>
      e('icecandidateerror', { url: ev.url, address: ev.address, port: ev.port, errorCode: ev.errorCode, errorText: ev.errorText }),
    );
    pc.addEventListener('icegatheringstatechange', () => e('icegatheringstatechange', { state: pc.iceGatheringState }));
    pc.addEventListener('iceconnectionstatechange', () => e('iceconnectionstatechange', { state: pc.iceConnectionState }));
    pc.addEventListener('connectionstatechange', () => e('connectionstatechange', { state: pc.connectionState }));
    pc.addEventListener('signalingstatechange', () => e('signalingstatechange', { state: pc.signalingState }));
    pc.addEventListener('negotiationneeded', () => e('negotiationneeded'));
    pc.addEventListener('datachannel', (ev) => {
      const cst = registerChannel(index, ev.channel);
      const st = pcs.get(index);
      if (st?.incoming === 'file') cst.mode = 'file';
      e('datachannel', channelInfo(cst));
    });
    pc.addEventListener('track', (ev) => {
      const t = ev.transceiver;
      e('track', {
        kind: ev.track.kind,
        mid: t?.mid ?? null,
        trackId: ev.track.id,
        streams: ev.streams.map((s) => s.id),
        ssrc: ssrcForMid(pc.remoteDescription?.sdp, t?.mid),
      });
    });
  }
  /** Operations that change a connection's state run one after another, in arrival order. */
  function serial(st, fn) {
    const run = st.chain.then(fn, fn);
    st.chain = run.catch(() => {});
    return run;
  }
  const descJson = (d) => (d ? { type: d.type, sdp: d.sdp } : null);

  const ops = {
    async create(cmd) {
      const index = pcIndexOf(cmd);
      const old = pcs.get(index);
      if (old && old.pc.connectionState !== 'closed') fail(`RTCPeerConnection ${index} exists (close it first)`);
      const pc = new RTCPeerConnection(await makeConfig(cmd.config));
      // incoming: "file" makes channels the remote opens receive a file (receiveFile).
      const st = { pc, chain: Promise.resolve(), senders: [], transceivers: [], incoming: cmd.incoming ?? null };
      pcs.set(index, st);
      wirePc(index, pc);
      return { pc: index };
    },
    createDataChannel(cmd) {
      const st = getPc(cmd);
      return serial(st, () => {
        const ch = st.pc.createDataChannel(String(cmd.label ?? ''), dropNulls(cmd.init));
        const cst = registerChannel(pcIndexOf(cmd), ch);
        return channelInfo(cst);
      });
    },
    addTrack(cmd) {
      const st = getPc(cmd);
      return serial(st, () => {
        const track = trackFor(cmd.kind);
        const sender = st.pc.addTrack(track, media);
        st.senders.push(sender);
        return { sender: st.senders.length - 1, trackId: track.id, streamId: media.id };
      });
    },
    addTransceiver(cmd) {
      const st = getPc(cmd);
      return serial(st, () => {
        const init = dropNulls({ direction: cmd.direction, sendEncodings: cmd.sendEncodings });
        // With "track": true the transceiver sends the fake device's track; otherwise it has none.
        const what = cmd.track ? trackFor(cmd.kind) : cmd.kind;
        if (!cmd.track && what !== 'audio' && what !== 'video') fail(`"kind" must be "audio" or "video", got ${JSON.stringify(what)}`);
        if (cmd.track) init.streams = [media];
        const t = st.pc.addTransceiver(what, init);
        st.transceivers.push(t);
        return { transceiver: st.transceivers.length - 1 };
      });
    },
    transceivers(cmd) {
      const st = getPc(cmd);
      return st.pc.getTransceivers().map((t) => ({
        mid: t.mid,
        kind: t.receiver.track.kind,
        direction: t.direction,
        currentDirection: t.currentDirection,
        senderTrack: t.sender.track?.id ?? null,
      }));
    },
    createOffer(cmd) {
      const st = getPc(cmd);
      return serial(st, async () => {
        const offer = await st.pc.createOffer(cmd.options ?? {});
        if (cmd.setLocal !== false) await st.pc.setLocalDescription(offer);
        return descJson(offer);
      });
    },
    createAnswer(cmd) {
      const st = getPc(cmd);
      return serial(st, async () => {
        const answer = await st.pc.createAnswer(cmd.options ?? {});
        if (cmd.setLocal !== false) await st.pc.setLocalDescription(answer);
        return descJson(answer);
      });
    },
    setLocalDescription(cmd) {
      const st = getPc(cmd);
      return serial(st, async () => {
        // Without "desc" this is the implicit form, which creates the offer or answer itself.
        if (cmd.desc) await st.pc.setLocalDescription(cmd.desc);
        else await st.pc.setLocalDescription();
        return descJson(st.pc.localDescription);
      });
    },
    setRemoteDescription(cmd) {
      const st = getPc(cmd);
      if (!cmd.desc || typeof cmd.desc.type !== 'string') fail('"desc" must be {type, sdp}');
      return serial(st, async () => {
        await st.pc.setRemoteDescription(cmd.desc);
        return true;
      });
    },
    addIceCandidate(cmd) {
      const st = getPc(cmd);
      if (!('candidate' in cmd)) fail('missing "candidate" (an RTCIceCandidateInit, or null for end of candidates)');
      return serial(st, async () => {
        // null (or a candidate with an empty "candidate" string) signals end of candidates.
        if (cmd.candidate === null) await st.pc.addIceCandidate();
        else await st.pc.addIceCandidate(cmd.candidate);
        return true;
      });
    },
    restartIce(cmd) {
      getPc(cmd).pc.restartIce();
      return true;
    },
    description(cmd) {
      const pc = getPc(cmd).pc;
      return {
        local: descJson(pc.localDescription),
        remote: descJson(pc.remoteDescription),
        signalingState: pc.signalingState,
        iceGatheringState: pc.iceGatheringState,
        iceConnectionState: pc.iceConnectionState,
        connectionState: pc.connectionState,
      };
    },
    /** Waits until ICE gathering is complete; replies with the local description, candidates included. */
    async waitGathering(cmd) {
      const pc = getPc(cmd).pc;
      while (pc.iceGatheringState !== 'complete') {
        await new Promise((r) => pc.addEventListener('icegatheringstatechange', r, { once: true }));
      }
      return descJson(pc.localDescription);
    },
    send(cmd) {
      const cst = getChannel(cmd);
      requireOpen(cst);
      if (typeof cmd.text === 'string') {
        cst.ch.send(cmd.text);
        return { bytes: utf8.encode(cmd.text).length };
      }
      if (typeof cmd.binary === 'string') {
        const u8 = b64decode(cmd.binary);
        cst.ch.send(u8);
        return { bytes: u8.length };
      }
      fail('send needs "text" (a string) or "binary" (base64)');
    },
    async sendBulk(cmd) {
      const cst = getChannel(cmd);
      requireOpen(cst);
      const total = cmd.bytes;
      const chunk = cmd.chunk ?? 16384;
      const high = cmd.highWater ?? 1 << 20;
      const low = cmd.lowWater ?? Math.min(256 * 1024, high >> 1);
      const stallMs = cmd.stall_ms ?? 20000;
      if (!Number.isSafeInteger(total) || total < 0) fail('"bytes" must be a non-negative integer');
      if (!Number.isSafeInteger(chunk) || chunk < 1) fail('"chunk" must be a positive integer');
      const pat = patternFor(chunk);
      const ch = cst.ch;
      ch.bufferedAmountLowThreshold = low;
      const startMs = performance.now();
      let sent = 0;
      let messages = 0;
      let waits = 0;
      while (sent < total) {
        if (ch.readyState !== 'open') fail(`channel ${cst.key} is ${ch.readyState} after ${sent} of ${total} bytes`);
        const n = Math.min(chunk, total - sent);
        if (ch.bufferedAmount > 0 && ch.bufferedAmount + n > high) {
          waits++;
          await waitLow(cst, low, stallMs);
          continue;
        }
        const off = sent % PERIOD;
        ch.send(pat.subarray(off, off + n));
        sent += n;
        messages++;
      }
      return { bytes: sent, messages, waits, startMs, endMs: performance.now(), timeOrigin: performance.timeOrigin, bufferedAmount: ch.bufferedAmount };
    },
    echo(cmd) {
      const cst = getChannel(cmd);
      cst.mode = cmd.on === false ? 'events' : 'echo';
      cst.notify = cst.mode === 'events' || cmd.notify === true;
      return channelInfo(cst);
    },
    collect(cmd) {
      const cst = getChannel(cmd);
      cst.mode = 'collect';
      cst.notify = cmd.notify === true;
      cst.collector = newCollector();
      return channelInfo(cst);
    },
    async digest(cmd) {
      const cst = getChannel(cmd);
      const c = cst.collector;
      if (!c) fail(`channel ${cst.key} is not collecting (send {"op":"collect"} first)`);
      const want = cmd.bytes ?? 0;
      if (c.bytes < want) {
        if (cst.ch.readyState === 'closed') fail(`channel ${cst.key} closed after ${c.bytes} of ${want} bytes`);
        await new Promise((resolve, reject) => c.waiters.push({ bytes: want, resolve, reject }));
      }
      const all = new Uint8Array(c.bytes);
      let off = 0;
      for (const p of c.parts) {
        all.set(p, off);
        off += p.length;
      }
      c.parts = all.length ? [all] : [];
      const sha256 = hex(await crypto.subtle.digest('SHA-256', all));
      const res = { bytes: c.bytes, messages: c.messages, sha256, firstMs: c.firstMs, lastMs: c.lastMs, timeOrigin: performance.timeOrigin };
      if (cmd.reset) cst.collector = newCollector();
      return res;
    },
    channelInfo(cmd) {
      return channelInfo(getChannel(cmd));
    },
    closeChannel(cmd) {
      getChannel(cmd).ch.close();
      return true;
    },
    async getStats(cmd) {
      const pc = getPc(cmd).pc;
      const report = await pc.getStats();
      return [...report.values()].map((s) => ({ ...s }));
    },
    close(cmd) {
      const st = getPc(cmd);
      st.pc.close();
      return true;
    },
    now() {
      return { ms: performance.now(), timeOrigin: performance.timeOrigin };
    },
  };

  async function init(opts = {}) {
    const info = { secureContext: window.isSecureContext, userAgent: navigator.userAgent };
    if (opts.noMedia) {
      info.media = null;
      info.mediaError = 'skipped (HARNESS_NO_MEDIA=1)';
      return info;
    }
    try {
      media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      info.media = media.getTracks().map((t) => ({ kind: t.kind, label: t.label }));
    } catch (e) {
      info.media = null;
      info.mediaError = `${e.name}: ${e.message}`;
    }
    return info;
  }

  async function handle(cmd) {
    try {
      const fn = Object.prototype.hasOwnProperty.call(ops, cmd.op) ? ops[cmd.op] : null;
      if (!fn) return { error: `unknown op ${JSON.stringify(cmd.op)}` };
      const ok = await fn(cmd);
      return { ok: ok === undefined ? true : ok };
    } catch (e) {
      return { error: `${e?.name ?? 'Error'}: ${e?.message ?? String(e)}` };
    }
  }

  window.__h = { init, handle };
})();
