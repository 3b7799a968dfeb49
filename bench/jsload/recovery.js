// The recovery scenario of `make bench` (issue 16, "Cost"), driven by the
// official JavaScript client (socket.io-client 4.x), every client in this
// one Node.js process. Two modes:
//
// --mode recover: rooms × members clients connect, each joins its user room
// and its chat room as the source document's clients do, then all of them
// lose their connection without a clean disconnect (the engine closes under
// the socket, as a lost network does), so the server keeps their sessions
// recoverable. One more client per room (its sender) then sends --messages
// messages into its room, acknowledged (stored), so every member is owed
// them. The script then prints the line `restart` on stdout and waits for one
// line on stdin: the harness kills the server with SIGKILL, starts it again
// on the same data directory and port, waits for /readyz and answers
// {"pid":PID,"readySeconds":S} (the new process and how long the restart
// took). Every member then reconnects at once with the private session id
// and offset the client kept; the time runs from that answer until every
// member has socket.recovered === true and exactly the messages it missed,
// in log order (the order of the acks' positions). Failures are counted,
// per member: not reconnected, not recovered, missing messages, duplicated
// messages, out of order.
//
// --mode flood: --flood-members clients join one chat room; the first of
// them sends --flood-messages messages, keeping --inflight in flight (the
// next goes when one of its own echoes arrives), and every member reads
// them all. The server's VmRSS is read before the flood, right after it,
// after --settle seconds, and, when --debug-url names the server's pprof
// listener, after a forced GC (GET /debug/pprof/heap?gc=1) and --settle
// seconds more.
//
//   node recovery.js --url http://127.0.0.1:5000 --server-pid PID [--mode recover
//                    --rooms 50 --members 20 --messages 100 --timeout 120]
//   node recovery.js --mode flood --url … --server-pid PID [--flood-members 20
//                    --flood-messages 70000 --inflight 32 --settle 5 --debug-url URL]
//
// It prints one JSON object on its last stdout line (the fields the harness
// reads are those of bench/run's result); progress goes to stderr.
// --server-pid names a process group leader: CPU and memory are summed over
// its group.
'use strict';

const { randomBytes } = require('node:crypto');
const { performance } = require('node:perf_hooks');
const { io } = require('socket.io-client');
const { parseArgs, groupUsage, sleep, inBatches } = require('./common');

