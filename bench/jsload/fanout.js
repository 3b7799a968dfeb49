// The chat fan-out scenario of `make bench` driven by the official
// JavaScript client (socket.io-client 4.x), all clients in this one Node.js
// process, as issue 22 measured it: rooms × members websockets each join one
// chat room; one member per room (the sender) keeps `inflight` messages in
// flight, sending the next whenever one of its own new_message echoes
// arrives; every member records the delay from the send to its receipt (the
// send time travels in the message text). Warm-up first, then `duration`
// measured: receipts inside the window count.
//
//   node fanout.js --url http://127.0.0.1:5000 [--rooms 50 --members 20 --inflight 4
//                  --warmup 3 --duration 10 --server-pid PID]
//
// It prints one JSON object on its last stdout line with the fields of the
// Go load generator's fan-out result (bench/loadgen/stats.go) where they
// overlap; progress goes to stderr. --server-pid names a process group
// leader: CPU and memory are summed over its group (a clustered server's
// workers count too).
'use strict';

const { performance } = require('node:perf_hooks');
const { io } = require('socket.io-client');
const { parseArgs, groupUsage, sleep, inBatches } = require('./common');

const args = parseArgs(process.argv.slice(2), {
  url: 'http://127.0.0.1:5000', rooms: 50, members: 20, inflight: 4, warmup: 3, duration: 10, 'server-pid': 0,
});
const started = performance.now();
const log = (msg) => process.stderr.write(`[jsload ${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);
const PADDING = ' Hello everyone, this is a chat message of a typical length.';





function connect(url) {
  return new Promise((resolve, reject) => {
    // forceNew: one Manager, so one websocket, per client (the default
    // would multiplex every client over one connection).
    const s = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 20000 });
    s.once('connect', () => resolve(s));
    s.once('connect_error', (err) => { s.close(); reject(err); });
  });
}

async function main() {
  const n = args.rooms * args.members;
  const members = [];
  let windowStart = -1;
  let windowEnd = 0;
  let stopping = false;

  log(`fanout-js: connecting ${n} clients (${args.rooms} rooms × ${args.members} members)`);
  await inBatches(n, 64, async (i) => {
    const room = Math.floor(i / args.members);
    const uid = `bench_r${room}_m${i % args.members}`;
    const m = { room, uid, sender: i % args.members === 0, seq: 0, maxSeq: -1, latencies: [], received: 0, reordered: 0, errors: 0 };
    m.socket = await connect(args.url);
    members[i] = m;
  });
  log('fanout-js: connected; joining chat rooms');

  const send = (m) => {
    const seq = m.seq++;
    const sentUs = Math.round(performance.now() * 1000);
    m.socket.emit('send_message', {
      roomName: `bench_room_${m.room}`, message: `m${seq}:${sentUs}${PADDING}`, messageType: 'text',
      userProfile: { uid: m.uid, email: `${m.uid}@bench.example`, displayName: `Bench ${m.uid}` },
    });
  };
  await inBatches(n, 64, async (i) => {
    const m = members[i];
    const res = await m.socket.timeout(30000).emitWithAck('join_chat_room', {
      roomName: `bench_room_${m.room}`,
      userProfile: { uid: m.uid, email: `${m.uid}@bench.example`, displayName: `Bench ${m.uid}` },
    });
    if (res && res.ok === false) throw new Error(`member ${i}: join_chat_room refused: ${JSON.stringify(res)}`);
    m.socket.on('new_message', (msg) => {
      const now = performance.now() * 1000;
      const match = /^m(\d+):(\d+)/.exec(msg && msg.message);
      if (!match) return;
      const seq = Number(match[1]);
      m.received++;
      if (seq < m.maxSeq) m.reordered++;
      else m.maxSeq = seq;
      if (windowStart >= 0 && now >= windowStart && (windowEnd === 0 || now < windowEnd)) {
        m.latencies.push(now - Number(match[2]));
      }
      if (m.sender && !stopping) send(m);
    });
    m.socket.on('error', (err) => {
      m.errors++;
      // A refused send (a rate limit) would drain the pipeline: refill it.
      if (m.sender && !stopping && err && err.details && err.details.event === 'send_message') send(m);
    });
  });
  log(`fanout-js: joined; warm-up ${args.warmup}s, then ${args.duration}s measured`);
  await sleep(200); // user_joined_chat broadcasts settle

  for (const m of members) {
    if (m.sender) for (let k = 0; k < args.inflight; k++) send(m);
  }
  await sleep(args.warmup * 1000);
  const pid = args['server-pid'];
  const u0 = groupUsage(pid);
  const self0 = process.cpuUsage();
  windowStart = performance.now() * 1000;
  await sleep(args.duration * 1000);
  windowEnd = performance.now() * 1000;
  const u1 = groupUsage(pid);
  const self1 = process.cpuUsage(self0);
  stopping = true;
  await sleep(300); // receipts of the window still on their way are late: outside

  const window = (windowEnd - windowStart) / 1e6;
  const all = [];
  let reordered = 0;
  let errors = 0;
  let senderReceipts = 0;
  for (const m of members) {
    for (const l of m.latencies) all.push(l);
    reordered += m.reordered;
    errors += m.errors;
    if (m.sender) senderReceipts += m.latencies.length;
    m.socket.close();
  }
  const sorted = Float64Array.from(all).sort();
  // Nearest rank, as the Go load generator's quantile.
  const q = (p) => (sorted.length ? sorted[Math.min(Math.max(Math.round(sorted.length * p) - 1, 0), sorted.length - 1)] / 1000 : 0);
  const res = {
    scenario: 'fanout-js', url: args.url, clients: n, errors, rooms: args.rooms, members: args.members, inflight: args.inflight,
    windowSeconds: window, delivered: sorted.length, deliveredPerSec: sorted.length / window, sentPerSec: senderReceipts / window,
    p50Ms: q(0.5), p99Ms: q(0.99), p999Ms: q(0.999), maxMs: q(1), reordered,
    serverRssKiB: u1.rssKiB, serverHwmKiB: u1.hwmKiB,
    serverCpuCores: pid ? (u1.cpu - u0.cpu) / window : 0,
    loadgenCpuCores: (self1.user + self1.system) / 1e6 / window,
  };
  log(`fanout-js: delivered ${res.deliveredPerSec.toFixed(0)}/s, p50 ${res.p50Ms.toFixed(2)} ms, p99 ${res.p99Ms.toFixed(2)} ms, p999 ${res.p999Ms.toFixed(2)} ms, server ${res.serverCpuCores.toFixed(2)} cores, errors ${errors}`);
  process.stdout.write(JSON.stringify(res) + '\n');
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`jsload: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
