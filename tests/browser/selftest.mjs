#!/usr/bin/env node
// End-to-end check of harness.mjs with no Rust code: one harness in a loopback-only network
// namespace, Chromium talking to itself through pairs of RTCPeerConnections in one page.
//
//   node tests/browser/selftest.mjs [--write-fixtures] [--tput-mib N] [--tput-runs N]
//
// It checks data channels (text, binary, negotiated, 1 MiB echoed in 16 KiB chunks with its
// SHA-256), measures one reliable ordered channel's throughput, sends the fake audio and video
// and reads inbound-rtp from getStats. With --write-fixtures it saves the SDP Chromium wrote to
// crates/peer-connection/tests/fixtures/chromium-*.sdp.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cpus, loadavg } from 'node:os';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const WRITE_FIXTURES = flag('--write-fixtures');
const TPUT_MIB = opt('--tput-mib', 64);
const TPUT_RUNS = opt('--tput-runs', 3);

const t0 = performance.now();
const say = (...a) => console.log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s]`, ...a);
function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
}

/** The same bytes as the harness's sendBulk: byte i = ((i * 31) ^ (i >> 9)) & 255. */
function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = ((i * 31) ^ (i >> 9)) & 255;
  return b;
}
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

// ---- a client for the protocol ------------------------------------------------------------
class Harness {
  /** A harness in a new loopback-only namespace, or with `joinPid`, in that process's namespace. */
  constructor(joinPid) {
    const script = path.join(here, 'harness.mjs');
    const [cmd, argv] = joinPid
      ? ['nsenter', ['-t', String(joinPid), '-n', '--', 'node', script]]
      : ['unshare', ['-n', '--', 'sh', '-c', `ip link set lo up && exec node "${script}"`]];
    this.proc = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.nextId = 1;
    this.pending = new Map();
    this.events = [];
    this.waiters = [];
    this.onEvent = null;
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, sig) => resolve({ code, sig })));
    this.exited.then(({ code, sig }) => {
      const err = new Error(`harness exited (code ${code}, signal ${sig})`);
      for (const p of this.pending.values()) p.reject(err);
      for (const w of this.waiters) w.reject(err);
    });
    createInterface({ input: this.proc.stdout }).on('line', (line) => this.#line(line));
  }
  #line(line) {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      throw new Error(`harness wrote a non-JSON line to stdout: ${line}`);
    }
    if (msg.event) {
      this.events.push(msg);
      if (this.onEvent) this.onEvent(msg);
      for (const w of [...this.waiters]) {
        if (w.pred(msg)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          clearTimeout(w.timer);
          w.resolve(msg);
        }
      }
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) throw new Error(`reply to unknown id: ${line}`);
    this.pending.delete(msg.id);
    if ('error' in msg) p.reject(new Error(`${p.op}: ${msg.error}`));
    else p.resolve(msg.ok);
  }
  /** Sends one command and resolves with its "ok" value (rejects with its "error"). */
  cmd(op, fields = {}) {
    const id = this.nextId++;
    this.proc.stdin.write(`${JSON.stringify({ id, op, ...fields })}\n`);
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, op }));
  }
  /** Resolves with the first event, past or future, that matches. */
  waitEvent(pred, what, ms = 30_000) {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no ${what} within ${ms} ms`));
      }, ms);
      this.waiters.push(w);
    });
  }
}

// ---- signalling between two endpoints {h, pc}, in one harness or two --------------------------
const same = (x, y) => x.h === y.h && x.pc === y.pc;
/** Forwards trickled candidates a -> b and b -> a, holding them until the target has a remote description. */
function trickle(a, b, seen) {
  const hasRemote = new Set();
  const held = new Map([
    [a, []],
    [b, []],
  ]);
  const forward = (to, cand) =>
    to.h.cmd('addIceCandidate', { pc: to.pc, candidate: cand }).catch((e) => console.error(`addIceCandidate to pc ${to.pc}: ${e.message}`));
  const onCandidate = (from, cand) => {
    const to = from === a ? b : a;
    if (cand) seen.push(cand.candidate);
    if (hasRemote.has(to)) forward(to, cand);
    else held.get(to).push(cand);
  };
  for (const h of new Set([a.h, b.h])) {
    const prev = h.onEvent;
    h.onEvent = (ev) => {
      prev?.(ev);
      if (ev.event !== 'icecandidate') return;
      for (const from of [a, b]) if (from.h === h && from.pc === ev.pc) onCandidate(from, ev.candidate);
    };
  }
  return {
    remoteSet(end) {
      const e = [a, b].find((x) => same(x, end));
      hasRemote.add(e);
      for (const c of held.get(e).splice(0)) forward(e, c);
    },
  };
}