const args = parseArgs(process.argv.slice(2), {
  mode: 'recover', url: 'http://127.0.0.1:5000', 'server-pid': 0,
  rooms: 50, members: 20, messages: 100, timeout: 120, tail: 1,
  'flood-members': 20, 'flood-messages': 70000, inflight: 32, settle: 5, 'debug-url': '',
});
const started = performance.now();
const log = (msg) => process.stderr.write(`[recovery ${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);
const RUN = randomBytes(4).toString('hex');
const PADDING = ' Hello everyone, this is a chat message of a typical length.';



const now = () => performance.now() / 1000; // seconds


// connect opens one socket on its own Manager (forceNew: one websocket per
// client), without automatic reconnection: the script reconnects by hand.
function connect(url) {
  return new Promise((resolve, reject) => {
    const s = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 20000 });
    s.once('connect', () => resolve(s));
    s.once('connect_error', (err) => { s.close(); reject(err); });
  });
}

const profile = (uid) => ({ uid, email: `${uid}@bench.example`, displayName: `Bench ${uid}` });

async function emitOK(socket, event, payload, what) {
  const res = await socket.timeout(30000).emitWithAck(event, payload);
  if (!res || res.ok !== true) throw new Error(`${what}: ${event} refused: ${JSON.stringify(res)}`);
  return res;
}

// stdinLine resolves with the next line on stdin.
function stdinLine() {
  return new Promise((resolve) => {
    let buf = '';
    process.stdin.setEncoding('utf8');
    const onData = (chunk) => {
      buf += chunk;
      const i = buf.indexOf('\n');
      if (i < 0) return;
      process.stdin.off('data', onData);
      process.stdin.pause();
      resolve(buf.slice(0, i));
    };
    process.stdin.on('data', onData);
    process.stdin.resume();
  });
}

// position orders log positions ("N" or "commit/prepare").
const position = (p) => String(p).split('/').map(Number);
const before = (a, b) => a[0] < b[0] || (a[0] === b[0] && (a[1] || 0) < (b[1] || 0));

async function recover() {
  const n = args.rooms * args.members;
  const members = [];
  log(`recover: connecting ${n} members (${args.rooms} rooms × ${args.members}) and ${args.rooms} senders`);
  await inBatches(n, 64, async (i) => {
    const room = Math.floor(i / args.members);
    const uid = `rec_r${room}_m${i % args.members}_${RUN}`;
    const m = { i, room, uid, got: [], phase: 'before', connectedAt: 0, recovered: false, doneAt: 0, listAt: 0, failed: false, error: '' };
    m.socket = await connect(args.url);
    m.socket.on('disconnect', (reason) => {
      if (m.phase === 'before') log(`recover: member ${i} lost its connection before the drop: ${reason}`);
    });
    members[i] = m;
  });
  const senders = [];
  await inBatches(args.rooms, 16, async (room) => {
    senders[room] = { room, uid: `rec_sender_r${room}_${RUN}`, socket: await connect(args.url) };
  });
  const roomName = (room) => `rec_room_${room}_${RUN}`;
  await inBatches(n, 64, async (i) => {
    const m = members[i];
    await emitOK(m.socket, 'join_user_room', { userId: m.uid, userProfile: profile(m.uid) }, `member ${i}`);
    await emitOK(m.socket, 'join_chat_room', { roomName: roomName(m.room), userProfile: profile(m.uid) }, `member ${i}`);
  });
  await inBatches(args.rooms, 16, async (room) => {
    const s = senders[room];
    await emitOK(s.socket, 'join_chat_room', { roomName: roomName(room), userProfile: profile(s.uid) }, `sender ${room}`);
  });
  log('recover: joined; every member drops without a clean disconnect');

  let expected; // room → message ids in log order
  let finish = () => {};
  const check = (m) => {
    if (m.doneAt || !m.connectedAt || !expected) return;
    if (m.got.length >= expected[m.room].length) {
      m.doneAt = now();
      finish();
    }
  };
  for (const m of members) {
    const s = m.socket;
    s.on('new_message', (msg) => {
      if (msg && typeof msg.message === 'string' && msg.message.startsWith(`r${m.room}:`) && msg.message.includes(`:${RUN} `)) {
        m.got.push(msg.id);
        check(m);
      }
    });
    s.on('online_users', () => {
      if (m.connectedAt && !m.listAt) m.listAt = now();
    });
    s.on('connect', () => {
      if (m.phase !== 'reconnecting') return;
      m.connectedAt = now();
      m.recovered = s.recovered === true;
      if (!m.recovered) {
        m.failed = true; // a fresh connection: it is in no room, nothing more comes
        finish();
      }
      check(m);
    });
    s.on('connect_error', (err) => {
      if (m.phase !== 'reconnecting') return;
      m.error = String(err && err.message);
      m.failed = true;
      finish();
    });
  }
  await Promise.all(members.map((m) => new Promise((resolve) => {
    m.phase = 'dropping';
    m.socket.once('disconnect', resolve);
    m.socket.io.engine.close();
  })));
  for (const m of members) m.phase = 'away';

  log(`recover: each sender sends ${args.messages} messages into its room`);
  const sent = []; // room → [{id, pos}]
  await Promise.all(senders.map(async (s) => {
    sent[s.room] = [];
    await inBatches(args.messages, 8, async (seq) => {
      const res = await emitOK(s.socket, 'send_message', {
        roomName: roomName(s.room), message: `r${s.room}:${seq}:${RUN}${PADDING}`, messageType: 'text', userProfile: profile(s.uid),
      }, `sender ${s.room}`);
      sent[s.room].push({ id: res.id, pos: position(res.position) });
    });
  }));
  expected = sent.map((list) => list.slice().sort((a, b) => (before(a.pos, b.pos) ? -1 : before(b.pos, a.pos) ? 1 : 0)).map((x) => x.id));

  process.stdout.write('restart\n');
  const answer = JSON.parse(await stdinLine());
  const pid = answer.pid;
  const t0 = now();
  const u0 = groupUsage(pid);
  const self0 = process.cpuUsage();
  log(`recover: the server restarted in ${Number(answer.readySeconds).toFixed(2)} s (pid ${pid}); every member reconnects at once`);
  for (const s of senders) s.socket.close();
  const allDone = new Promise((resolve) => {
    finish = () => {
      if (members.every((m) => m.doneAt || m.failed)) resolve(false);
    };
  });
  for (const m of members) {
    m.phase = 'reconnecting';
    m.socket.connect();
  }
  const timedOut = await Promise.race([allDone, sleep(args.timeout * 1000).then(() => true)]);
  const tEnd = now();
  const u1 = groupUsage(pid);
  const self1 = process.cpuUsage(self0);
  await sleep(args.tail * 1000); // duplicates still on their way

  const f = { notReconnected: 0, notRecovered: 0, missing: 0, duplicated: 0, outOfOrder: 0 };
  const done = [];
  const lists = [];
  let ok = 0; // recovered with exactly what it missed, in order
  for (const m of members) {
    const want = expected[m.room];
    const rank = new Map(want.map((id, k) => [id, k]));
    const seen = new Set();
    let dup = false;
    let last = -1;
    let disorder = false;
    for (const id of m.got) {
      if (seen.has(id)) {
        dup = true;
        continue;
      }
      seen.add(id);
      const k = rank.get(id);
      if (k < last) disorder = true;
      last = Math.max(last, k);
    }
    if (!m.connectedAt) f.notReconnected++;
    else if (!m.recovered) f.notRecovered++;
    if (seen.size < want.length) f.missing++;
    if (dup) f.duplicated++;
    if (disorder) f.outOfOrder++;
    if (m.connectedAt && m.recovered && seen.size === want.length && !dup && !disorder) ok++;
    if (m.doneAt) done.push(m.doneAt - t0);
    if (m.listAt) lists.push(m.listAt - t0);
    m.socket.close();
  }
  const failed = f.notReconnected + f.notRecovered;
  done.sort((a, b) => a - b);
  lists.sort((a, b) => a - b);
  const q = (v, p) => (v.length ? v[Math.min(Math.max(Math.round(v.length * p) - 1, 0), v.length - 1)] : 0);
  const errors = [...new Set(members.filter((m) => m.error).map((m) => m.error))].slice(0, 3);
  const res = {
    scenario: 'recovery', url: args.url, clients: n, rooms: args.rooms, members: args.members, messages: args.messages,
    errors: failed + f.missing + f.duplicated + f.outOfOrder,
    recovered: ok, ...f, connectErrors: errors,
    timedOut, restartSeconds: Number(answer.readySeconds),
    recoverSeconds: timedOut ? tEnd - t0 : q(done, 1), recoverP50Seconds: q(done, 0.5),
    freshListSeconds: q(lists, 1), freshLists: lists.length,
    serverRssKiB: u1.rssKiB, serverHwmKiB: u1.hwmKiB, serverCpuSeconds: u1.cpu - u0.cpu,
    loadgenCpuCores: (self1.user + self1.system) / 1e6 / Math.max(tEnd - t0, 1e-9),
  };
  log(`recover: ${ok} of ${n} recovered with exactly their ${args.messages} messages, in order; the last verdict after ${res.recoverSeconds.toFixed(2)} s${timedOut ? ' (timed out)' : ''}` +
    `; not reconnected ${f.notReconnected}, not recovered ${f.notRecovered}, missing ${f.missing}, duplicated ${f.duplicated}, out of order ${f.outOfOrder}` +
    `; server peak RSS ${(u1.hwmKiB / 1024).toFixed(0)} MiB, ${res.serverCpuSeconds.toFixed(2)} CPU-s${errors.length ? `; errors: ${errors.join('; ')}` : ''}`);
  process.stdout.write(JSON.stringify(res) + '\n');
}

async function flood() {
  const n = args['flood-members'];
  const total = args['flood-messages'];
  const pid = args['server-pid'];
  const room = `flood_room_${RUN}`;
  const members = [];
  log(`flood: ${n} members join one room`);
  await inBatches(n, 16, async (i) => {
    const m = { uid: `flood_m${i}_${RUN}`, received: 0, dropped: false };
    m.socket = await connect(args.url);
    await emitOK(m.socket, 'join_user_room', { userId: m.uid, userProfile: profile(m.uid) }, `member ${i}`);
    await emitOK(m.socket, 'join_chat_room', { roomName: room, userProfile: profile(m.uid) }, `member ${i}`);
    m.socket.on('disconnect', () => { m.dropped = true; });
    members[i] = m;
  });
  await sleep(1000);
  const u0 = groupUsage(pid);
  const sender = members[0];
  let sentCount = 0;
  let refused = 0;
  let finish;
  const allRead = new Promise((resolve) => { finish = resolve; });
  const send = () => {
    if (sentCount >= total) return;
    const seq = sentCount++;
    sender.socket.emit('send_message', { roomName: room, message: `f${seq}:${RUN}${PADDING}`, messageType: 'text', userProfile: profile(sender.uid) });
  };
  for (const m of members) {
    m.socket.on('new_message', (msg) => {
      if (!msg || typeof msg.message !== 'string' || !msg.message.endsWith(`:${RUN}${PADDING}`)) return;
      m.received++;
      if (m === sender) send();
      if (members.every((x) => x.received >= total || x.dropped)) finish();
    });
  }
  sender.socket.on('error', (err) => {
    refused++; // a refused send would drain the window: refill it
    if (err && err.details && err.details.event === 'send_message') { sentCount--; send(); }
  });
  log(`flood: ${total} messages, ${args.inflight} in flight`);
  const t0 = now();
  for (let k = 0; k < args.inflight; k++) send();
  const timedOut = await Promise.race([allRead.then(() => false), sleep(args.timeout * 1000).then(() => true)]);
  const took = now() - t0;
  const u1 = groupUsage(pid);
  log(`flood: done in ${took.toFixed(1)} s (${(total / took).toFixed(0)} messages/s); settling ${args.settle} s`);
  await sleep(args.settle * 1000);
  const u2 = groupUsage(pid);
  let u3 = null;
  if (args['debug-url']) {
    const r = await fetch(`${args['debug-url']}/debug/pprof/heap?gc=1`);
    await r.arrayBuffer();
    if (!r.ok) throw new Error(`GET ${args['debug-url']}/debug/pprof/heap?gc=1: ${r.status}`);
    await sleep(args.settle * 1000);
    u3 = groupUsage(pid);
  }
  const short = members.filter((m) => m.received < total).length;
  const dropped = members.filter((m) => m.dropped).length;
  for (const m of members) m.socket.close();
  const res = {
    scenario: 'recovery-flood', url: args.url, clients: n, messages: total, errors: short + refused, timedOut,
    floodSeconds: took, short, dropped, refused,
    rssBeforeKiB: u0.rssKiB, rssFloodEndKiB: u1.rssKiB, rssAfterKiB: u2.rssKiB, rssAfterGcKiB: u3 ? u3.rssKiB : 0,
    serverRssKiB: (u3 || u2).rssKiB, serverHwmKiB: (u3 || u2).hwmKiB, serverCpuSeconds: u1.cpu - u0.cpu,
  };
  const mib = (k) => (k / 1024).toFixed(0);
  log(`flood: server RSS ${mib(u0.rssKiB)} MiB before, ${mib(u1.rssKiB)} at the end, ${mib(u2.rssKiB)} after ${args.settle} s` +
    `${u3 ? `, ${mib(u3.rssKiB)} after a forced GC and ${args.settle} s` : ''}; peak ${mib((u3 || u2).hwmKiB)} MiB; ` +
    `members short of ${total}: ${short}, disconnected: ${dropped}, refused sends: ${refused}`);
  process.stdout.write(JSON.stringify(res) + '\n');
}

const modes = { recover, flood };
if (!modes[args.mode]) throw new Error(`unknown --mode ${args.mode} (recover or flood)`);
modes[args.mode]().then(() => process.exit(0), (err) => {
  process.stderr.write(`recovery: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
