// The rooms demo: mesh video chat, text chat and file transfer between browsers, with a
// `rooms` server doing the introductions (docs/rooms.md has the protocol).
//
// Plain modern JS, no build step. Everything a peer sends is shown with textContent, never
// as HTML. `window.demo` is a small API the project's Chromium tests (and curious users in
// the console) read the page's state through.
'use strict';

(() => {
  // ---------------------------------------------------------------------------------------
  // Constants

  /** File data message size (what browsers' file-transfer samples use; ≤ 64 KiB). */
  const CHUNK = 16 * 1024;
  /** Bytes read from the file at once, sent as CHUNK-sized messages. */
  const READ_BLOCK = 256 * 1024;
  /** Stop queueing above this `bufferedAmount`... */
  const HIGH_WATER = 1024 * 1024;
  /** ...and go on when it falls to this (`bufferedamountlow`). */
  const LOW_WATER = 256 * 1024;
  /** The largest file this page will hold in memory while receiving it. */
  const MAX_RECEIVE = 1024 * 1024 * 1024;
  const STATS_EVERY_MS = 2000;
  const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;

  // ---------------------------------------------------------------------------------------
  // SHA-256 (FIPS 180-4), incremental: files are hashed as they are read or arrive, never
  // held whole for it, and it works where `crypto.subtle` does not (plain-HTTP origins).

  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);

  class Sha256 {
    constructor() {
      this.h = new Uint32Array([
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
      ]);
      this.w = new Uint32Array(64);
      this.buf = new Uint8Array(64);
      this.fill = 0;
      this.length = 0;
    }

    /** @param {Uint8Array} data */
    update(data) {
      this.length += data.length;
      let i = 0;
      if (this.fill > 0) {
        i = Math.min(64 - this.fill, data.length);
        this.buf.set(data.subarray(0, i), this.fill);
        this.fill += i;
        if (this.fill < 64) return this;
        this.block(this.buf, 0);
        this.fill = 0;
      }
      for (; i + 64 <= data.length; i += 64) this.block(data, i);
      if (i < data.length) {
        this.buf.set(data.subarray(i));
        this.fill = data.length - i;
      }
      return this;
    }

    block(d, o) {
      const w = this.w;
      for (let t = 0; t < 16; t++, o += 4) w[t] = (d[o] << 24) | (d[o + 1] << 16) | (d[o + 2] << 8) | d[o + 3];
      for (let t = 16; t < 64; t++) {
        const x = w[t - 15];
        const y = w[t - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
      }
      const h = this.h;
      let a = h[0], b = h[1], c = h[2], e = h[4], f = h[5], g = h[6], dd = h[3], hh = h[7];
      for (let t = 0; t < 64; t++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        hh = g; g = f; f = e; e = (dd + t1) | 0; dd = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += dd; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }

    /** The digest as lowercase hex; the hasher is spent afterwards. */
    hex() {
      const bits = this.length * 8;
      const tail = new Uint8Array(this.fill < 56 ? 64 - this.fill : 128 - this.fill);
      tail[0] = 0x80;
      const v = new DataView(tail.buffer);
      v.setUint32(tail.length - 8, Math.floor(bits / 0x100000000));
      v.setUint32(tail.length - 4, bits >>> 0);
      this.update(tail);
      return Array.from(this.h, (x) => x.toString(16).padStart(8, '0')).join('');
    }
  }

  // ---------------------------------------------------------------------------------------
  // Small DOM helpers

  const $ = (sel) => document.querySelector(sel);

  /** An element with attributes (`text` sets textContent) and children. */
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c) e.append(c);
    return e;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function icon(name) {
    const s = document.createElementNS(SVG, 'svg');
    s.setAttribute('class', 'icon');
    s.setAttribute('aria-hidden', 'true');
    const u = document.createElementNS(SVG, 'use');
    u.setAttribute('href', `#i-${name}`);
    s.append(u);
    return s;
  }
  function setIcon(button, name) {
    button.querySelector('use').setAttribute('href', `#i-${name}`);
  }

  function toast(text, kind = 'info') {
    const t = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', text });
    $('#toasts').append(t);
    setTimeout(() => t.classList.add('out'), 4000);
    setTimeout(() => t.remove(), 4600);
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
    return `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
  }

  /** A short, stable name for a peer id, for people. */
  const shortName = (id) => `Guest ${id.slice(0, 4)}`;

  // ---------------------------------------------------------------------------------------
  // State

  const state = {
    joined: false,
    you: null,
    room: null,
    error: null,
    /** 'audio+video', 'audio', 'video' or 'none'. */
    media: 'none',
    relayOnly: false,
    iceServers: [],
    joinedAt: 0,
  };
  /** @type {WebSocket|null} */
  let ws = null;
  /** @type {MediaStream} */
  let local = new MediaStream();
  /** id → peer, in the order they came. */
  const peers = new Map();
  /** id → transfer, newest last. */
  const transfers = new Map();
  let nextTransfer = 1;
  const chat = [];
  let statsTimer = 0;
  let clockTimer = 0;

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  // ---------------------------------------------------------------------------------------
  // Media

  async function startMedia(wantVideo, wantAudio) {
    local = new MediaStream();
    if (!navigator.mediaDevices?.getUserMedia) {
      notice(window.isSecureContext
        ? 'This browser gives no camera or microphone: you can still watch, chat and share files.'
        : 'Camera and microphone need HTTPS (or http://localhost): you can still watch, chat and share files.');
      return;
    }
    const attempts = [];
    if (wantVideo && wantAudio) attempts.push({ video: VIDEO, audio: true });
    if (wantAudio) attempts.push({ audio: true });
    if (wantVideo) attempts.push({ video: VIDEO });
    for (const constraints of attempts) {
      try {
        const s = await navigator.mediaDevices.getUserMedia(constraints);
        for (const t of s.getTracks()) local.addTrack(t);
        break;
      } catch (e) {
        console.warn('getUserMedia', constraints, e.name, e.message);
      }
    }
    const have = local.getTracks().map((t) => t.kind);
    if ((wantVideo && !have.includes('video')) || (wantAudio && !have.includes('audio'))) {
      notice(have.length
        ? `Only your ${have.join(' and ')} is shared: the browser refused the rest.`
        : 'No camera or microphone: you can still watch, chat and share files.');
    }
    updateMediaState();
  }
  const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };

  function updateMediaState() {
    const kinds = ['audio', 'video'].filter((k) => local.getTracks().some((t) => t.kind === k));
    state.media = kinds.length ? kinds.join('+') : 'none';
    const mic = local.getAudioTracks()[0];
    const cam = local.getVideoTracks()[0];
    const micOn = !!mic && mic.enabled;
    const camOn = !!cam && cam.enabled;
    const bm = $('#toggle-mic');
    bm.setAttribute('aria-pressed', String(micOn));
    bm.title = micOn ? 'Mute microphone' : 'Unmute microphone';
    setIcon(bm, micOn ? 'mic' : 'mic-off');
    const bc = $('#toggle-cam');
    bc.setAttribute('aria-pressed', String(camOn));
    bc.title = camOn ? 'Turn camera off' : 'Turn camera on';
    setIcon(bc, camOn ? 'cam' : 'cam-off');
    const me = $('#peers .tile.local');
    if (me) {
      me.classList.toggle('no-video', !camOn);
      me.classList.toggle('muted', !micOn);
    }
  }

  /** Turns a kind on or off; turning on a kind not yet captured asks for it. */
  async function toggle(kind) {
    const track = local.getTracks().find((t) => t.kind === kind);
    if (track) {
      track.enabled = !track.enabled;
    } else {
      try {
        const s = await navigator.mediaDevices.getUserMedia(kind === 'video' ? { video: VIDEO } : { audio: true });
        const t = s.getTracks()[0];
        local.addTrack(t);
        // Every call negotiated a sendrecv transceiver of each kind: no renegotiation needed.
        for (const p of peers.values()) {
          for (const tr of p.pc.getTransceivers()) {
            if (tr.receiver.track.kind === kind && !tr.stopped) tr.sender.replaceTrack(t).catch(() => {});
          }
        }
        $('#peers .tile.local video').srcObject = local;
      } catch (e) {
        toast(`The browser refused the ${kind === 'video' ? 'camera' : 'microphone'}: ${e.message}`, 'error');
      }
    }
    updateMediaState();
  }

  function notice(text) {
    const n = $('#media-notice');
    n.textContent = text;
    n.hidden = false;
  }

  // ---------------------------------------------------------------------------------------
  // Signalling

  async function join(room, { relayOnly = false, video = true, audio = true } = {}) {
    if (ws) throw new Error('already in a room: leave first');
    if (!ROOM_RE.test(room)) {
      lobbyError('A room name is 1 to 64 letters, digits, “-” or “_”.');
      return state;
    }
    state.error = null;
    state.relayOnly = relayOnly;
    $('#join').disabled = true;
    $('#lobby-error').hidden = true;
    await startMedia(video, audio);

    const url = new URL('/ws', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const token = new URLSearchParams(location.search).get('token');
    const socket = new WebSocket(url);
    ws = socket;
    return new Promise((resolve) => {
      socket.onopen = () => send(token ? { type: 'join', room, token } : { type: 'join', room });
      socket.onmessage = (e) => {
        let msg;
        try {
          msg = JSON.parse(e.data);
        } catch {
          console.warn('not JSON from the server', e.data);
          return;
        }
        if (msg.type === 'peers') resolve(state);
        onSignal(msg, room, resolve).catch((err) => console.error('signal', msg.type, err));
      };
      socket.onclose = (e) => {
        if (ws !== socket) return;
        ws = null;
        if (!state.joined) {
          stopMedia();
          lobbyError(state.error
            ? state.errorMessage
            : `Could not reach the signalling server (${e.code}${e.reason ? `: ${e.reason}` : ''}).`);
          resolve(state);
          return;
        }
        // Calls already made go on peer to peer; nobody new can come in.
        notice(`The signalling server went away (${e.code}${e.reason ? `: ${e.reason}` : ''}). ` +
          'Calls in progress go on; leave and join again to meet newcomers.');
      };
    });
  }

  async function onSignal(msg, room, resolve) {
    switch (msg.type) {
      case 'peers': {
        state.joined = true;
        state.you = msg.you;
        state.room = room;
        state.iceServers = Array.isArray(msg.iceServers) ? msg.iceServers : [];
        state.joinedAt = Date.now();
        showCall();
        // The newcomer offers to every peer already there.
        for (const id of msg.peers) addPeer(id, true);
        return;
      }
      case 'new_peer':
        addPeer(msg.id, false);
        toast(`${shortName(msg.id)} joined`);
        return;
      case 'remove_peer': {
        if (peers.has(msg.id)) toast(`${shortName(msg.id)} left`);
        removePeer(msg.id, 'left the room');
        return;
      }
      case 'offer':
      case 'answer':
        return onDescription(msg.from, { type: msg.type, sdp: msg.sdp });
      case 'candidate':
        return onCandidate(msg.from, msg.candidate);
      case 'error': {
        if (!state.joined) {
          state.error = msg.code;
          state.errorMessage = joinErrorText(msg);
          ws?.close(1000);
          return;
        }
        console.warn('server error', msg.code, msg.message);
        toast(`Server: ${msg.message}`, 'error');
        return;
      }
      default:
        console.warn('unknown message from the server', msg.type);
    }
  }

  function joinErrorText(msg) {
    switch (msg.code) {
      case 'room_full': return 'That room is full.';
      case 'bad_room': return 'That is not a valid room name.';
      case 'bad_token': return 'This link does not let you into that room (its token is missing, wrong or expired).';
      default: return `The server refused: ${msg.message}`;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Peers: one RTCPeerConnection each, with perfect negotiation (W3C WebRTC §10.7 example)

  function addPeer(id, initiator) {
    if (peers.has(id) || id === state.you) return peers.get(id);
    const pc = new RTCPeerConnection({
      iceServers: state.iceServers,
      iceTransportPolicy: state.relayOnly ? 'relay' : 'all',
      bundlePolicy: 'max-bundle',
    });
    const peer = {
      id,
      pc,
      // The peer with the greater id gives way in glare.
      polite: state.you > id,
      makingOffer: false,
      ignoreOffer: false,
      /** Candidates that came before the remote description. */
      pending: [],
      stream: new MediaStream(),
      chat: null,
      stats: { connType: null, localCandidateType: null, remoteCandidateType: null, framesDecoded: 0, audioPacketsReceived: 0 },
      tile: null,
    };
    peers.set(id, peer);
    peer.tile = makeTile(peer);

    pc.onicecandidate = ({ candidate }) =>
      send({ type: 'candidate', to: id, candidate: candidate ? candidate.toJSON() : null });
    pc.onnegotiationneeded = async () => {
      try {
        peer.makingOffer = true;
        await pc.setLocalDescription();
        send({ type: pc.localDescription.type, to: id, sdp: pc.localDescription.sdp });
      } catch (e) {
        console.error('offer', id, e);
      } finally {
        peer.makingOffer = false;
      }
    };
    pc.ontrack = ({ track }) => {
      peer.stream.addTrack(track);
      const v = peer.tile.querySelector('video');
      if (v.srcObject !== peer.stream) v.srcObject = peer.stream;
      play(v);
      track.onunmute = () => updateTile(peer);
      track.onended = () => { peer.stream.removeTrack(track); updateTile(peer); };
      updateTile(peer);
    };
    pc.onconnectionstatechange = () => {
      updateTile(peer);
      if (pc.connectionState === 'connected') refreshStats();
      if (pc.connectionState === 'failed') {
        toast(`No path to ${shortName(id)}: try relay only, or check the TURN server`, 'error');
        // An ICE restart, the standard way out of a failed path.
        if (initiator) pc.restartIce();
      }
    };
    pc.oniceconnectionstatechange = () => updateTile(peer);
    pc.ondatachannel = ({ channel }) => {
      if (channel.label === 'chat') setChat(peer, channel);
      else if (channel.label === 'file') incomingFile(peer, channel);
      else channel.close();
    };

    if (initiator) {
      // One sendrecv transceiver of each kind, with or without a track yet, so a camera
      // switched on later goes out with replaceTrack and no renegotiation.
      for (const kind of ['audio', 'video']) {
        const t = local.getTracks().find((x) => x.kind === kind);
        pc.addTransceiver(t || kind, { direction: 'sendrecv', streams: [local] });
      }
      setChat(peer, pc.createDataChannel('chat'));
    }
    updatePeerList();
    return peer;
  }

  async function onDescription(from, description) {
    let peer = peers.get(from);
    if (!peer) {
      if (description.type !== 'offer') return;
      peer = addPeer(from, false);
    }
    const pc = peer.pc;
    try {
      if (description.type === 'offer') {
        const collision = peer.makingOffer || pc.signalingState !== 'stable';
        peer.ignoreOffer = !peer.polite && collision;
        if (peer.ignoreOffer) return;
        await pc.setRemoteDescription(description);
        // Our media on the m-lines the peer offered (none if it offered data only).
        for (const tr of pc.getTransceivers()) {
          if (tr.stopped || tr.sender.track) continue;
          const t = local.getTracks().find((x) => x.kind === tr.receiver.track.kind);
          tr.direction = 'sendrecv';
          if (t) {
            await tr.sender.replaceTrack(t);
            tr.sender.setStreams?.(local);
          }
        }
        await flushCandidates(peer);
        await pc.setLocalDescription();
        send({ type: 'answer', to: from, sdp: pc.localDescription.sdp });
      } else {
        await pc.setRemoteDescription(description);
        await flushCandidates(peer);
      }
    } catch (e) {
      console.error('description from', from, e);
      toast(`Could not use ${shortName(from)}'s ${description.type}: ${e.message}`, 'error');
    }
  }

  async function onCandidate(from, candidate) {
    const peer = peers.get(from);
    if (!peer) return;
    if (!peer.pc.remoteDescription) {
      peer.pending.push(candidate);
      return;
    }
    await addCandidate(peer, candidate);
  }

  async function flushCandidates(peer) {
    const list = peer.pending.splice(0);
    for (const c of list) await addCandidate(peer, c);
  }

  async function addCandidate(peer, candidate) {
    try {
      // null: the peer's end of candidates.
      await peer.pc.addIceCandidate(candidate ?? undefined);
    } catch (e) {
      if (!peer.ignoreOffer) console.warn('candidate from', peer.id, e.message);
    }
  }

  function removePeer(id, why) {
    const peer = peers.get(id);
    if (!peer) return;
    peers.delete(id);
    for (const t of transfers.values()) {
      if (t.peer === id && !t.done) failTransfer(t, `${shortName(id)} ${why}`);
    }
    peer.chat?.close();
    peer.pc.close();
    peer.tile.remove();
    updatePeerList();
  }

  // ---------------------------------------------------------------------------------------
  // Stats: connection type of the selected pair, decoded frames

  async function peerStats(peer) {
    const report = await peer.pc.getStats();
    let pair = null;
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
    });
    if (!pair) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
    }
    const st = peer.stats;
    st.localCandidateType = pair ? byId.get(pair.localCandidateId)?.candidateType ?? null : null;
    st.remoteCandidateType = pair ? byId.get(pair.remoteCandidateId)?.candidateType ?? null : null;
    st.connType = pair ? (st.localCandidateType === 'relay' || st.remoteCandidateType === 'relay' ? 'relay' : 'direct') : null;
    st.framesDecoded = 0;
    st.audioPacketsReceived = 0;
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') st.framesDecoded += s.framesDecoded ?? 0;
      if (s.kind === 'audio') st.audioPacketsReceived += s.packetsReceived ?? 0;
    });
    updateTile(peer);
  }

  async function refreshStats() {
    await Promise.all([...peers.values()].map((p) => peerStats(p).catch(() => {})));
    return publicState();
  }

  // ---------------------------------------------------------------------------------------
  // Tiles

  function makeLocalTile() {
    const v = el('video', { autoplay: true, playsinline: true });
    v.muted = true;
    v.srcObject = local;
    const t = el('div', { class: 'tile local' },
      v,
      el('div', { class: 'avatar', 'aria-hidden': 'true', text: 'You' }),
      el('div', { class: 'label' }, el('span', { class: 'name', text: 'You' }), icon('mic-off')));
    $('#peers').prepend(t);
    play(v);
  }

  function makeTile(peer) {
    const v = el('video', { autoplay: true, playsinline: true });
    const t = el('div', { class: 'tile remote connecting', 'data-peer': peer.id },
      v,
      el('div', { class: 'avatar', 'aria-hidden': 'true', text: peer.id.slice(0, 2).toUpperCase() }),
      el('span', { class: 'conn-type', title: 'How media reaches you', text: 'connecting…' }),
      el('button', { class: 'unmute', type: 'button', hidden: true }, icon('sound'), el('span', { text: 'Click to hear' })),
      el('div', { class: 'label' }, el('span', { class: 'name', text: shortName(peer.id) })),
      el('div', { class: 'drop-hint', text: `Drop to send to ${shortName(peer.id)}` }));
    t.querySelector('.unmute').onclick = () => { v.muted = false; play(v); };
    t.addEventListener('dragover', (e) => {
      if (![...e.dataTransfer.types].includes('Files')) return;
      e.preventDefault();
      t.classList.add('drop');
    });
    t.addEventListener('dragleave', () => t.classList.remove('drop'));
    t.addEventListener('drop', (e) => {
      e.preventDefault();
      t.classList.remove('drop');
      for (const f of e.dataTransfer.files) sendFile(peer.id, f);
    });
    $('#peers').append(t);
    return t;
  }

  /** Plays a video; where autoplay with sound is refused, plays muted and offers a button. */
  function play(v) {
    v.play().catch(() => {
      if (v.muted) return;
      v.muted = true;
      v.play().catch(() => {});
      v.parentElement?.querySelector('.unmute')?.removeAttribute('hidden');
    });
  }

  function updateTile(peer) {
    const t = peer.tile;
    if (!t) return;
    const pc = peer.pc;
    const live = pc.connectionState === 'connected';
    const hasVideo = peer.stream.getVideoTracks().some((x) => !x.muted && x.readyState === 'live');
    t.classList.toggle('connecting', !live && pc.connectionState !== 'failed');
    t.classList.toggle('failed', pc.connectionState === 'failed');
    t.classList.toggle('no-video', !hasVideo);
    const badge = t.querySelector('.conn-type');
    const st = peer.stats;
    badge.className = `conn-type ${live ? st.connType ?? '' : pc.connectionState}`;
    if (live && st.connType) {
      badge.textContent = st.connType === 'relay' ? 'Relayed (TURN)' : 'Direct';
      badge.title = `${st.localCandidateType} ↔ ${st.remoteCandidateType} candidate`;
    } else {
      badge.textContent = { new: 'connecting…', connecting: 'connecting…', connected: 'connected', disconnected: 'reconnecting…', failed: 'no connection', closed: 'closed' }[pc.connectionState] ?? pc.connectionState;
    }
  }

  function updatePeerList() {
    const n = peers.size + 1;
    $('#peers').dataset.count = String(Math.min(n, 6));
    $('#people-count').textContent = n === 1 ? 'Only you — share the link' : `${n} people`;
    const sel = $('#file-peer');
    const was = sel.value;
    sel.replaceChildren();
    if (peers.size === 0) sel.append(el('option', { value: '', text: 'Nobody here yet' }));
    for (const id of peers.keys()) sel.append(el('option', { value: id, text: shortName(id) }));
    if (peers.size > 1) sel.append(el('option', { value: '*', text: 'Everyone' }));
    if ([...sel.options].some((o) => o.value === was)) sel.value = was;
    sel.disabled = peers.size === 0;
    $('#file-pick').classList.toggle('disabled', peers.size === 0);
  }

  // ---------------------------------------------------------------------------------------
  // Chat

  function setChat(peer, channel) {
    peer.chat = channel;
    channel.onopen = () => updateTile(peer);
    channel.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      addChat(peer.id, e.data.slice(0, 4000));
    };
    channel.onclose = () => { if (peer.chat === channel) peer.chat = null; };
  }

  function sendChat(text) {
    text = String(text).trim();
    if (!text) return false;
    let sent = 0;
    for (const p of peers.values()) {
      if (p.chat?.readyState === 'open') {
        p.chat.send(text);
        sent++;
      }
    }
    addChat(null, text, sent === 0 && peers.size > 0 ? 'not delivered: nobody connected yet' : null);
    return sent > 0;
  }

  function addChat(from, text, note = null) {
    const at = new Date();
    chat.push({ from, text, at: at.toISOString() });
    const li = el('li', { class: from ? 'them' : 'me' },
      el('div', { class: 'meta' },
        el('span', { class: 'who', text: from ? shortName(from) : 'You' }),
        el('time', { datetime: at.toISOString(), text: at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) })),
      el('div', { class: 'text', text }),
      note ? el('div', { class: 'note', text: note }) : null);
    const log = $('#chat-log');
    log.append(li);
    log.scrollTop = log.scrollHeight;
  }

  // ---------------------------------------------------------------------------------------
  // Files: a channel labelled "file" per file; a text header {"name","size","sha256"}, the
  // data in CHUNK-sized binary messages, then the receiver's "sha256:<hex>" back.

  function newTransfer(direction, peer, name, size) {
    const t = {
      id: nextTransfer++, direction, peer, name, size, bytes: 0, percent: 0,
      status: direction === 'out' ? 'hashing' : 'receiving', sha256: null, error: null,
      done: false, row: null, url: null,
    };
    transfers.set(t.id, t);
    t.row = transferRow(t);
    return t;
  }

  function transferRow(t) {
    const row = el('div', { class: `transfer ${t.direction}` },
      el('div', { class: 'head' },
        icon('file'),
        el('span', { class: 'fname', text: t.name, title: t.name }),
        el('span', { class: 'size', text: formatBytes(t.size) })),
      el('progress', { max: 100, value: 0 }),
      el('div', { class: 'foot' },
        el('span', { class: 'who', text: `${t.direction === 'out' ? 'to' : 'from'} ${shortName(t.peer)}` }),
        el('span', { class: 'status' })));
    $('#transfers').prepend(row);
    return row;
  }

  function renderTransfer(t) {
    t.percent = t.size === 0 ? (t.bytes === 0 && !t.done ? 0 : 100) : Math.floor((t.bytes * 100) / t.size);
    const row = t.row;
    row.querySelector('progress').value = t.percent;
    row.className = `transfer ${t.direction} ${t.status}`;
    const status = row.querySelector('.status');
    const text = {
      hashing: 'preparing…',
      sending: `${t.percent} %`,
      receiving: `${t.percent} %`,
      verifying: 'checking…',
      verified: 'SHA-256 verified',
      received: 'received (no digest to check)',
      failed: `failed: ${t.error}`,
    }[t.status];
    status.textContent = text;
    if (t.sha256) status.title = `SHA-256 ${t.sha256}`;
    if (t.url && !row.querySelector('a.save')) {
      row.querySelector('.foot').append(el('a', { class: 'save', href: t.url, download: safeName(t.name), text: 'Save' }));
    }
  }

  function failTransfer(t, why) {
    if (t.done) return;
    t.done = true;
    t.status = 'failed';
    t.error = why;
    renderTransfer(t);
    try { t.channel?.close(); } catch { /* already closed */ }
  }

  /** The last component of a name a peer gave, for the download attribute. */
  function safeName(name) {
    const base = String(name).split(/[\\/]/).pop().replace(/[\u0000-\u001f]/g, '').trim();
    return base && base !== '.' && base !== '..' ? base.slice(0, 200) : 'received';
  }

  async function sendFile(peerId, file) {
    if (peerId === '*') {
      return Promise.all([...peers.keys()].map((id) => sendFile(id, file)));
    }
    const peer = peers.get(peerId);
    if (!peer) throw new Error(`no peer ${peerId}`);
    const t = newTransfer('out', peerId, file.name || 'file', file.size);
    renderTransfer(t);
    try {
      // The digest first, read in blocks, so the receiver can check what arrives.
      const h = new Sha256();
      for (let off = 0; off < file.size; off += READ_BLOCK) {
        h.update(new Uint8Array(await file.slice(off, off + READ_BLOCK).arrayBuffer()));
      }
      t.sha256 = h.hex();
    } catch (e) {
      failTransfer(t, `could not read the file: ${e.message}`);
      return t;
    }
    if (!peers.has(peerId)) {
      failTransfer(t, `${shortName(peerId)} left`);
      return t;
    }
    const dc = peer.pc.createDataChannel('file', { ordered: true });
    t.channel = dc;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = LOW_WATER;
    let offset = 0;
    let pumping = false;
    const progress = () => {
      if (t.done) return;
      t.bytes = Math.max(0, offset - dc.bufferedAmount);
      renderTransfer(t);
    };
    const pump = async () => {
      if (pumping || t.done) return;
      pumping = true;
      try {
        while (offset < file.size && dc.readyState === 'open' && dc.bufferedAmount < HIGH_WATER) {
          const block = new Uint8Array(await file.slice(offset, offset + READ_BLOCK).arrayBuffer());
          if (dc.readyState !== 'open') break;
          for (let i = 0; i < block.length; i += CHUNK) dc.send(block.subarray(i, i + CHUNK));
          offset += block.length;
          progress();
        }
        if (offset >= file.size && t.status === 'sending') {
          t.status = 'verifying';
          progress();
        }
      } catch (e) {
        failTransfer(t, e.message);
      } finally {
        pumping = false;
      }
    };
    dc.onopen = () => {
      dc.send(JSON.stringify({ name: file.name || 'file', size: file.size, sha256: t.sha256 }));
      t.status = 'sending';
      renderTransfer(t);
      pump();
    };
    dc.onbufferedamountlow = () => { progress(); pump(); };
    dc.onmessage = (e) => {
      if (typeof e.data !== 'string' || t.done) return;
      const theirs = e.data.startsWith('sha256:') ? e.data.slice(7).trim().toLowerCase() : e.data;
      t.done = true;
      t.bytes = file.size;
      if (theirs === t.sha256) {
        t.status = 'verified';
      } else {
        t.status = 'failed';
        t.error = `the receiver computed a different SHA-256 (${theirs.slice(0, 16)}…)`;
      }
      renderTransfer(t);
      dc.close();
    };
    dc.onclose = () => failTransfer(t, 'the channel closed before the receiver confirmed');
    dc.onerror = (e) => failTransfer(t, e.error?.message ?? 'channel error');
    return t;
  }

  function incomingFile(peer, dc) {
    dc.binaryType = 'arraybuffer';
    let t = null;
    let hasher = null;
    let parts = [];
    dc.onmessage = (e) => {
      if (t === null) {
        if (typeof e.data !== 'string') return dc.close();
        let header;
        try {
          header = JSON.parse(e.data);
        } catch {
          return dc.close();
        }
        const size = Number(header?.size);
        const name = typeof header?.name === 'string' ? header.name : 'received';
        t = newTransfer('in', peer.id, safeName(name), Number.isSafeInteger(size) && size >= 0 ? size : 0);
        t.channel = dc;
        t.expected = typeof header?.sha256 === 'string' ? header.sha256.toLowerCase() : null;
        if (!Number.isSafeInteger(size) || size < 0) return failTransfer(t, 'the sender gave no valid size');
        if (size > MAX_RECEIVE) return failTransfer(t, `${formatBytes(size)} is more than this page holds (${formatBytes(MAX_RECEIVE)})`);
        hasher = new Sha256();
        renderTransfer(t);
        if (size === 0) finish();
        return;
      }
      if (t.done) return;
      if (typeof e.data === 'string') return failTransfer(t, 'unexpected text from the sender');
      const chunk = new Uint8Array(e.data);
      t.bytes += chunk.length;
      if (t.bytes > t.size) return failTransfer(t, `the sender sent more than the ${t.size} bytes it announced`);
      hasher.update(chunk);
      parts.push(chunk);
      if (t.bytes === t.size) finish();
      else renderTransfer(t);
    };
    const finish = () => {
      t.status = 'verifying';
      renderTransfer(t);
      t.sha256 = hasher.hex();
      dc.send(`sha256:${t.sha256}`);
      t.done = true;
      if (t.expected === null) {
        t.status = 'received';
      } else if (t.expected === t.sha256) {
        t.status = 'verified';
      } else {
        t.status = 'failed';
        t.error = 'the data does not match the sender’s SHA-256';
      }
      if (t.status !== 'failed') t.url = URL.createObjectURL(new Blob(parts));
      parts = [];
      renderTransfer(t);
    };
    dc.onclose = () => { if (t) failTransfer(t, 'the sender closed the channel early'); };
  }

  // ---------------------------------------------------------------------------------------
  // Screens

  function lobbyError(text) {
    const b = $('#lobby-error');
    b.textContent = text;
    b.hidden = false;
    $('#join').disabled = false;
  }

  function showCall() {
    $('#lobby').hidden = true;
    $('#call').hidden = false;
    $('#room-name').textContent = state.room;
    const u = new URL(location.href);
    u.searchParams.set('room', state.room);
    history.replaceState(null, '', u);
    document.title = `${state.room} · Rooms`;
    makeLocalTile();
    updateMediaState();
    updatePeerList();
    statsTimer = setInterval(refreshStats, STATS_EVERY_MS);
    clockTimer = setInterval(clock, 1000);
    clock();
    $('#chat-input').focus();
  }

  function clock() {
    const s = Math.floor((Date.now() - state.joinedAt) / 1000);
    const hh = Math.floor(s / 3600);
    const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
    const ss = String(s % 60).padStart(2, '0');
    $('#call-timer').textContent = hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
  }

  function stopMedia() {
    for (const t of local.getTracks()) t.stop();
    local = new MediaStream();
    state.media = 'none';
  }

  function leave() {
    if (ws) {
      send({ type: 'leave' });
      const s = ws;
      ws = null;
      s.close(1000, 'left');
    }
    for (const id of [...peers.keys()]) removePeer(id, 'is no longer connected: you left');
    stopMedia();
    clearInterval(statsTimer);
    clearInterval(clockTimer);
    Object.assign(state, { joined: false, you: null, room: null, error: null, iceServers: [] });
    $('#peers').replaceChildren();
    $('#media-notice').hidden = true;
    $('#call').hidden = true;
    $('#lobby').hidden = false;
    $('#join').disabled = false;
    document.title = 'Rooms · video calls, peer to peer';
    return publicState();
  }

  // ---------------------------------------------------------------------------------------
  // Wiring

  const WORDS_A = ['quiet', 'amber', 'brisk', 'silver', 'lucky', 'mellow', 'sunny', 'bold', 'misty', 'gentle'];
  const WORDS_B = ['river', 'forest', 'harbor', 'meadow', 'comet', 'lantern', 'canyon', 'island', 'orchard', 'summit'];
  const pick = (a) => a[crypto.getRandomValues(new Uint32Array(1))[0] % a.length];
  const randomRoom = () => `${pick(WORDS_A)}-${pick(WORDS_B)}-${crypto.getRandomValues(new Uint32Array(1))[0] % 100}`;

  function wire() {
    const params = new URLSearchParams(location.search);
    const fromUrl = params.get('room');
    $('#room').value = fromUrl && ROOM_RE.test(fromUrl) ? fromUrl : '';
    if (params.get('relay') === '1') $('#relay-only').checked = true;
    $('#room').placeholder = randomRoom();
    $('#shuffle').onclick = () => { $('#room').value = randomRoom(); $('#room').focus(); };
    $('#join-form').onsubmit = (e) => {
      e.preventDefault();
      const room = $('#room').value.trim() || $('#room').placeholder;
      $('#room').value = room;
      join(room, {
        relayOnly: $('#relay-only').checked,
        video: $('#cam-on').checked,
        audio: $('#mic-on').checked,
      });
    };
    $('#leave').onclick = () => leave();
    $('#toggle-mic').onclick = () => toggle('audio');
    $('#toggle-cam').onclick = () => toggle('video');
    $('#toggle-panel').onclick = () => {
      const open = $('#call').classList.toggle('panel-closed') === false;
      $('#toggle-panel').setAttribute('aria-pressed', String(open));
    };
    $('#copy-link').onclick = async () => {
      const u = new URL(location.href);
      u.search = '';
      u.searchParams.set('room', state.room);
      try {
        await navigator.clipboard.writeText(u.href);
        toast('Link copied: send it to whoever should join');
      } catch {
        toast(u.href);
      }
    };
    $('#chat-form').onsubmit = (e) => {
      e.preventDefault();
      const i = $('#chat-input');
      sendChat(i.value);
      i.value = '';
    };
    $('#file-input').onchange = (e) => {
      const files = [...e.target.files];
      e.target.value = '';
      const to = $('#file-peer').value;
      if (!to) return toast('Nobody to send to yet', 'error');
      for (const f of files) sendFile(to, f).catch((err) => toast(err.message, 'error'));
    };
    window.addEventListener('pagehide', () => { if (state.joined) leave(); });
  }

  // ---------------------------------------------------------------------------------------
  // window.demo: the page's state for tests and the console

  function publicState() {
    return {
      joined: state.joined,
      you: state.you,
      room: state.room,
      error: state.error,
      media: state.media,
      relayOnly: state.relayOnly,
      peers: [...peers.values()].map((p) => ({
        id: p.id,
        connectionState: p.pc.connectionState,
        iceConnectionState: p.pc.iceConnectionState,
        signalingState: p.pc.signalingState,
        ...p.stats,
        chatOpen: p.chat?.readyState === 'open',
      })),
      transfers: [...transfers.values()].map((t) => ({
        id: t.id, direction: t.direction, peer: t.peer, name: t.name, size: t.size,
        bytes: t.bytes, percent: t.percent, status: t.status, sha256: t.sha256, error: t.error,
      })),
      chat: chat.slice(),
    };
  }

  window.demo = Object.freeze({
    state: publicState,
    refreshStats,
    join: (room, opts) => join(room, opts).then(publicState),
    leave,
    sendFile,
    sendChat,
    Sha256,
  });

  wire();
})();