async function negotiate(sig, a, b, beforeAnswer) {
  const offer = await a.h.cmd('createOffer', { pc: a.pc });
  await b.h.cmd('setRemoteDescription', { pc: b.pc, desc: offer });
  sig.remoteSet(b);
  if (beforeAnswer) await beforeAnswer();
  const answer = await b.h.cmd('createAnswer', { pc: b.pc });
  await a.h.cmd('setRemoteDescription', { pc: a.pc, desc: answer });
  sig.remoteSet(a);
  return { offer, answer };
}
const connected = ({ h, pc }) =>
  h.waitEvent((e) => e.event === 'connectionstatechange' && e.pc === pc && e.state === 'connected', `pc ${pc} connected`);
const remoteChannel = ({ h, pc }, label) =>
  h.waitEvent((e) => e.event === 'datachannel' && e.pc === pc && e.label === label, `datachannel ${label} on pc ${pc}`);
const opened = (h, channel) => h.waitEvent((e) => e.event === 'open' && e.channel === channel, `open of channel ${channel}`);

/** Moves `mib` MiB `runs` times from a's new channel to b, checking the SHA-256; returns MB/s per run. */
async function throughput(a, b, label, mib, runs, highWater) {
  const tx = await a.h.cmd('createDataChannel', { pc: a.pc, label, init: { ordered: true } });
  const rx = await remoteChannel(b, label);
  await Promise.all([opened(a.h, tx.channel), opened(b.h, rx.channel)]);
  const n = mib * (1 << 20);
  const want = sha256(pattern(n));
  // One uncounted 8 MiB run first: the first transfer on a channel is markedly slower.
  await b.h.cmd('collect', { channel: rx.channel });
  await a.h.cmd('sendBulk', { channel: tx.channel, bytes: 8 << 20, chunk: 16384, highWater });
  await b.h.cmd('digest', { channel: rx.channel, bytes: 8 << 20, reset: true });
  const rates = [];
  for (let run = 0; run < runs; run++) {
    await b.h.cmd('collect', { channel: rx.channel });
    const cpu0 = cpus();
    const s = await a.h.cmd('sendBulk', { channel: tx.channel, bytes: n, chunk: 16384, highWater });
    const d = await b.h.cmd('digest', { channel: rx.channel, bytes: n, reset: true });
    const cpuBusy = busy(cpu0, cpus());
    check(d.bytes === n && d.sha256 === want, `throughput run: ${d.bytes} bytes, ${d.sha256}`);
    // Absolute times, so the two ends may be different pages (same machine clock).
    const secs = (d.timeOrigin + d.lastMs - (s.timeOrigin + s.startMs)) / 1000;
    rates.push(n / secs / 1e6);
    say(`  ${label} run ${run + 1}: ${mib} MiB in ${secs.toFixed(2)} s = ${(n / secs / 1e6).toFixed(1)} MB/s (${s.waits} waits for bufferedamountlow), SHA-256 ok; CPU ${(cpuBusy * 100).toFixed(0)}% busy (${cpus().length} CPUs), load ${loadavg()[0].toFixed(2)}`);
  }
  await a.h.cmd('closeChannel', { channel: tx.channel });
  return rates;
}
/** Busy share of all CPUs between two os.cpus() snapshots. */
function busy(before, after) {
  let idle = 0;
  let total = 0;
  after.forEach((c, i) => {
    const d = Object.keys(c.times).map((k) => c.times[k] - before[i].times[k]);
    total += d.reduce((x, y) => x + y, 0);
    idle += c.times.idle - before[i].times.idle;
  });
  return total ? 1 - idle / total : 0;
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

function saveFixture(name, sdp) {
  const dir = path.join(repo, 'crates', 'peer-connection', 'tests', 'fixtures');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, name), sdp);
  say(`wrote fixture ${path.relative(repo, path.join(dir, name))} (${sdp.length} bytes)`);
}

// ---- the test ----------------------------------------------------------------------------------
async function main() {
  const h = new Harness();
  const ready = await h.waitEvent((e) => e.event === 'ready', 'ready event', 90_000);
  say(`ready: Chromium ${ready.version}, startup ${ready.startup_ms} ms (launch ${ready.launch_ms} ms, ${ready.process_ms} ms since node started), media ${JSON.stringify(ready.media)}`);
  check(ready.media, `fake media: ${ready.mediaError}`);
  const pc = (n, hh = h) => ({ h: hh, pc: n });

  // Errors come back as errors.
  await h.cmd('nosuchop').then(
    () => check(false, 'unknown op accepted'),
    (e) => say(`unknown op -> ${e.message}`),
  );
  await h.cmd('addIceCandidate', { pc: 9, candidate: null }).then(
    () => check(false, 'missing pc accepted'),
    (e) => say(`missing pc -> ${e.message}`),
  );

  // ---- pair A: data only, pc 0 -> pc 1 -----------------------------------------------------
  const candidates = [];
  const [A0, A1] = [pc(0), pc(1)];
  await h.cmd('create', { pc: 0, config: {} });
  await h.cmd('create', { pc: 1, config: {} });
  const sigA = trickle(A0, A1, candidates);
  const echoA = await h.cmd('createDataChannel', { pc: 0, label: 'echo', init: { ordered: true } });
  const chatA = await h.cmd('createDataChannel', { pc: 0, label: 'chat', init: { protocol: 'chat-v1' } });
  const negA = await h.cmd('createDataChannel', { pc: 0, label: 'neg', init: { negotiated: true, id: 7, ordered: false, maxRetransmits: 0 } });
  const negB = await h.cmd('createDataChannel', { pc: 1, label: 'neg', init: { negotiated: true, id: 7, ordered: false, maxRetransmits: 0 } });
  const { offer: dataOffer } = await negotiate(sigA, A0, A1);
  check(/m=application .* UDP\/DTLS\/SCTP webrtc-datachannel/.test(dataOffer.sdp), 'data offer has an SCTP m-line');
  await Promise.all([connected(A0), connected(A1)]);
  say('pair A connected');
  const echoB = await remoteChannel(A1, 'echo');
  const chatB = await remoteChannel(A1, 'chat');
  check(chatB.protocol === 'chat-v1', `remote channel protocol ${chatB.protocol}`);
  await Promise.all([echoA, chatA, negA, negB, echoB].map((c) => opened(h, c.channel)));
  say('channels open');
  const gatheredOffer = await h.cmd('waitGathering', { pc: 0 });
  const gatheredAnswer = await h.cmd('waitGathering', { pc: 1 });

  // Text and binary, echoed as events.
  await h.cmd('echo', { channel: chatB.channel });
  await h.cmd('send', { channel: chatA.channel, text: 'héllo ✓' });
  const textBack = await h.waitEvent((e) => e.event === 'message' && e.channel === chatA.channel && 'text' in e, 'echoed text');
  check(textBack.text === 'héllo ✓' && textBack.bytes === Buffer.byteLength('héllo ✓'), `text echo ${JSON.stringify(textBack)}`);
  const bin = Buffer.from([0, 1, 2, 253, 254, 255]).toString('base64');
  await h.cmd('send', { channel: chatA.channel, binary: bin });
  const binBack = await h.waitEvent((e) => e.event === 'message' && e.channel === chatA.channel && 'binary' in e, 'echoed binary');
  check(binBack.binary === bin && binBack.bytes === 6, `binary echo ${JSON.stringify(binBack)}`);
  await h.cmd('send', { channel: negA.channel, text: 'negotiated' });
  const negMsg = await h.waitEvent((e) => e.event === 'message' && e.channel === negB.channel, 'message on the negotiated channel');
  check(negMsg.text === 'negotiated', 'negotiated channel text');
  say('text, binary and negotiated-channel messages ok');

  // 1 MiB echoed in 16 KiB chunks, checked by SHA-256.
  const MiB = 1 << 20;
  await h.cmd('echo', { channel: echoB.channel });
  await h.cmd('collect', { channel: echoA.channel });
  const sent = await h.cmd('sendBulk', { channel: echoA.channel, bytes: MiB, chunk: 16384 });
  const back = await h.cmd('digest', { channel: echoA.channel, bytes: MiB });
  const want = sha256(pattern(MiB));
  check(back.bytes === MiB && back.sha256 === want, `1 MiB echo: got ${back.bytes} bytes ${back.sha256}, want ${want}`);
  say(`1 MiB echoed in ${sent.messages} messages, ${(back.lastMs - sent.startMs).toFixed(0)} ms round trip, SHA-256 ${back.sha256.slice(0, 16)}... ok`);

  const statsA = await h.cmd('getStats', { pc: 0 });
  const pairA = statsA.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
  const local = statsA.find((s) => s.id === pairA?.localCandidateId);
  const remote = statsA.find((s) => s.id === pairA?.remoteCandidateId);
  const transportA = statsA.find((s) => s.type === 'transport');
  check(transportA?.dtlsCipher, 'transport has a DTLS cipher');
  say(`pair A selected: ${local?.protocol} ${local?.address}:${local?.port} (${local?.candidateType}) -> ${remote?.address}:${remote?.port} (${remote?.candidateType}); DTLS ${transportA?.tlsVersion} ${transportA?.dtlsCipher}, role ${transportA?.dtlsRole}`);

  // ---- pair B: audio + video, pc 2 <-> pc 3 ---------------------------------------------------
  const [B2, B3] = [pc(2), pc(3)];
  await h.cmd('create', { pc: 2, config: {} });
  await h.cmd('create', { pc: 3, config: {} });
  const sigB = trickle(B2, B3, candidates);
  await h.cmd('addTrack', { pc: 2, kind: 'audio' });
  await h.cmd('addTrack', { pc: 2, kind: 'video' });
  // The answerer adds its tracks after the offer arrived, so they reuse the offered
  // transceivers and the answer is sendrecv.
  const { offer: avOffer, answer: avAnswer } = await negotiate(sigB, B2, B3, async () => {
    await h.cmd('addTrack', { pc: 3, kind: 'audio' });
    await h.cmd('addTrack', { pc: 3, kind: 'video' });
  });
  check(/m=audio/.test(avOffer.sdp) && /m=video/.test(avOffer.sdp), 'av offer has audio and video');
  check(/a=sendrecv/.test(avAnswer.sdp), 'av answer is sendrecv');
  await Promise.all([connected(B2), connected(B3)]);
  const tracks = await Promise.all(
    ['audio', 'video'].map((k) => h.waitEvent((e) => e.event === 'track' && e.pc === 3 && e.kind === k, `${k} track on pc 3`)),
  );
  say(`pair B connected; tracks on pc 3: ${tracks.map((t) => `${t.kind} mid ${t.mid} ssrc ${t.ssrc}`).join(', ')}`);
  const gatheredAvAnswer = await h.cmd('waitGathering', { pc: 3 });

  let inbound = [];
  let statsB = [];
  for (let i = 0; i < 40; i++) {
    statsB = await h.cmd('getStats', { pc: 3 });
    inbound = statsB.filter((s) => s.type === 'inbound-rtp');
    if (inbound.length >= 2 && inbound.every((s) => s.packetsReceived > 20)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  for (const s of inbound) {
    const codec = statsB.find((c) => c.id === s.codecId);
    say(`inbound-rtp ${s.kind}: ssrc ${s.ssrc}, ${s.packetsReceived} packets, ${s.packetsLost} lost, payload type ${codec?.payloadType} ${codec?.mimeType}`);
  }
  check(inbound.length === 2 && inbound.every((s) => s.packetsReceived > 0), 'inbound-rtp packets for audio and video');
  for (const t of tracks) check(inbound.some((s) => s.ssrc === t.ssrc), `track ssrc ${t.ssrc} matches an inbound-rtp ssrc`);
  const transportB = statsB.find((s) => s.type === 'transport');
  check(transportB?.srtpCipher, 'transport has an SRTP cipher');
  say(`pair B transport: DTLS ${transportB.tlsVersion} ${transportB.dtlsCipher}, SRTP ${transportB.srtpCipher}`);
  const outbound = (await h.cmd('getStats', { pc: 2 })).filter((s) => s.type === 'outbound-rtp');
  say(`outbound-rtp on pc 2: ${outbound.map((s) => `${s.kind} ssrc ${s.ssrc} ${s.packetsSent} packets`).join(', ')}`);
  await h.cmd('close', { pc: 2 });
  await h.cmd('close', { pc: 3 });

  // ---- an audio + video + data offer (not connected) ---------------------------------------------
  await h.cmd('create', { pc: 4, config: {} });
  await h.cmd('addTrack', { pc: 4, kind: 'audio' });
  await h.cmd('addTrack', { pc: 4, kind: 'video' });
  await h.cmd('createDataChannel', { pc: 4, label: 'data' });
  const avdOffer = await h.cmd('createOffer', { pc: 4 });
  check(/m=audio[^]*m=video[^]*m=application/.test(avdOffer.sdp), 'audio, video, application order');
  const gatheredAvdOffer = await h.cmd('waitGathering', { pc: 4 });
  await h.cmd('close', { pc: 4 });

  // ---- throughput: one reliable ordered channel, 16 KiB messages ----------------------------------
  // Same page: both SCTP ends share one renderer (its main thread delivers both sides' events).
  say(`throughput, same page (pc 0 -> pc 1), ${TPUT_MIB} MiB x ${TPUT_RUNS}, <= 1 MiB buffered:`);
  const samePage = await throughput(A0, A1, 'tput', TPUT_MIB, TPUT_RUNS, MiB);
  // Two browsers in the same namespace: each end has its own Chromium, as in a real call.
  const h2 = new Harness(h.proc.pid);
  const ready2 = await h2.waitEvent((e) => e.event === 'ready', 'ready event of the second harness', 90_000);
  say(`second harness (nsenter into the first one's namespace) ready in ${ready2.startup_ms} ms`);
  const [X0, Y0] = [pc(10), pc(0, h2)];
  await h.cmd('create', { pc: 10, config: {} });
  await h2.cmd('create', { pc: 0, config: {} });
  const sigX = trickle(X0, Y0, candidates);
  await h.cmd('createDataChannel', { pc: 10, label: 'warmup' });
  await negotiate(sigX, X0, Y0);
  await Promise.all([connected(X0), connected(Y0)]);
  say(`throughput, two browsers, ${TPUT_MIB} MiB x ${TPUT_RUNS}, <= 1 MiB buffered:`);
  const twoBrowsers = await throughput(X0, Y0, 'tput2', TPUT_MIB, TPUT_RUNS, MiB);
  const fmt = (xs) => `median ${median(xs).toFixed(1)} MB/s (runs: ${xs.map((r) => r.toFixed(1)).join(', ')})`;
  say(`THROUGHPUT Chromium ${ready.version} <-> Chromium, loopback, 1 reliable ordered channel, 16 KiB messages, <= 1 MiB buffered, ${TPUT_MIB} MiB per run:`);
  say(`  same page (both ends in one renderer): ${fmt(samePage)}`);
  say(`  two browsers:                          ${fmt(twoBrowsers)}`);
  await h2.cmd('quit');
  check((await h2.exited).code === 0, 'second harness exit code');

  const forms = [...new Set(candidates.map((c) => c.split(' ').slice(2, 8).join(' ').replace(/ \d+ typ/, ' <port> typ')))];
  say(`candidate forms seen: ${forms.join(' | ')}`);
  say(`mDNS candidates: ${candidates.some((c) => c.includes('.local')) ? 'yes' : 'none'}`);

  if (WRITE_FIXTURES) {
    // The descriptions after gathering: what createOffer/createAnswer gave, plus a=candidate lines.
    saveFixture('chromium-data-offer.sdp', gatheredOffer.sdp);
    // And the offer as createOffer returned it, as sent when trickling (port 9, 0.0.0.0, no candidates).
    saveFixture('chromium-data-offer-trickle.sdp', dataOffer.sdp);
    saveFixture('chromium-data-answer.sdp', gatheredAnswer.sdp);
    saveFixture('chromium-av-data-offer.sdp', gatheredAvdOffer.sdp);
    saveFixture('chromium-av-answer.sdp', gatheredAvAnswer.sdp);
  }

  await h.cmd('close', { pc: 0 });
  await h.cmd('close', { pc: 1 });
  const tq = performance.now();
  await h.cmd('quit');
  const { code } = await h.exited;
  check(code === 0, `harness exit code ${code}`);
  say(`quit took ${(performance.now() - tq).toFixed(0)} ms, exit code 0`);
  say('SELFTEST PASSED');
}

main().catch((e) => {
  console.error(`SELFTEST FAILED: ${e.stack ?? e}`);
  process.exit(1);
});
