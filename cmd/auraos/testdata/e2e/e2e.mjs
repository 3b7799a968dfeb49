// End-to-end scenarios of `auraos serve`, driven with the official
// socket.io-client over one transport:
//
//   node e2e.mjs <scenario> <url> <websocket|polling>
//
// Each scenario checks the events of SOCKET_EVENTS.md and the rules of
// PROTOCOL.md (docs in shared/spec). It exits 0 when every assertion holds and
// 1 with a message naming what failed otherwise. User ids and room names carry
// the transport and a random suffix, so scenarios may share one server (run
// them one after another: the app counts of `apps` assume nobody else changes
// apps meanwhile).
//
// With connection-state recovery on, the server appends an offset argument to
// every event it emits; the handlers here use only the first argument.

import { io } from 'socket.io-client';
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync, randomBytes, sign as cryptoSign } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const [SCENARIO, URL, TRANSPORT] = process.argv.slice(2);
const RUN = `${TRANSPORT}-${randomBytes(4).toString('hex')}`;

const ACK_MS = 5000; // an acknowledgement
const WAIT_MS = 3000; // an event that must arrive
const NONE_MS = 300; // listening for an event that must not arrive
const SCENARIO_MS = 30000; // a whole scenario (each is meant to take a few seconds)
// connect() could let a new socket settle before a scenario emits on it. It
// does not: a client may emit right on `connect`, as the source document's
// clients do (the `connect-race` scenario hammers exactly that).
const CONNECT_SETTLE_MS = 0;

// ---------------------------------------------------------------------------
// Helpers

const opened = new Set();

const j = (v) => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 300 ? s.slice(0, 300) + '…' : s;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A unique id for this run. */
const uid = (name) => `${name}-${RUN}`;

/** A user profile; displayName and photoURL only when given. */
function profile(id, { displayName, photoURL } = {}) {
  const p = { uid: id, email: `${id}@example.com` };
  if (displayName !== undefined) p.displayName = displayName;
  if (photoURL !== undefined) p.photoURL = photoURL;
  return p;
}

/** The last events a socket received, for failure messages. */
function recent(socket) {
  const names = socket.log.slice(-12).map((e) => e.event);
  return names.length ? names.join(', ') : 'nothing';
}

/**
 * connect opens a socket over the scenario's transport (no reconnection, a
 * new manager each time) and resolves once it is connected. Every event it
 * receives is recorded in socket.log ({event, data}), so a scenario can
 * check afterwards what did or did not arrive.
 */
function connect(label, opts = {}) {
  const socket = io(URL, { transports: [TRANSPORT], reconnection: false, forceNew: true, timeout: WAIT_MS, ...opts });
  socket.label = label;
  socket.log = [];
  socket.onAny((event, ...args) => socket.log.push({ event, data: args[0] }));
  opened.add(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label}: not connected within ${WAIT_MS} ms`)), WAIT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      setTimeout(() => resolve(socket), CONNECT_SETTLE_MS);
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${label}: connect_error: ${err.message} ${j(err.data)}`));
    });
  });
}

/** matches applies pred to data; a predicate that throws (a payload of another shape) does not match. */
function matches(pred, data) {
  try {
    return Boolean(pred(data));
  } catch {
    return false;
  }
}

/**
 * once resolves with the first argument of the next `event` on socket that
 * satisfies pred, and rejects naming the event after timeoutMs. Register it
 * before the action that causes the event.
 */
function once(socket, event, timeoutMs = WAIT_MS, pred = () => true, what = '') {
  const p = new Promise((resolve, reject) => {
    const handler = (data) => {
      if (!matches(pred, data)) return;
      cleanup();
      resolve(data);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${socket.label}: timed out after ${timeoutMs} ms waiting for "${event}"${what ? ` (${what})` : ''}; it last received: ${recent(socket)}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off(event, handler);
    };
    socket.on(event, handler);
  });
  p.catch(() => {}); // awaited later; not an unhandled rejection meanwhile
  return p;
}

/** waitFor is once that also accepts a matching event already received. */
function waitFor(socket, event, pred = () => true, what = '', timeoutMs = WAIT_MS) {
  const seen = received(socket, event, pred);
  if (seen.length) return Promise.resolve(seen[0]);
  return once(socket, event, timeoutMs, pred, what);
}

/** received lists the payloads of `event` on socket (from index `from` of its log) that satisfy pred. */
function received(socket, event, pred = () => true, from = 0) {
  return socket.log.slice(from).filter((e) => e.event === event && matches(pred, e.data)).map((e) => e.data);
}

/** mark returns the current end of socket's event log. */
const mark = (socket) => socket.log.length;

/**
 * expectNone resolves after ms if socket received no matching `event`
 * meanwhile, and rejects as soon as it does.
 */
function expectNone(socket, event, ms = NONE_MS, pred = () => true, what = '') {
  return new Promise((resolve, reject) => {
    const handler = (data) => {
      if (!matches(pred, data)) return;
      cleanup();
      reject(new Error(`${socket.label} must not receive "${event}"${what ? ` (${what})` : ''}, but got ${j(data)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      resolve();
    }, ms);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off(event, handler);
    };
    socket.on(event, handler);
  });
}

/** assertNoneSince fails if socket received a matching `event` since log index from. */
function assertNoneSince(socket, from, event, pred = () => true, what = '') {
  const got = received(socket, event, pred, from);
  assert.equal(got.length, 0, `${socket.label} must not receive "${event}"${what ? ` (${what})` : ''}, but got ${j(got)}`);
}

/**
 * emitAck emits event with args and resolves with the acknowledgement,
 * rejecting if none arrives within ACK_MS. emitAck(s, 'x') sends no payload;
 * emitAck(s, 'x', null) sends null.
 */
function emitAck(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(ACK_MS).emit(event, ...args, (err, res) => {
      if (err) reject(new Error(`${socket.label}: no acknowledgement of "${event}" within ${ACK_MS} ms; it last received: ${recent(socket)}`));
      else resolve(res);
    });
  });
}

/** ackOK asserts a success acknowledgement. */
function ackOK(ack, what) {
  assert.ok(ack && typeof ack === 'object', `${what}: ack must be an object, got ${j(ack)}`);
  assert.equal(ack.ok, true, `${what}: ack must be {ok:true,…}, got ${j(ack)}`);
  return ack;
}

/** emitOK emits with an acknowledgement and asserts it is a success. */
async function emitOK(socket, event, ...args) {
  return ackOK(await emitAck(socket, event, ...args), `${socket.label} ${event} ${j(args[0])}`);
}

/**
 * refusal emits a client event that must be refused with one of codes and
 * returns a description of what is wrong (or null when the refusal is right):
 * an `error` event {message, code, details:{event, field?}} to the socket and
 * a failed ack {ok:false, error:{code, message}}. field, when given, must be
 * details.field.
 */
async function refusal(socket, event, args, codes, field) {
  codes = [].concat(codes);
  const errP = once(socket, 'error', WAIT_MS, (e) => e && e.details && e.details.event === event, `error for ${event}`);
  const problems = [];
  let ack;
  try {
    ack = await emitAck(socket, event, ...args);
  } catch (e) {
    problems.push(e.message);
  }
  if (ack !== undefined) {
    if (!ack || ack.ok !== false || !ack.error || !codes.includes(ack.error.code) || typeof ack.error.message !== 'string' || ack.error.message === '') {
      problems.push(`ack must be {ok:false, error:{code:${codes.join('|')}, message}}, got ${j(ack)}`);
    }
  }
  let err;
  try {
    err = await (ack && ack.ok === true ? Promise.race([errP, sleep(NONE_MS).then(() => { throw new Error('no error event'); })]) : errP);
  } catch (e) {
    problems.push(`no "error" event with details.event ${j(event)}`);
  }
  if (err) {
    if (!codes.includes(err.code)) problems.push(`error.code must be ${codes.join('|')}, got ${j(err.code)}`);
    if (typeof err.message !== 'string' || err.message === '') problems.push(`error.message must be a non-empty string, got ${j(err.message)}`);
    if (field !== undefined && err.details.field !== field) problems.push(`error.details.field must be ${j(field)}, got ${j(err.details.field)}`);
  }
  return problems.length ? `${event} ${j(args)}: ${problems.join('; ')}` : null;
}

/** expectRefused asserts a refusal (see refusal). */
async function expectRefused(socket, event, args, codes, field) {
  const problem = await refusal(socket, event, args, codes, field);
  assert.equal(problem, null, `${socket.label}: ${problem}`);
}

/** assertISODate asserts a date string as JSON.stringify(new Date()) makes it. */
function assertISODate(v, what) {
  assert.equal(typeof v, 'string', `${what} must be an ISO date string, got ${j(v)}`);
  assert.ok(!Number.isNaN(Date.parse(v)) && new Date(v).toISOString() === v, `${what} must be an ISO 8601 date string (Date#toISOString), got ${j(v)}`);
}

/** assertKeys asserts exactly these keys. */
function assertKeys(obj, keys, what) {
  assert.ok(obj && typeof obj === 'object' && !Array.isArray(obj), `${what} must be an object, got ${j(obj)}`);
  assert.deepEqual(Object.keys(obj).sort(), [...keys].sort(), `${what}: fields ${j(Object.keys(obj))}, want ${j(keys)}`);
}

const MESSAGE_KEYS = ['id', 'roomName', 'userId', 'userName', 'userAvatar', 'message', 'messageType', 'timestamp', 'isAI'];

/** assertMessage checks a new_message / chat_history entry. */
function assertMessage(m, want, what) {
  assertKeys(m, MESSAGE_KEYS, what);
  assert.equal(typeof m.id, 'string', `${what}.id`);
  assert.ok(m.id.length > 0, `${what}.id must not be empty`);
  assertISODate(m.timestamp, `${what}.timestamp`);
  for (const [k, v] of Object.entries(want)) assert.deepEqual(m[k], v, `${what}.${k}: got ${j(m[k])}, want ${j(v)}`);
}

/** onlineEntries returns the entries of an online_users list for a user id. */
const onlineEntries = (list, id) => (Array.isArray(list) ? list.filter((u) => u && u.id === id) : []);
const lists = (id) => (list) => onlineEntries(list, id).length > 0;
const lacks = (id) => (list) => Array.isArray(list) && onlineEntries(list, id).length === 0;

/** assertOnlineList checks an online_users list holds each user once and the given user as given. */
function assertOnlineList(list, id, prof, socketIds, what) {
  assert.ok(Array.isArray(list), `${what}: online_users must be an array, got ${j(list)}`);
  const ids = list.map((u) => u && u.id);
  assert.equal(new Set(ids).size, ids.length, `${what}: online_users must list each user once, got ids ${j(ids)}`);
  const entries = onlineEntries(list, id);
  assert.equal(entries.length, 1, `${what}: online_users must list ${id} once, got ${j(list)}`);
  const u = entries[0];
  assertKeys(u, ['id', 'socketId', 'connectedAt', 'userProfile', 'status', 'lastSeen'], `${what}: online_users entry of ${id}`);
  assert.equal(typeof u.socketId, 'string', `${what}: socketId`);
  if (socketIds) assert.ok([].concat(socketIds).includes(u.socketId), `${what}: socketId ${j(u.socketId)} must be one of ${j(socketIds)}`);
  assertISODate(u.connectedAt, `${what}: connectedAt`);
  assert.deepEqual(u.userProfile, prof, `${what}: userProfile of ${id}`);
  assert.equal(u.status, 'online', `${what}: status of ${id}`);
  assertISODate(u.lastSeen, `${what}: lastSeen`);
}

/** joinChat joins a chat room and returns {joined, history}. */
async function joinChat(socket, room, prof) {
  const joinedP = once(socket, 'joined_chat', WAIT_MS, (d) => d && d.room === room, `room ${room}`);
  const historyP = once(socket, 'chat_history', WAIT_MS, () => true, `room ${room}`);
  const from = mark(socket);
  await emitOK(socket, 'join_chat_room', { roomName: room, userProfile: prof });
  const joined = await joinedP;
  const history = await historyP;
  const order = socket.log.slice(from).map((e) => e.event).filter((e) => e === 'joined_chat' || e === 'chat_history');
  assert.deepEqual(order.slice(0, 2), ['joined_chat', 'chat_history'], `${socket.label}: joined_chat must come before chat_history`);
  return { joined, history };
}

/** send posts a chat message, waiting and retrying while RATE_LIMITED; returns the ack. */
async function send(socket, room, prof, message, extra = {}) {
  for (let attempt = 0; ; attempt++) {
    const ack = await emitAck(socket, 'send_message', { roomName: room, message, userProfile: prof, ...extra });
    if (ack && ack.ok === false && ack.error && ack.error.code === 'RATE_LIMITED' && attempt < 100) {
      await sleep(60);
      continue;
    }
    return ackOK(ack, `${socket.label} send_message ${j(message)}`);
  }
}

/** disconnected resolves with the reason once socket disconnects. */
function disconnected(socket, timeoutMs = WAIT_MS) {
  if (!socket.connected) return Promise.resolve('already disconnected');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${socket.label}: not disconnected within ${timeoutMs} ms`)), timeoutMs);
    socket.once('disconnect', (reason) => {
      clearTimeout(timer);
      resolve(reason);
    });
  });
}

/** close disconnects a socket. */
function close(socket) {
  socket.disconnect();
  opened.delete(socket);
}

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {};

// User presence: join_user_room, user_joined, online_users, user_left.
scenarios.presence = async () => {
  const A = uid('alice'), B = uid('bob');
  const pa = profile(A, { displayName: 'Alice Presence' });
  const pb = profile(B, { displayName: 'Bob Presence', photoURL: 'https://example.com/bob.png' });
  const observer = await connect('observer'); // joins nothing: online_users and user_left go to every client
  const a = await connect('alice');

  const joinedP = once(a, 'user_joined');
  const aListP = once(a, 'online_users', WAIT_MS, lists(A), `listing ${A}`);
  const obsListP = once(observer, 'online_users', WAIT_MS, lists(A), `listing ${A}`);
  const ack = await emitOK(a, 'join_user_room', { userId: A, userProfile: pa });
  assert.equal(typeof ack.position, 'number', `join_user_room ack must carry a numeric position, got ${j(ack)}`);
  assert.deepEqual(await joinedP, { id: A, socketId: a.id }, 'user_joined');
  assertOnlineList(await aListP, A, pa, a.id, 'alice');
  assertOnlineList(await obsListP, A, pa, a.id, 'observer');

  // A second user: everyone's list has both.
  const b = await connect('bob');
  const aBothP = once(a, 'online_users', WAIT_MS, lists(B), `listing ${B}`);
  const bJoinedP = once(b, 'user_joined');
  const bListP = once(b, 'online_users', WAIT_MS, lists(B), `listing ${B}`);
  await emitOK(b, 'join_user_room', { userId: B, userProfile: pb });
  assert.deepEqual(await bJoinedP, { id: B, socketId: b.id }, 'user_joined of bob');
  for (const [list, who] of [[await aBothP, 'alice'], [await bListP, 'bob']]) {
    assertOnlineList(list, A, pa, a.id, `${who} (after bob joined)`);
    assertOnlineList(list, B, pb, b.id, `${who} (after bob joined)`);
  }

  // Alice on a second socket is still listed once.
  const a2 = await connect('alice#2');
  const a2JoinedP = once(a2, 'user_joined');
  const a2ListP = once(a2, 'online_users', WAIT_MS, lists(A), `listing ${A}`);
  const a2Ack = await emitOK(a2, 'join_user_room', { userId: A, userProfile: pa });
  assert.equal(typeof a2Ack.position, 'number', `join_user_room ack must carry a numeric position, got ${j(a2Ack)}`);
  assert.deepEqual(await a2JoinedP, { id: A, socketId: a2.id }, 'user_joined of alice#2');
  assertOnlineList(await a2ListP, A, pa, [a.id, a2.id], 'alice#2');
  assertOnlineList(await a2ListP, B, pb, b.id, 'alice#2');

  // Closing one of alice's sockets: no user_left, still listed.
  await sleep(150); // let the online_users of alice#2's join go out first
  const fromB = mark(b), fromObs = mark(observer);
  const bAfterCloseP = once(b, 'online_users', WAIT_MS, () => true, 'after alice#2 closed');
  close(a2);
  assertOnlineList(await bAfterCloseP, A, pa, a.id, 'bob (after alice#2 closed)');
  await sleep(NONE_MS);
  assertNoneSince(b, fromB, 'user_left', (id) => id === A, 'alice still has a socket');
  assertNoneSince(observer, fromObs, 'user_left', (id) => id === A, 'alice still has a socket');
  assert.equal(onlineEntries(received(b, 'online_users', () => true, fromB).at(-1), A).length, 1, 'alice must stay listed once');

  // Closing the last: user_left with the plain user id, and the list drops alice.
  const bLeftP = once(b, 'user_left', WAIT_MS, (id) => id === A, `user_left ${A}`);
  const obsLeftP = once(observer, 'user_left', WAIT_MS, (id) => id === A, `user_left ${A}`);
  const bGoneP = once(b, 'online_users', WAIT_MS, lacks(A), `not listing ${A}`);
  close(a);
  assert.equal(await bLeftP, A, 'user_left payload is the user id string');
  assert.equal(await obsLeftP, A, 'user_left payload is the user id string');
  const gone = await bGoneP;
  assertOnlineList(gone, B, pb, b.id, 'bob (after alice left)');
  await sleep(NONE_MS);
  assert.equal(received(b, 'user_left', (id) => id === A).length, 1, 'user_left must go out once for alice');
  // user_joined confirms to the joining socket only.
  assertNoneSince(observer, 0, 'user_joined', () => true, 'the confirmation of another socket');
  assert.deepEqual(received(b, 'user_joined'), [{ id: B, socketId: b.id }], 'bob gets only his own user_joined');
};

// Chat: join_chat_room, joined_chat, chat_history, user_joined_chat,
// send_message, new_message, leave_room, user_left_chat, join_room.
scenarios.chat = async () => {
  const R = uid('room');
  const A = uid('alice'), B = uid('bob'), C = uid('carol'), D = uid('dave'), E = uid('eve');
  const pa = profile(A, { displayName: 'Alice Chat' }); // no photo
  const pb = profile(B, { displayName: 'Bob Chat', photoURL: 'https://example.com/bob.jpg' });
  const pc = profile(C); // neither display name nor photo: named by email
  const pd = profile(D, { displayName: 'Dave Chat' });

  const a = await connect('alice');
  const first = await joinChat(a, R, pa);
  assert.deepEqual(first.joined, { room: R, message: `Joined ${R}` }, 'joined_chat');
  assert.deepEqual(first.history, [], 'chat_history of a new room');

  // A second member: the first hears of it, the joiner does not.
  const b = await connect('bob');
  const aSeesBP = once(a, 'user_joined_chat', WAIT_MS, (d) => d.user.uid === B, `${B} joined`);
  const bJoin = await joinChat(b, R, pb);
  assert.deepEqual(bJoin.joined, { room: R, message: `Joined ${R}` }, 'joined_chat of bob');
  assert.deepEqual(bJoin.history, [], 'chat_history of bob');
  assert.deepEqual(await aSeesBP, { user: pb, message: 'Bob Chat joined the chat' }, 'user_joined_chat');

  const c = await connect('carol');
  const aSeesCP = once(a, 'user_joined_chat', WAIT_MS, (d) => d.user.uid === C, `${C} joined`);
  const bSeesCP = once(b, 'user_joined_chat', WAIT_MS, (d) => d.user.uid === C, `${C} joined`);
  await joinChat(c, R, pc);
  const carolJoined = { user: pc, message: `${pc.email} joined the chat` };
  assert.deepEqual(await aSeesCP, carolJoined, 'user_joined_chat without a display name');
  assert.deepEqual(await bSeesCP, carolJoined, 'user_joined_chat without a display name');

  // A client in the room by join_room gets the room's broadcasts.
  const e = await connect('eve (join_room)');
  await emitOK(e, 'join_room', R);
  // A client in another room gets none of them.
  const outsider = await connect('outsider');
  await joinChat(outsider, uid('elsewhere'), profile(uid('outsider')));
  await emitOK(outsider, 'join_room', uid('elsewhere2'));
  const outsiderFrom = mark(outsider);

  await sleep(NONE_MS);
  assertNoneSince(b, 0, 'user_joined_chat', (d) => d.user.uid === B, 'its own join');
  assertNoneSince(c, 0, 'user_joined_chat', (d) => d.user.uid === C, 'its own join');

  const members = [a, b, c, e];
  const delivered = async (ack, want, what) => {
    const got = await Promise.all(members.map((s) => waitFor(s, 'new_message', (m) => m.id === ack.id, what)));
    for (const [i, m] of got.entries()) assertMessage(m, { id: ack.id, ...want }, `new_message to ${members[i].label} (${what})`);
    for (const m of got.slice(1)) assert.deepEqual(m, got[0], `every member gets the same new_message (${what})`);
    return got[0];
  };

  // send_message: to every member including the sender; ack carries id and position.
  const t1 = `hello from alice ${RUN}`;
  const ack1 = await send(a, R, pa, t1, { messageType: 'text' });
  assert.equal(typeof ack1.id, 'string', `send_message ack.id, got ${j(ack1)}`);
  assert.equal(typeof ack1.position, 'number', `send_message ack.position, got ${j(ack1)}`);
  const m1 = await delivered(ack1, { roomName: R, userId: A, userName: 'Alice Chat', userAvatar: null, message: t1, messageType: 'text', isAI: false }, 'text without photo');

  const t2 = `bob with a photo ${RUN}`;
  const ack2 = await send(b, R, pb, t2);
  assert.notEqual(ack2.id, ack1.id, 'message ids are unique');
  assert.ok(ack2.position > ack1.position, `positions grow: ${ack1.position} then ${ack2.position}`);
  const m2 = await delivered(ack2, { roomName: R, userId: B, userName: 'Bob Chat', userAvatar: pb.photoURL, message: t2, messageType: 'text', isAI: false }, 'photo, default messageType');

  const t3 = `system note ${RUN}`;
  const ack3 = await send(c, R, pc, t3, { messageType: 'system' });
  const m3 = await delivered(ack3, { roomName: R, userId: C, userAvatar: null, message: t3, messageType: 'system', isAI: false }, 'messageType system');
  assert.equal(typeof m3.userName, 'string');

  // A retry with the same clientMsgId stores and sends nothing new.
  const t4 = `retried ${RUN}`;
  const cm = `cm-${RUN}`;
  const ack4 = await send(a, R, pa, t4, { clientMsgId: cm });
  const m4 = await delivered(ack4, { roomName: R, userId: A, message: t4, messageType: 'text', isAI: false }, 'clientMsgId');
  const ack4b = await send(a, R, pa, t4, { clientMsgId: cm });
  assert.equal(ack4b.id, ack4.id, 'a retry with the same clientMsgId acks the first message id');
  await sleep(NONE_MS);
  for (const s of members) {
    assert.equal(received(s, 'new_message', (m) => m.message === t4).length, 1, `${s.label} must get one new_message for a retried clientMsgId`);
  }

  await sleep(NONE_MS);
  for (const ev of ['new_message', 'user_joined_chat', 'joined_chat', 'chat_history']) assertNoneSince(outsider, outsiderFrom, ev, () => true, `of room ${R}`);
  for (const s of [a, b, c]) {
    assert.equal(received(s, 'joined_chat').length, 1, `${s.label} gets joined_chat for its own join only`);
    assert.equal(received(s, 'chat_history').length, 1, `${s.label} gets chat_history for its own join only`);
  }

  // A later joiner's history: the same messages, oldest first.
  const d = await connect('dave');
  const dJoinSeen = members.slice(0, 3).map((s) => once(s, 'user_joined_chat', WAIT_MS, (x) => x.user.uid === D, `${D} joined`));
  const dJoin = await joinChat(d, R, pd);
  assert.deepEqual(dJoin.history, [m1, m2, m3, m4], 'chat_history of a later joiner: every message, oldest first, as sent');
  for (const p of dJoinSeen) assert.deepEqual(await p, { user: pd, message: 'Dave Chat joined the chat' });

  // leave_room: the others hear of it; the leaver gets no more messages.
  const leftCarol = { user: pc, message: `${pc.email} left the chat` };
  const leaveSeen = [a, b, d].map((s) => once(s, 'user_left_chat', WAIT_MS, (x) => x.user.uid === C, `${C} left`));
  await emitOK(c, 'leave_room', R);
  for (const p of leaveSeen) assert.deepEqual(await p, leftCarol, 'user_left_chat after leave_room');
  const cFrom = mark(c);
  const t5 = `after carol left ${RUN}`;
  const ack5 = await send(d, R, pd, t5);
  await Promise.all([a, b, d, e].map((s) => waitFor(s, 'new_message', (m) => m.id === ack5.id, 'after carol left')));
  await sleep(NONE_MS);
  assertNoneSince(c, cFrom, 'new_message', () => true, 'it left the room');

  // Disconnecting: the rest hear that the member left.
  const bobLeftSeen = [a, d].map((s) => once(s, 'user_left_chat', WAIT_MS, (x) => x.user.uid === B, `${B} left`));
  close(b);
  for (const p of bobLeftSeen) assert.deepEqual(await p, { user: pb, message: 'Bob Chat left the chat' }, 'user_left_chat after a disconnect');

  // The last 50 of 55 messages, oldest first.
  const H = uid('hist');
  const R2 = uid('room55');
  const ph = profile(H, { displayName: 'History Writer' });
  const h = await connect('history writer');
  await joinChat(h, R2, ph);
  const ids = [];
  for (let i = 1; i <= 55; i++) ids.push((await send(h, R2, ph, `m${i}`)).id);
  const g = await connect('late joiner');
  const gJoin = await joinChat(g, R2, profile(E));
  assert.equal(gJoin.history.length, 50, `chat_history must hold the last 50 messages, got ${gJoin.history.length}`);
  assert.deepEqual(gJoin.history.map((m) => m.message), Array.from({ length: 50 }, (_, i) => `m${i + 6}`), 'chat_history: the last 50, oldest first');
  assert.deepEqual(gJoin.history.map((m) => m.id), ids.slice(5), 'chat_history ids');
  for (const [i, m] of gJoin.history.entries()) {
    assertMessage(m, { roomName: R2, userId: H, userName: 'History Writer', userAvatar: null, messageType: 'text', isAI: false }, `chat_history[${i}]`);
  }
};

// Typing indicators.
scenarios.typing = async () => {
  const R = uid('typing'), R2 = uid('typing2');
  const A = uid('alice'), B = uid('bob'), C = uid('carol');
  const pa = profile(A, { displayName: 'Alice Types' });
  const a = await connect('alice'), b = await connect('bob'), c = await connect('carol'), o = await connect('outsider');
  await joinChat(a, R, pa);
  await joinChat(b, R, profile(B, { displayName: 'Bob' }));
  await joinChat(c, R, profile(C));
  await joinChat(o, uid('elsewhere'), profile(uid('outsider')));
  const others = [b, c];
  const typing = (isTyping) => ({ userId: A, userName: 'Alice Types', isTyping });

  let waits = others.map((s) => once(s, 'user_typing', WAIT_MS, (d) => d.userId === A && d.isTyping === true, 'alice typing'));
  const typerNone = expectNone(a, 'user_typing', 1000, () => true, 'the typer');
  await emitOK(a, 'typing_start', { roomName: R, userProfile: pa });
  for (const p of waits) assert.deepEqual(await p, typing(true), 'user_typing on typing_start');

  waits = others.map((s) => once(s, 'user_typing', WAIT_MS, (d) => d.userId === A && d.isTyping === false, 'alice stopped'));
  await emitOK(a, 'typing_stop', { roomName: R, userProfile: pa });
  for (const p of waits) assert.deepEqual(await p, typing(false), 'user_typing on typing_stop');
  await typerNone;

  // Disconnecting while typing in two rooms: both rooms see the typing stop.
  const d2 = await connect('dave (second room)');
  await joinChat(d2, R2, profile(uid('dave')));
  waits = [...others, d2].map((s) => once(s, 'user_typing', WAIT_MS, (d) => d.userId === A && d.isTyping === true, 'alice typing again'));
  await emitOK(a, 'typing_start', { roomName: R, userProfile: pa });
  await emitOK(a, 'typing_start', { roomName: R2, userProfile: pa });
  for (const p of waits) await p;
  waits = [...others, d2].map((s) => once(s, 'user_typing', WAIT_MS, (d) => d.userId === A && d.isTyping === false, 'alice gone while typing'));
  close(a);
  for (const p of waits) assert.deepEqual(await p, typing(false), 'user_typing after a disconnect while typing');
  await sleep(NONE_MS);
  assertNoneSince(o, 0, 'user_typing', () => true, 'typing in rooms it is not in');
  assert.equal(received(d2, 'user_typing', (d) => d.isTyping === false).length, 1, 'one user_typing false per room');
};

// Notifications go to the named user's sockets only; the private user room
// cannot be joined by any name.
scenarios.notifications = async () => {
  const A = uid('alice'), B = uid('bob'), C = uid('mallory');
  const a = await connect('alice'), b = await connect('bob'), b2 = await connect('bob#2'), c = await connect('mallory');
  await emitOK(a, 'join_user_room', { userId: A, userProfile: profile(A) });
  await emitOK(b, 'join_user_room', { userId: B, userProfile: profile(B, { displayName: 'Bob' }) });
  await emitOK(b2, 'join_user_room', { userId: B, userProfile: profile(B, { displayName: 'Bob' }) });

  // Every name that might reach bob's private room (an ack either way; it must not deliver).
  for (const name of [B, `user:${B}`, `user_${B}`, `user-${B}`, `room:${B}`, `sys:${B}`]) {
    await emitAck(c, 'join_room', name);
    await emitAck(c, 'join_system_room', name);
    await emitAck(c, 'join_chat_room', { roomName: name, userProfile: profile(C) });
  }

  const n = { title: 'New Message', message: 'You have a new message from Alice', type: 'info', data: { messageId: `msg-${RUN}`, nested: { list: [1, 'two', null] } } };
  const from = [a, c].map(mark);
  const got = [b, b2].map((s) => once(s, 'notification', WAIT_MS, (x) => x.title === n.title));
  const ack = await emitOK(a, 'send_notification', { to: B, notification: n });
  assert.equal(typeof ack.position, 'number', `send_notification ack position, got ${j(ack)}`);
  for (const p of got) assert.deepEqual(await p, n, 'notification payload');

  // Without data, another type.
  const n2 = { title: 'Heads up', message: 'Disk almost full', type: 'warning' };
  const got2 = [b, b2].map((s) => once(s, 'notification', WAIT_MS, (x) => x.title === n2.title));
  await emitOK(a, 'send_notification', { to: B, notification: n2 });
  for (const p of got2) {
    const x = await p;
    assert.ok(x.data === undefined || x.data === null, `notification without data: data ${j(x.data)}`);
    delete x.data;
    assert.deepEqual(x, n2, 'notification payload without data');
  }

  await sleep(NONE_MS);
  assertNoneSince(a, from[0], 'notification', () => true, 'the sender of a notification to bob');
  assertNoneSince(c, from[1], 'notification', () => true, "a client that tried to join bob's private room");
};

// Admin-only events in open mode (nobody is admin) and system rooms.
scenarios.system = async () => {
  const A = uid('alice');
  const a = await connect('alice'), anon = await connect('anonymous'), observer = await connect('observer');
  await emitOK(a, 'join_user_room', { userId: A, userProfile: profile(A) });
  const alert = { title: 'Maintenance Notice', message: 'System will be down in 10 minutes', severity: 'warning', action: { label: 'Learn More', url: '/maintenance' } };
  const from = [a, anon, observer].map(mark);

  for (const s of [a, anon]) {
    const errP = once(s, 'error', WAIT_MS, (e) => e.details && e.details.event === 'broadcast_system_alert');
    const ack = await emitAck(s, 'broadcast_system_alert', alert);
    assertKeys(ack, ['ok', 'error'], 'refused broadcast_system_alert ack');
    assert.equal(ack.ok, false);
    assertKeys(ack.error, ['code', 'message'], 'ack.error');
    assert.equal(ack.error.code, 'FORBIDDEN', `ack ${j(ack)}`);
    assert.equal(typeof ack.error.message, 'string');
    const err = await errP;
    assert.equal(err.code, 'FORBIDDEN', `error ${j(err)}`);
    assert.equal(typeof err.message, 'string');
    assert.ok(err.message.length > 0);
    assert.equal(err.details.event, 'broadcast_system_alert');
  }
  await expectRefused(a, 'join_system_room', ['admin_notifications'], 'FORBIDDEN');
  await expectRefused(anon, 'join_system_room', ['admin_notifications'], 'FORBIDDEN');
  assert.deepEqual(await emitAck(a, 'join_system_room', 'system_updates'), { ok: true }, 'join_system_room system_updates');
  assert.deepEqual(await emitAck(anon, 'join_system_room', 'app_updates'), { ok: true }, 'join_system_room app_updates');
  await sleep(NONE_MS);
  for (const [i, s] of [a, anon, observer].entries()) assertNoneSince(s, from[i], 'system_alert', () => true, 'refused alert');
};

/** status requests system_status_update and returns the reply (sent before the ack). */
async function status(socket) {
  const from = mark(socket);
  await emitOK(socket, 'request_system_status');
  let st = received(socket, 'system_status_update', () => true, from).at(-1);
  if (!st) st = await once(socket, 'system_status_update', WAIT_MS, () => true, 'reply to request_system_status');
  assertKeys(st, ['totalApps', 'activeApps', 'inactiveApps', 'uptime', 'timestamp'], 'system_status_update');
  for (const k of ['totalApps', 'activeApps', 'inactiveApps']) assert.ok(Number.isInteger(st[k]) && st[k] >= 0, `${k} must be a count, got ${j(st[k])}`);
  assert.equal(st.totalApps, st.activeApps + st.inactiveApps, `totalApps = activeApps + inactiveApps: ${j(st)}`);
  assert.equal(typeof st.uptime, 'string', 'uptime');
  assert.ok(st.uptime.length > 0, 'uptime must not be empty');
  assert.equal(typeof st.timestamp, 'string', 'timestamp');
  assert.ok(!Number.isNaN(Date.parse(st.timestamp)), `timestamp must be a date, got ${j(st.timestamp)}`);
  return st;
}

// App status: app_updated to every client, system_status_update on request.
scenarios.apps = async () => {
  const a = await connect('alice'), b = await connect('bob'), idle = await connect('joined nothing');
  await emitOK(a, 'join_user_room', { userId: uid('alice'), userProfile: profile(uid('alice')) });
  await joinChat(b, uid('room'), profile(uid('bob')));
  const all = [a, b, idle];
  const X = uid('app-x'), Y = uid('app-y');

  const update = async (sender, appId, st) => {
    const waits = all.map((s) => once(s, 'app_updated', WAIT_MS, (d) => d.appId === appId && d.status === st, `${appId} ${st}`));
    const before = Date.now();
    const ack = await emitOK(sender, 'update_app_status', { appId, status: st });
    for (const [i, p] of waits.entries()) {
      const d = await p;
      assertKeys(d, ['appId', 'status', 'updatedAt'], `app_updated to ${all[i].label}`);
      assertISODate(d.updatedAt, 'app_updated.updatedAt');
      assert.ok(Math.abs(Date.parse(d.updatedAt) - before) < 60000, `updatedAt ${d.updatedAt} is now`);
    }
    return ack;
  };

  const s0 = await status(idle);
  await update(b, X, 'active');
  const s1 = await status(idle);
  assert.deepEqual([s1.totalApps, s1.activeApps, s1.inactiveApps], [s0.totalApps + 1, s0.activeApps + 1, s0.inactiveApps], `a new active app: ${j(s0)} then ${j(s1)}`);
  await update(a, X, 'inactive');
  const s2 = await status(a);
  assert.deepEqual([s2.totalApps, s2.activeApps, s2.inactiveApps], [s1.totalApps, s1.activeApps - 1, s1.inactiveApps + 1], `the app turned inactive: ${j(s1)} then ${j(s2)}`);
  await update(idle, Y, 'inactive');
  const s3 = await status(b);
  assert.deepEqual([s3.totalApps, s3.activeApps, s3.inactiveApps], [s2.totalApps + 1, s2.activeApps, s2.inactiveApps + 1], `a new inactive app: ${j(s2)} then ${j(s3)}`);
  await update(a, Y, 'active');
  const s4 = await status(a);
  assert.deepEqual([s4.totalApps, s4.activeApps, s4.inactiveApps], [s3.totalApps, s3.activeApps + 1, s3.inactiveApps - 1], `an app turned active: ${j(s3)} then ${j(s4)}`);
};

// Periodic system_status_update (the server runs with --status-interval 1s).
scenarios['status-periodic'] = async () => {
  const a = await connect('alice'), idle = await connect('joined nothing');
  await emitOK(a, 'join_user_room', { userId: uid('alice'), userProfile: profile(uid('alice')) });
  // A server may send one status at connect; count only what comes after it.
  await sleep(300);
  const from = [a, idle].map(mark);
  await sleep(3500);
  for (const [i, s] of [a, idle].entries()) {
    const got = received(s, 'system_status_update', () => true, from[i]);
    assert.ok(got.length >= 2, `${s.label} must get at least two periodic system_status_update within 3.5 s (interval 1s) without asking, got ${got.length}`);
    for (const st of got) {
      assertKeys(st, ['totalApps', 'activeApps', 'inactiveApps', 'uptime', 'timestamp'], 'periodic system_status_update');
      assert.equal(typeof st.uptime, 'string');
      assert.equal(typeof st.timestamp, 'string');
    }
  }
};

// Data agent updates go to every client with a timestamp.
scenarios.agent = async () => {
  const a = await connect('agent'), b = await connect('bob'), idle = await connect('joined nothing');
  await emitOK(b, 'join_user_room', { userId: uid('bob'), userProfile: profile(uid('bob')) });
  const all = [a, b, idle];
  const agentId = uid('agent');
  for (const [status, data] of [['processing', { progress: 75 }], ['done', [1, 'two', { three: null }]], ['idle', 'plain text']]) {
    const waits = all.map((s) => once(s, 'data_agent_update', WAIT_MS, (d) => d.agentId === agentId && d.status === status, `${agentId} ${status}`));
    await emitOK(a, 'data_agent_update', { agentId, status, data });
    for (const [i, p] of waits.entries()) {
      const d = await p;
      assertKeys(d, ['agentId', 'status', 'data', 'timestamp'], `data_agent_update to ${all[i].label}`);
      assert.deepEqual(d.data, data, 'data_agent_update.data');
      assertISODate(d.timestamp, 'data_agent_update.timestamp');
    }
  }
};

// Every client event refuses a bad payload with INVALID_PAYLOAD (error event
// and failed ack) and stores and sends nothing.
scenarios.validation = async () => {
  const V = uid('val'), W = uid('watch');
  const RV = uid('valroom');
  const pv = profile(V, { displayName: 'Validator' });
  const pw = profile(W);
  const w = await connect('watcher');
  await emitOK(w, 'join_user_room', { userId: W, userProfile: pw });
  await joinChat(w, RV, pw);
  const v = await connect('validator');
  await joinChat(v, RV, pv); // binds the socket to V, so the cases below are not FORBIDDEN

  const ok1 = await send(v, RV, pv, `valid before ${RUN}`);
  await waitFor(w, 'new_message', (m) => m.id === ok1.id, 'the valid message');
  const wFrom = mark(w);

  const long = (n, ch = 'x') => ch.repeat(n);
  const big = { blob: long(16 * 1024) }; // more than 16 KiB as JSON
  const appX = uid('app'), agentX = uid('agent');
  const msg = (over) => ({ roomName: RV, message: 'fine text', userProfile: pv, ...over });
  const notif = (over, top = {}) => ({ to: W, notification: { title: 'T', message: 'M', type: 'info', ...over }, ...top });
  const noEmail = { uid: V, displayName: 'Validator' };

  // [event, payload, field?] — field where one field is at fault.
  const cases = [
    ['join_user_room', null],
    ['join_user_room', 'just a string'],
    ['join_user_room', [V]],
    ['join_user_room', { userProfile: pv }, 'userId'],
    ['join_user_room', { userId: 42, userProfile: pv }, 'userId'],
    ['join_user_room', { userId: '', userProfile: { ...pv, uid: '' } }, 'userId'],
    ['join_user_room', { userId: long(129), userProfile: { ...pv, uid: long(129) } }, 'userId'],
    ['join_user_room', { userId: V }, 'userProfile'],
    ['join_user_room', { userId: V, userProfile: 'not an object' }, 'userProfile'],
    ['join_user_room', { userId: V, userProfile: [V] }, 'userProfile'],
    ['join_user_room', { userId: V, userProfile: { email: pv.email } }, 'userProfile.uid'],
    ['join_user_room', { userId: V, userProfile: { ...pv, email: 42 } }, 'userProfile.email'],
    ['join_user_room', { userId: V, userProfile: { ...pv, displayName: 7 } }, 'userProfile.displayName'],

    ['join_system_room', null],
    ['join_system_room', 42],
    ['join_system_room', { roomName: 'system_updates' }],
    ['join_system_room', ''],
    ['join_system_room', long(129)],
    ['join_room', null],
    ['join_room', 42],
    ['join_room', ''],
    ['join_room', long(129)],
    ['leave_room', null],
    ['leave_room', ['x']],
    ['leave_room', ''],
    ['leave_room', long(129)],

    ['join_chat_room', null],
    ['join_chat_room', RV],
    ['join_chat_room', { userProfile: pv }, 'roomName'],
    ['join_chat_room', { roomName: 5, userProfile: pv }, 'roomName'],
    ['join_chat_room', { roomName: '', userProfile: pv }, 'roomName'],
    ['join_chat_room', { roomName: long(129), userProfile: pv }, 'roomName'],
    ['join_chat_room', { roomName: RV }, 'userProfile'],
    ['join_chat_room', { roomName: RV, userProfile: 'not an object' }, 'userProfile'],
    ['join_chat_room', { roomName: RV, userProfile: { email: pv.email } }, 'userProfile.uid'],

    ['send_message', null],
    ['send_message', 'hello'],
    ['send_message', {}],
    ['send_message', msg({ roomName: undefined }), 'roomName'],
    ['send_message', msg({ roomName: 5 }), 'roomName'],
    ['send_message', msg({ roomName: '' }), 'roomName'],
    ['send_message', msg({ roomName: long(129) }), 'roomName'],
    ['send_message', msg({ message: undefined }), 'message'],
    ['send_message', msg({ message: 5 }), 'message'],
    ['send_message', msg({ message: '' }), 'message'],
    ['send_message', msg({ message: '   \n\t ' }), 'message'],
    ['send_message', msg({ message: long(1001) }), 'message'],
    ['send_message', msg({ message: `  ${long(1001)}  ` }), 'message'],
    ['send_message', msg({ message: long(1001, 'é') }), 'message'],
    ['send_message', msg({ userProfile: undefined }), 'userProfile'],
    ['send_message', msg({ userProfile: null }), 'userProfile'],
    ['send_message', msg({ userProfile: 'not an object' }), 'userProfile'],
    ['send_message', msg({ userProfile: { email: pv.email } }), 'userProfile.uid'],
    ['send_message', msg({ messageType: 'ai_response' }), 'messageType'],
    ['send_message', msg({ messageType: 'video' }), 'messageType'],
    ['send_message', msg({ messageType: 3 }), 'messageType'],
    ['send_message', msg({ clientMsgId: long(65) }), 'clientMsgId'],
    ['send_message', msg({ clientMsgId: 12 }), 'clientMsgId'],

    ['typing_start', null],
    ['typing_start', { userProfile: pv }, 'roomName'],
    ['typing_start', { roomName: '', userProfile: pv }, 'roomName'],
    ['typing_start', { roomName: long(129), userProfile: pv }, 'roomName'],
    ['typing_start', { roomName: RV }, 'userProfile'],
    ['typing_start', { roomName: RV, userProfile: 'not an object' }, 'userProfile'],
    ['typing_start', { roomName: RV, userProfile: { email: pv.email } }, 'userProfile.uid'],
    ['typing_stop', null],
    ['typing_stop', { roomName: 5, userProfile: pv }, 'roomName'],
    ['typing_stop', { roomName: RV, userProfile: 'not an object' }, 'userProfile'],

    ['send_notification', null],
    ['send_notification', { notification: notif({}).notification }, 'to'],
    ['send_notification', notif({}, { to: 5 }), 'to'],
    ['send_notification', notif({}, { to: '' }), 'to'],
    ['send_notification', notif({}, { to: long(129) }), 'to'],
    ['send_notification', { to: W }, 'notification'],
    ['send_notification', { to: W, notification: 'not an object' }, 'notification'],
    ['send_notification', notif({ title: undefined }), 'notification.title'],
    ['send_notification', notif({ title: '' }), 'notification.title'],
    ['send_notification', notif({ title: long(201) }), 'notification.title'],
    ['send_notification', notif({ message: undefined }), 'notification.message'],
    ['send_notification', notif({ message: long(2001) }), 'notification.message'],
    ['send_notification', notif({ type: undefined }), 'notification.type'],
    ['send_notification', notif({ type: 'urgent' }), 'notification.type'],
    ['send_notification', notif({ data: big }), 'notification.data'],

    ['update_app_status', null],
    ['update_app_status', appX],
    ['update_app_status', { status: 'active' }, 'appId'],
    ['update_app_status', { appId: 5, status: 'active' }, 'appId'],
    ['update_app_status', { appId: '', status: 'active' }, 'appId'],
    ['update_app_status', { appId: long(129), status: 'active' }, 'appId'],
    ['update_app_status', { appId: appX }, 'status'],
    ['update_app_status', { appId: appX, status: 'running' }, 'status'],
    ['update_app_status', { appId: appX, status: 'ACTIVE' }, 'status'],

    ['data_agent_update', null],
    ['data_agent_update', { status: 'processing', data: {} }, 'agentId'],
    ['data_agent_update', { agentId: '', status: 'processing', data: {} }, 'agentId'],
    ['data_agent_update', { agentId: long(129), status: 'processing', data: {} }, 'agentId'],
    ['data_agent_update', { agentId: agentX, data: {} }, 'status'],
    ['data_agent_update', { agentId: agentX, status: 5, data: {} }, 'status'],
    ['data_agent_update', { agentId: agentX, status: 'processing', data: big }, 'data'],

    // The source document types userProfile.email as a required string.
    ['join_user_room', { userId: V, userProfile: noEmail }, 'userProfile.email'],
    ['join_chat_room', { roomName: RV, userProfile: noEmail }, 'userProfile.email'],
    ['send_message', msg({ userProfile: noEmail }), 'userProfile.email'],
    ['typing_start', { roomName: RV, userProfile: noEmail }, 'userProfile.email'],
  ];
  // broadcast_system_alert is admin-only and nobody is admin in open mode:
  // PROTOCOL.md makes it FORBIDDEN for a non-admin and a bad payload
  // INVALID_PAYLOAD; either refusal is right when both apply, so these cases
  // accept both (and the field only with INVALID_PAYLOAD).
  const alertCases = [
    [null],
    [{ title: 'T', message: 'M', severity: 'urgent' }, 'severity'],
    [{ message: 'M', severity: 'info' }, 'title'],
    [{ title: 'T', message: 'M', severity: 'info', action: 'not an object' }, 'action'],
  ];

  const failures = [];
  for (const [event, payload, field] of cases) {
    const problem = await refusal(v, event, [payload], 'INVALID_PAYLOAD', field);
    if (problem) failures.push(problem);
  }
  for (const [payload, field] of alertCases) {
    const errP = once(v, 'error', WAIT_MS, (e) => e.details && e.details.event === 'broadcast_system_alert');
    const problem = await refusal(v, 'broadcast_system_alert', [payload], ['INVALID_PAYLOAD', 'FORBIDDEN']);
    if (problem) failures.push(problem);
    const err = await errP.catch(() => null);
    if (err && err.code === 'INVALID_PAYLOAD' && field && err.details.field !== field) failures.push(`broadcast_system_alert ${j(payload)}: details.field must be ${j(field)}, got ${j(err.details.field)}`);
  }

  // Values at the limits are fine (lengths count characters, not bytes).
  const pad128 = (x) => x + 'p'.repeat(128 - x.length);
  const accepted = async (what, fn) => {
    try {
      return await fn();
    } catch (err) {
      failures.push(`${what} must be accepted: ${err.message}`);
      return undefined;
    }
  };
  const okIds = [ok1.id];
  const t1000 = long(1000, 'y');
  const ok2 = await accepted('a message of 1000 characters after trimming', () => send(v, RV, pv, `  ${t1000}  `));
  if (ok2) {
    okIds.push(ok2.id);
    const got = await waitFor(w, 'new_message', (m) => m.id === ok2.id, 'the 1000-character message').catch((e) => failures.push(e.message));
    if (got && got.message !== t1000) failures.push(`the stored message must be the trimmed text, got ${j(got.message)}`);
  }
  const ok3 = await accepted('a message of 1000 two-byte characters', () => send(v, RV, pv, long(1000, 'é')));
  if (ok3) okIds.push(ok3.id);
  const ok4 = await accepted('a clientMsgId of 64 characters', () => send(v, RV, pv, `with a long clientMsgId ${RUN}`, { clientMsgId: long(64, 'c') }));
  if (ok4) okIds.push(ok4.id);
  const room128 = pad128(uid('r'));
  await accepted('join_room with a 128-character name', () => emitOK(v, 'join_room', room128));
  await accepted('join_system_room with a 128-character name', () => emitOK(v, 'join_system_room', room128));
  await accepted('join_chat_room with a 128-character name', () => joinChat(v, room128, pv));
  const u128 = pad128(uid('u'));
  const vu = await connect('128-character user');
  await accepted('join_user_room with a 128-character user id', () => emitOK(vu, 'join_user_room', { userId: u128, userProfile: profile(u128) }));
  const bigTitle = long(200, 't');
  const okNote = await accepted('a notification with a 200-character title, a 2000-character message and 16000 bytes of data', () => emitOK(v, 'send_notification', notif({ title: bigTitle, message: long(2000, 'm'), data: { blob: long(16000) } })));
  if (okNote) await waitFor(w, 'notification', (n) => n.title === bigTitle, 'the notification at the limits').catch((e) => failures.push(e.message));
  const app128 = pad128(uid('app'));
  await accepted('update_app_status with a 128-character app id', () => emitOK(v, 'update_app_status', { appId: app128, status: 'active' }));
  const agent128 = pad128(uid('agent'));
  await accepted('data_agent_update with a 128-character agent id and 16000 bytes of data', () => emitOK(v, 'data_agent_update', { agentId: agent128, status: 'processing', data: { blob: long(16000) } }));
  await sleep(NONE_MS);

  // Nothing refused was stored or sent.
  const sent = received(w, 'new_message', (m) => !okIds.includes(m.id), wFrom);
  if (sent.length) failures.push(`the watcher got new_message for refused messages: ${j(sent)}`);
  for (const event of ['user_typing', 'notification', 'system_alert', 'user_joined_chat']) {
    const got = received(w, event, (x) => !(event === 'notification' && x.title === bigTitle), wFrom);
    if (got.length) failures.push(`the watcher got ${event} from refused events: ${j(got)}`);
  }
  const apps = received(w, 'app_updated', (d) => [appX, '', long(129)].includes(d.appId), wFrom);
  if (apps.length) failures.push(`app_updated from refused events: ${j(apps)}`);
  const agents = received(w, 'data_agent_update', (d) => [agentX, '', long(129)].includes(d.agentId) || d.agentId === undefined, wFrom);
  if (agents.length) failures.push(`data_agent_update from refused events: ${j(agents)}`);
  const z = await connect('later joiner');
  const { history } = await joinChat(z, RV, profile(uid('later')));
  const stored = history.map((m) => m.id);
  if (j(stored) !== j(okIds)) failures.push(`chat_history must hold only the valid messages ${j(okIds)}, got ${j(history.map((m) => [m.id, m.message.slice(0, 20)]))}`);

  assert.equal(failures.length, 0, `${failures.length} validation problems (PROTOCOL.md: refuse bad payloads with INVALID_PAYLOAD, store and send nothing, accept values at the limits):\n  - ${failures.join('\n  - ')}`);
};

// Open-mode identity: a socket acts as the first user it names.
scenarios.identity = async () => {
  const A = uid('alice'), B = uid('bob'), F = uid('frank'), G = uid('grace'), H = uid('heidi');
  const R = uid('idroom'), R2 = uid('idroom2');
  const pa = profile(A, { displayName: 'Alice' }), pb = profile(B, { displayName: 'Bob' });
  const a = await connect('alice'), b = await connect('bob');
  await emitOK(a, 'join_user_room', { userId: A, userProfile: pa });
  await joinChat(a, R, pa);
  await joinChat(b, R, pb);
  await joinChat(b, R2, pb);
  const from = [a, b].map(mark);

  const failures = [];
  const refused = async (socket, event, payload) => {
    const problem = await refusal(socket, event, [payload], 'FORBIDDEN');
    if (problem) failures.push(`${socket.label}: ${problem}`);
  };
  await refused(a, 'send_message', { roomName: R, message: `spoofed ${RUN}`, userProfile: pb });
  await refused(a, 'send_message', { roomName: R, message: `spoofed ${RUN}`, userProfile: pb, clientMsgId: 'c1' });
  await refused(a, 'typing_start', { roomName: R, userProfile: pb });
  await refused(a, 'typing_stop', { roomName: R, userProfile: pb });
  await refused(a, 'join_chat_room', { roomName: R2, userProfile: pb });
  await refused(a, 'join_chat_room', { roomName: R, userProfile: pb }); // a room it is in
  await refused(a, 'join_user_room', { userId: B, userProfile: pb });
  // userId and userProfile.uid must agree, on a socket that already joined too.
  await refused(a, 'join_user_room', { userId: A, userProfile: pb });

  // A fresh socket naming two users at once.
  const f = await connect('frank');
  await refused(f, 'join_user_room', { userId: F, userProfile: profile(G) });
  // Bound by the userProfile.uid of another event.
  const g = await connect('grace');
  await joinChat(g, uid('gracesroom'), profile(G));
  await refused(g, 'join_user_room', { userId: H, userProfile: profile(H) });
  await refused(g, 'send_message', { roomName: R, message: `spoofed by grace ${RUN}`, userProfile: profile(H) });

  try {
    await sleep(NONE_MS);
    for (const [i, s] of [a, b].entries()) {
      assertNoneSince(s, from[i], 'new_message', (m) => m.message.startsWith('spoofed'), 'a refused message');
      assertNoneSince(s, from[i], 'user_typing', () => true, 'a refused typing event');
      assertNoneSince(s, from[i], 'user_joined_chat', () => true, 'a refused join');
      assertNoneSince(s, from[i], 'user_joined', () => true, 'a refused join_user_room');
      assertNoneSince(s, from[i], 'online_users', (l) => lists(B)(l) || lists(F)(l) || lists(G)(l) || lists(H)(l), 'a refused join_user_room');
    }

    // Alice can still act as herself; nothing refused shows up in the history.
    const ack = await send(a, R, pa, `genuine ${RUN}`);
    await waitFor(b, 'new_message', (m) => m.id === ack.id, 'the genuine message');
    const late = await connect('late');
    const { history } = await joinChat(late, R, profile(uid('late')));
    assert.deepEqual(history.map((m) => m.message), [`genuine ${RUN}`], 'chat_history holds only the genuine message');
  } catch (err) {
    failures.push(err.message);
  }
  assert.equal(failures.length, 0, `${failures.length} problems with events acting as another user (PROTOCOL.md: FORBIDDEN, nothing stored or sent):\n  - ${failures.join('\n  - ')}`);
};

// A frame over --max-frame (the server runs with --max-frame 4096) closes
// that socket only.
scenarios.maxframe = async () => {
  const R = uid('frames');
  const A = uid('alice'), B = uid('bob');
  const pa = profile(A), pb = profile(B);
  const a = await connect('alice (big frame)'), b = await connect('bob');
  await joinChat(a, R, pa);
  await joinChat(b, R, pb);
  const big = 'z'.repeat(8 * 1024);
  const goneP = disconnected(a);
  a.emit('send_message', { roomName: R, message: big, userProfile: pa }, () => {});
  const reason = await goneP;
  assert.ok(typeof reason === 'string', `disconnect reason ${j(reason)}`);

  // The others carry on.
  const ack = await send(b, R, pb, `still here ${RUN}`);
  const m = await waitFor(b, 'new_message', (x) => x.id === ack.id, 'the message after the big frame');
  assert.equal(m.message, `still here ${RUN}`);
  assert.equal(b.connected, true, 'the other client stays connected');
  assertNoneSince(b, 0, 'new_message', (x) => x.message === big, 'the oversized message');
  const c = await connect('carol');
  await status(c);
};

// Connection state recovery: a client that drops and comes back gets what it
// missed, with socket.recovered === true.
scenarios.recovery = async () => {
  const R = uid('recover');
  const S = uid('sender');
  const ps = profile(S);
  const s = await connect('sender');
  await joinChat(s, R, ps);
  const r = await connect('recovering', { reconnection: true, reconnectionDelay: 300, reconnectionDelayMax: 300, randomizationFactor: 0, reconnectionAttempts: 10 });
  const U = uid('recovering');
  await emitOK(r, 'join_user_room', { userId: U, userProfile: profile(U) }); // notifications to U reach it
  await emitOK(r, 'join_room', R);

  const ack1 = await send(s, R, ps, `before the drop ${RUN}`);
  await waitFor(r, 'new_message', (m) => m.id === ack1.id, 'a message before the drop');
  assert.equal(r.recovered, false, 'a first connection is not recovered');

  const sFrom = mark(s);
  const goneP = disconnected(r);
  const backP = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`recovering: not reconnected within 5 s`)), 5000);
    r.once('connect', () => {
      clearTimeout(timer);
      resolve(Date.now());
    });
  });
  backP.catch(() => {});
  r.io.engine.close();
  await goneP;
  const ack2 = await send(s, R, ps, `while away ${RUN}`);
  const note = { title: `while away ${RUN}`, message: 'You missed this', type: 'success' };
  await emitOK(s, 'send_notification', { to: U, notification: note });
  const sentAt = Date.now();
  const backAt = await backP;
  assert.ok(sentAt <= backAt, 'the message must be sent while the client is away (test timing)');
  assert.equal(r.recovered, true, 'socket.recovered after reconnecting within the recovery window');
  const missed = await waitFor(r, 'new_message', (m) => m.id === ack2.id, 'the message missed while away');
  assertMessage(missed, { id: ack2.id, roomName: R, userId: S, message: `while away ${RUN}`, messageType: 'text', isAI: false }, 'recovered new_message');
  assert.deepEqual(await waitFor(r, 'notification', (n) => n.title === note.title, 'the notification missed while away'), note, 'recovered notification');

  // Still in the room afterwards.
  const ack3 = await send(s, R, ps, `after the return ${RUN}`);
  await waitFor(r, 'new_message', (m) => m.id === ack3.id, 'a message after the return');
  assert.equal(received(r, 'new_message', (m) => m.id === ack2.id).length, 1, 'the missed message arrives once');
  // A blip within the presence grace: the others saw nothing.
  assertNoneSince(s, sFrom, 'user_left', (x) => x === U, 'a blip is not a leave');
  assertNoneSince(s, sFrom, 'online_users', (l) => !lists(U)(l), 'a blip does not drop the user from online_users');
};

// stdinLine resolves with the next line the Go test writes to the
// scenario's stdin (a step it took on the server).
let stdinLines;
function stdinLine() {
  if (!stdinLines) {
    stdinLines = [];
    let buf = '';
    const waiting = [];
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => {
      buf += chunk;
      for (let i; (i = buf.indexOf('\n')) >= 0; ) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (waiting.length) waiting.shift()(l);
        else stdinLines.push(l);
      }
    });
    stdinLines.waiting = waiting;
  }
  if (stdinLines.length) return Promise.resolve(stdinLines.shift());
  return new Promise((resolve) => stdinLines.waiting.push(resolve));
}

const RECONNECT = { reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500, randomizationFactor: 0, reconnectionAttempts: Infinity };

/** offsets records the offset (the last argument, a string) of each event a socket receives. */
function recordOffsets(socket) {
  socket.offsets = [];
  socket.onAny((event, ...args) => {
    const last = args[args.length - 1];
    if (args.length > 1 && typeof last === 'string') socket.offsets.push({ event, offset: last });
  });
}

// Recovery from the log, part 1 of a step driven by the Go test: a member
// drops, misses five messages and a notification, and stays away; the
// scenario prints {"phase":"away"} and waits for a line on stdin (the Go
// test restarts the server, or moves the client to another server,
// meanwhile). Then the member reconnects: it must be recovered, get
// exactly what it missed in order, and nobody may have seen it leave or
// join. The server runs with a presence grace longer than the test.
scenarios['recover-log'] = async () => {
  const R = uid('rlog');
  const A = uid('away'), B = uid('watcher');
  const pa = profile(A), pb = profile(B);
  const b = await connect('watcher', RECONNECT);
  const a = await connect('away', RECONNECT);
  recordOffsets(a);
  await emitOK(b, 'join_user_room', { userId: B, userProfile: pb });
  await emitOK(a, 'join_user_room', { userId: A, userProfile: pa });
  await joinChat(b, R, pb);
  await joinChat(a, R, pa);
  const first = await send(b, R, pb, `before the drop ${RUN}`);
  await waitFor(a, 'new_message', (m) => m.id === first.id, 'a message before the drop');
  const positions = a.offsets.filter((o) => o.event === 'new_message').map((o) => o.offset);
  assert.ok(positions.length > 0 && /^\d+(\/\d+)?$/.test(positions[0]), `the offset of new_message is a log position, got ${j(positions)}`);
  const bFrom = mark(b);

  // The member drops and stays away.
  a.io.reconnection(false);
  const gone = disconnected(a);
  a.io.engine.close();
  await gone;
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await send(b, R, pb, `missed ${i} ${RUN}`)).id);
  const note = { title: `missed ${RUN}`, message: 'You were away', type: 'info' };
  await emitOK(b, 'send_notification', { to: A, notification: note });
  console.log(JSON.stringify({ phase: 'away' }));
  await stdinLine();

  const aFrom = mark(a);
  const statusP = once(a, 'system_status_update', 20000, () => true, 'the fresh status after recovery');
  const listP = once(a, 'online_users', 20000, () => true, 'the fresh online_users after recovery');
  const back = once(a, 'connect', 20000, () => true, 'reconnecting');
  a.io.reconnection(true);
  a.connect();
  await back;
  assert.equal(a.recovered, true, 'socket.recovered after reconnecting within the recovery window');
  await statusP;
  await listP;
  const got = a.log.slice(aFrom).filter((e) => e.event === 'new_message' || e.event === 'notification');
  assert.deepEqual(got.map((e) => (e.event === 'new_message' ? e.data.id : e.data.title)), [...ids, note.title], 'exactly the missed messages and the notification, in order');
  assert.deepEqual(got[got.length - 1].data, note, 'the missed notification');
  for (const [i, e] of got.slice(0, 5).entries()) {
    assertMessage(e.data, { id: ids[i], roomName: R, userId: B, message: `missed ${i} ${RUN}`, messageType: 'text', isAI: false }, `recovered new_message ${i}`);
  }
  const offs = a.offsets.filter((o) => o.event === 'new_message').map((o) => Number(o.offset.split('/')[0]));
  for (let i = 1; i < offs.length; i++) assert.ok(offs[i] > offs[i - 1], `offsets grow: ${j(offs)}`);

  // It is still in the room, and the watcher is served too.
  if (!b.connected) await once(b, 'connect', 20000, () => true, 'the watcher reconnecting');
  const after = await send(a, R, pa, `after the return ${RUN}`);
  await waitFor(b, 'new_message', (m) => m.id === after.id, 'a message after the return');
  assertNoneSince(b, bFrom, 'user_left', (x) => x === A, 'the recovered member never left');
  assertNoneSince(b, bFrom, 'user_left_chat', (x) => x.user.uid === A, 'the recovered member never left the room');
  assertNoneSince(b, bFrom, 'user_joined_chat', (x) => x.user.uid === A, 'the recovered member never joined again');
  assertNoneSince(b, bFrom, 'online_users', (l) => !lists(A)(l), 'the recovered member never dropped out of online_users');
};

// Past the recovery window (the server runs with --recovery-window 1s): a
// client that comes back connects afresh and joins as the source
// document's clients do.
scenarios['recover-expired'] = async () => {
  const R = uid('rexp');
  const A = uid('late');
  const pa = profile(A);
  const a = await connect('late');
  await emitOK(a, 'join_user_room', { userId: A, userProfile: pa });
  await joinChat(a, R, pa);
  const first = await send(a, R, pa, `before the drop ${RUN}`);
  await waitFor(a, 'new_message', (m) => m.id === first.id, 'its own message');
  const gone = disconnected(a);
  a.io.engine.close();
  await gone;
  await sleep(2500);
  const back = once(a, 'connect', WAIT_MS, () => true, 'reconnecting');
  a.connect();
  await back;
  assert.equal(a.recovered, false, 'past the recovery window a client connects afresh');
  await emitOK(a, 'join_user_room', { userId: A, userProfile: pa });
  const { history } = await joinChat(a, R, pa);
  assert.deepEqual(history.map((m) => m.id), [first.id], 'a normal join gets the history');
};

// Rate limits (the server runs with --rate-* 1 and --burst-* 5): a socket
// over its bucket gets RATE_LIMITED and nothing is stored or sent; other
// sockets carry on.
const BURST = 5;
scenarios.ratelimit = async () => {
  const R = uid('flood');
  const A = uid('flooder'), W = uid('watcher'), B = uid('bob');
  const pa = profile(A), pw = profile(W), pb = profile(B);
  const a = await connect('flooder'), w = await connect('watcher'), b = await connect('bob');
  await emitOK(w, 'join_user_room', { userId: W, userProfile: pw });
  await joinChat(w, R, pw);
  await joinChat(a, R, pa);
  await joinChat(b, R, pb);
  const failures = [];

  // flood emits n events at once and checks the outcome; returns the number accepted.
  const flood = async (event, payloadOf, n = 2 * BURST + 2) => {
    const wFrom = mark(w);
    const errors = [];
    const onError = (e) => e && e.details && e.details.event === event && errors.push(e);
    a.on('error', onError);
    const acks = await Promise.all(Array.from({ length: n }, (_, i) => emitAck(a, event, payloadOf(i))));
    await sleep(NONE_MS);
    a.off('error', onError);
    const ok = acks.filter((x) => x && x.ok === true).length;
    const limited = acks.filter((x) => x && x.ok === false && x.error && x.error.code === 'RATE_LIMITED' && typeof x.error.message === 'string');
    if (ok < BURST || ok > BURST + 2) failures.push(`${event}: ${ok} of ${n} at once accepted, want the burst of ${BURST} (+ a refill)`);
    if (ok + limited.length !== n) failures.push(`${event}: every refused event must be RATE_LIMITED, got ${j(acks.filter((x) => !(x && x.ok === true)))}`);
    if (errors.length !== limited.length || errors.some((e) => e.code !== 'RATE_LIMITED')) failures.push(`${event}: want ${limited.length} "error" events RATE_LIMITED, got ${j(errors)}`);
    return { ok, wFrom };
  };

  // send_message, while another socket's messages go through at once.
  const bAcks = [];
  const bDuring = (async () => {
    for (let i = 0; i < BURST; i++) {
      const start = Date.now();
      const ack = await emitAck(b, 'send_message', { roomName: R, message: `bob during the flood ${i}`, userProfile: pb });
      bAcks.push({ ack, ms: Date.now() - start });
    }
  })();
  const m = await flood('send_message', (i) => ({ roomName: R, message: `flood ${i} ${RUN}`, userProfile: pa }));
  await bDuring;
  for (const { ack, ms } of bAcks) {
    if (!ack || ack.ok !== true) failures.push(`another socket's send_message during the flood was refused: ${j(ack)}`);
    if (ms > 1000) failures.push(`another socket's send_message took ${ms} ms during the flood`);
  }
  const floodMsgs = received(w, 'new_message', (x) => x.userId === A, m.wFrom);
  if (floodMsgs.length !== m.ok) failures.push(`send_message: ${m.ok} accepted but the room got ${floodMsgs.length} new_message`);
  // Another socket of the same user has its own bucket.
  const a2 = await connect('flooder#2');
  const a2ack = await emitAck(a2, 'send_message', { roomName: R, message: `second socket ${RUN}`, userProfile: pa });
  if (!a2ack || a2ack.ok !== true) failures.push(`a second socket of the flooding user must not share its bucket: ${j(a2ack)}`);

  const t = await flood('typing_start', () => ({ roomName: R, userProfile: pa }));
  const typings = received(w, 'user_typing', (x) => x.userId === A, t.wFrom).length;
  if (typings !== t.ok) failures.push(`typing_start: ${t.ok} accepted but the room got ${typings} user_typing`);

  const n = await flood('send_notification', (i) => ({ to: W, notification: { title: `flood ${i}`, message: 'M', type: 'info' } }));
  const notes = received(w, 'notification', (x) => x.title.startsWith('flood '), n.wFrom).length;
  if (notes !== n.ok) failures.push(`send_notification: ${n.ok} accepted but the user got ${notes} notification`);

  const agentId = uid('agent');
  const d = await flood('data_agent_update', (i) => ({ agentId, status: `s${i}`, data: { i } }));
  const agents = received(w, 'data_agent_update', (x) => x.agentId === agentId, d.wFrom).length;
  if (agents !== d.ok) failures.push(`data_agent_update: ${d.ok} accepted but clients got ${agents} data_agent_update`);

  // Nothing refused was stored.
  const late = await connect('late joiner');
  const { history } = await joinChat(late, R, profile(uid('late')));
  const stored = history.filter((x) => x.userId === A && x.message.startsWith('flood ')).length;
  if (stored !== m.ok) failures.push(`chat_history holds ${stored} flood messages, want the ${m.ok} accepted`);
  assert.equal(failures.length, 0, `rate limits:\n  - ${failures.join('\n  - ')}`);
};

// CORS with the default --cors-origins (*): any origin may connect.
scenarios['cors-open'] = async () => {
  const origin = 'http://anywhere.example';
  const res = await fetch(`${URL}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: origin } });
  assert.equal(res.status, 200, 'polling handshake with an Origin');
  const acao = res.headers.get('access-control-allow-origin');
  assert.ok(acao === '*' || acao === origin, `Access-Control-Allow-Origin must allow ${origin}, got ${j(acao)}`);
  await res.text();
  const s = await connect('from anywhere', { extraHeaders: { Origin: origin } });
  await status(s);
};

// CORS with --cors-origins http://allowed.example: only that origin.
const ALLOWED_ORIGIN = 'http://allowed.example';
scenarios['cors-restricted'] = async () => {
  const handshake = (origin) => fetch(`${URL}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: origin } });
  const ok = await handshake(ALLOWED_ORIGIN);
  assert.equal(ok.status, 200, 'polling handshake from the allowed origin');
  assert.equal(ok.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN, 'Access-Control-Allow-Origin for the allowed origin');
  await ok.text();
  const evil = 'http://evil.example';
  const bad = await handshake(evil);
  const acao = bad.headers.get('access-control-allow-origin');
  assert.ok(acao !== '*' && acao !== evil, `Access-Control-Allow-Origin must not allow ${evil}, got ${j(acao)}`);
  await bad.text();

  const s = await connect('allowed origin', { extraHeaders: { Origin: ALLOWED_ORIGIN } });
  await status(s);
  // A page from another origin cannot open a socket (no cross-site WebSocket hijacking either).
  await assert.rejects(connect('other origin', { extraHeaders: { Origin: evil } }), /connect_error|not connected/, `a client from ${evil} must not connect`);
};

// --- JSON Web Tokens (HS256 with E2E_JWT_SECRET, the server's --jwt-secret).

const JWT_SECRET = process.env.E2E_JWT_SECRET || '';
const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const nowSec = () => Math.floor(Date.now() / 1000);

/** jwt signs claims with HS256 (or makes an unsigned alg:none token). */
function jwt(claims, { secret = JWT_SECRET, alg = 'HS256' } = {}) {
  const body = `${b64url({ alg, typ: 'JWT' })}.${b64url({ iat: nowSec(), exp: nowSec() + 3600, ...claims })}`;
  if (alg === 'none') return `${body}.`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** claimsOf returns a user's token claims. */
const claimsOf = (id, extra = {}) => ({ sub: id, email: `${id}@tokens.example`, name: `Token ${id}`, picture: `https://example.com/${id}.png`, ...extra });

/** connectRefused asserts a connection refused with connect_error data.code AUTH_FAILED. */
async function connectRefused(label, opts) {
  const socket = io(URL, { transports: [TRANSPORT], reconnection: false, forceNew: true, timeout: WAIT_MS, ...opts });
  opened.add(socket);
  try {
    const err = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label}: neither connect nor connect_error within ${WAIT_MS} ms`)), WAIT_MS);
      socket.once('connect', () => {
        clearTimeout(timer);
        reject(new Error(`${label}: must be refused at connect (AUTH_FAILED), but it connected`));
      });
      socket.once('connect_error', (e) => {
        clearTimeout(timer);
        resolve(e);
      });
    });
    assert.equal(err.data && err.data.code, 'AUTH_FAILED', `${label}: connect_error data.code must be AUTH_FAILED, got ${j(err.data)} (${err.message})`);
  } finally {
    socket.disconnect();
    opened.delete(socket);
  }
}

/** adminChecks: an admin broadcasts a system_alert to every client and joins admin_notifications. */
async function adminChecks(admin, others) {
  const alert = { title: `Maintenance ${RUN}`, message: 'System will be down for maintenance in 10 minutes', severity: 'warning', action: { label: 'Learn More', url: '/maintenance' } };
  const everyone = [admin, ...others];
  let waits = everyone.map((s) => once(s, 'system_alert', WAIT_MS, (x) => x.title === alert.title, 'the admin alert'));
  await emitOK(admin, 'broadcast_system_alert', alert);
  for (const p of waits) assert.deepEqual(await p, alert, 'system_alert');
  const plain = { title: `Notice ${RUN}`, message: 'All good again', severity: 'info' };
  waits = everyone.map((s) => once(s, 'system_alert', WAIT_MS, (x) => x.title === plain.title, 'the alert without action'));
  await emitOK(admin, 'broadcast_system_alert', plain);
  for (const p of waits) assert.deepEqual(await p, plain, 'system_alert without action');
  await emitOK(admin, 'join_system_room', 'admin_notifications');
  await expectRefused(admin, 'broadcast_system_alert', [{ ...plain, severity: 'urgent' }], 'INVALID_PAYLOAD', 'severity');
}

// --auth jwt --jwt-secret: a token is required; identity and admin come from it.
scenarios['auth-jwt'] = async () => {
  assert.ok(JWT_SECRET.length >= 32, 'E2E_JWT_SECRET must hold the server secret');
  const U1 = uid('tok1'), U2 = uid('tok2'), U3 = uid('tok3'), ADM = uid('admin'), OTHER = uid('other');
  await connectRefused('no token', {});
  await connectRefused('malformed token', { auth: { token: 'not-a-jwt' } });
  await connectRefused('forged token', { auth: { token: jwt(claimsOf(U1), { secret: 'another-secret-of-at-least-32-bytes!!' }) } });
  await connectRefused('expired token', { auth: { token: jwt(claimsOf(U1, { iat: nowSec() - 7200, exp: nowSec() - 3600 })) } });
  await connectRefused('alg none token', { auth: { token: jwt(claimsOf(U1), { alg: 'none' }) } });
  await connectRefused('forged bearer header', { extraHeaders: { Authorization: `Bearer ${jwt(claimsOf(U1), { secret: 'another-secret-of-at-least-32-bytes!!' })}` } });

  // auth.token: bound to sub, profile from the claims.
  const c1 = claimsOf(U1);
  const u1 = await connect('token in auth', { auth: { token: jwt(c1) } });
  const listP = once(u1, 'online_users', WAIT_MS, lists(U1), `listing ${U1}`);
  await emitOK(u1, 'join_user_room', { userId: U1, userProfile: { uid: U1, email: 'spoofed@example.com', displayName: 'Spoofed Name' } });
  const fromToken = { uid: U1, email: c1.email, displayName: c1.name, photoURL: c1.picture };
  assertOnlineList(await listP, U1, fromToken, u1.id, 'profile from token claims');
  const R = uid('tokroom');
  await joinChat(u1, R, { uid: U1, email: 'spoofed@example.com' });
  const ack = await send(u1, R, { uid: U1, email: 'spoofed@example.com', displayName: 'Spoofed Name' }, `signed ${RUN}`);
  assertMessage(await waitFor(u1, 'new_message', (x) => x.id === ack.id), { userId: U1, userName: c1.name, userAvatar: c1.picture, message: `signed ${RUN}` }, 'new_message of a token user');
  await expectRefused(u1, 'join_user_room', [{ userId: OTHER, userProfile: profile(OTHER) }], 'FORBIDDEN');
  await expectRefused(u1, 'send_message', [{ roomName: R, message: 'spoof', userProfile: profile(OTHER) }], 'FORBIDDEN');
  await expectRefused(u1, 'typing_start', [{ roomName: R, userProfile: profile(OTHER) }], 'FORBIDDEN');
  await expectRefused(u1, 'broadcast_system_alert', [{ title: 'T', message: 'M', severity: 'info' }], 'FORBIDDEN');
  await expectRefused(u1, 'join_system_room', ['admin_notifications'], 'FORBIDDEN');

  // Authorization: Bearer header and the token query parameter.
  const u2 = await connect('bearer header', { extraHeaders: { Authorization: `Bearer ${jwt(claimsOf(U2))}` } });
  await emitOK(u2, 'join_user_room', { userId: U2, userProfile: profile(U2) });
  await expectRefused(u2, 'join_chat_room', [{ roomName: R, userProfile: profile(U1) }], 'FORBIDDEN');
  const u3 = await connect('token query', { query: { token: jwt(claimsOf(U3)) } });
  await emitOK(u3, 'join_user_room', { userId: U3, userProfile: profile(U3) });
  await expectRefused(u3, 'join_user_room', [{ userId: U1, userProfile: profile(U1) }], 'FORBIDDEN');

  // Admins: admin: true, roles containing admin, role admin.
  const adm = await connect('admin', { auth: { token: jwt(claimsOf(ADM, { admin: true })) } });
  await adminChecks(adm, [u1, u2, u3]);
  const byRoles = await connect('roles admin', { auth: { token: jwt(claimsOf(uid('roles'), { roles: ['user', 'admin'] })) } });
  await emitOK(byRoles, 'join_system_room', 'admin_notifications');
  const byRole = await connect('role admin', { auth: { token: jwt(claimsOf(uid('role'), { role: 'admin' })) } });
  await emitOK(byRole, 'join_system_room', 'admin_notifications');
  const notAdmin = await connect('roles without admin', { auth: { token: jwt(claimsOf(uid('user'), { roles: ['user'], admin: false })) } });
  await expectRefused(notAdmin, 'join_system_room', ['admin_notifications'], 'FORBIDDEN');
};

// Open mode with --jwt-secret: anonymous clients connect; a verified token
// sets the identity and can make an admin.
scenarios['auth-open-token'] = async () => {
  assert.ok(JWT_SECRET.length >= 32, 'E2E_JWT_SECRET must hold the server secret');
  const T = uid('tokuser'), OTHER = uid('other');
  const anon = await connect('anonymous');
  await emitOK(anon, 'join_user_room', { userId: uid('anon'), userProfile: profile(uid('anon')) });
  const t = await connect('token user', { auth: { token: jwt(claimsOf(T)) } });
  await expectRefused(t, 'join_user_room', [{ userId: OTHER, userProfile: profile(OTHER) }], 'FORBIDDEN');
  await emitOK(t, 'join_user_room', { userId: T, userProfile: profile(T) });
  await expectRefused(t, 'broadcast_system_alert', [{ title: 'T', message: 'M', severity: 'info' }], 'FORBIDDEN');
  const adm = await connect('admin', { auth: { token: jwt(claimsOf(uid('admin'), { admin: true })) } });
  await adminChecks(adm, [anon, t]);
};

// --auth jwt --jwks-url --jwt-issuer --jwt-audience (as with Firebase ID
// tokens and Google's JWKS): E2E_JWKS holds {issuer, audience, rs:{kid, pem},
// es:{kid, pem}}, the private keys whose public halves the JWKS serves.
scenarios['auth-jwks'] = async () => {
  const cfg = JSON.parse(process.env.E2E_JWKS || 'null');
  assert.ok(cfg && cfg.rs && cfg.es, 'E2E_JWKS must describe the JWKS keys');
  const signed = (claims, { alg = 'RS256', kid = cfg.rs.kid, key = cfg.rs.pem, iss = cfg.issuer, aud = cfg.audience } = {}) => {
    const body = `${b64url({ alg, typ: 'JWT', kid })}.${b64url({ iss, aud, iat: nowSec(), exp: nowSec() + 3600, ...claims })}`;
    let sig;
    if (alg === 'RS256') sig = cryptoSign('sha256', Buffer.from(body), key);
    else if (alg === 'ES256') sig = cryptoSign('sha256', Buffer.from(body), { key, dsaEncoding: 'ieee-p1363' });
    else if (alg === 'HS256') sig = createHmac('sha256', key).update(body).digest();
    else return `${body}.`;
    return `${body}.${sig.toString('base64url')}`;
  };
  const U1 = uid('rs'), U2 = uid('es'), OTHER = uid('other');

  const c1 = claimsOf(U1);
  const rs = await connect('RS256 token', { auth: { token: signed(c1) } });
  const listP = once(rs, 'online_users', WAIT_MS, lists(U1), `listing ${U1}`);
  await emitOK(rs, 'join_user_room', { userId: U1, userProfile: profile(U1) });
  assertOnlineList(await listP, U1, { uid: U1, email: c1.email, displayName: c1.name, photoURL: c1.picture }, rs.id, 'profile from RS256 claims');
  await expectRefused(rs, 'join_user_room', [{ userId: OTHER, userProfile: profile(OTHER) }], 'FORBIDDEN');
  const es = await connect('ES256 token', { auth: { token: signed(claimsOf(U2), { alg: 'ES256', kid: cfg.es.kid, key: cfg.es.pem }) } });
  await emitOK(es, 'join_user_room', { userId: U2, userProfile: profile(U2) });
  await expectRefused(es, 'send_message', [{ roomName: uid('r'), message: 'spoof', userProfile: profile(U1) }], 'FORBIDDEN');

  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const rsPublicPEM = createPublicKey(cfg.rs.pem).export({ type: 'spki', format: 'pem' });
  await connectRefused('wrong audience', { auth: { token: signed(claimsOf(U1), { aud: 'another-project' }) } });
  await connectRefused('wrong issuer', { auth: { token: signed(claimsOf(U1), { iss: 'https://securetoken.google.com/another-project' }) } });
  await connectRefused('unknown key', { auth: { token: signed(claimsOf(U1), { kid: 'unknown-kid', key: stranger }) } });
  await connectRefused('known kid, other key', { auth: { token: signed(claimsOf(U1), { key: stranger }) } });
  await connectRefused('expired', { auth: { token: signed(claimsOf(U1, { iat: nowSec() - 7200, exp: nowSec() - 3600 })) } });
  await connectRefused('alg none', { auth: { token: signed(claimsOf(U1), { alg: 'none' }) } });
  await connectRefused('HS256 signed with the public key', { auth: { token: signed(claimsOf(U1), { alg: 'HS256', key: rsPublicPEM }) } });
  await connectRefused('no token', {});

  const adm = await connect('admin by roles', { auth: { token: signed(claimsOf(uid('admin'), { roles: ['admin'] }), { alg: 'ES256', kid: cfg.es.kid, key: cfg.es.pem }) } });
  await adminChecks(adm, [rs, es]);
};

// A client may emit as soon as it is connected (SOCKET_EVENTS.md re-joins
// its rooms in the `connect`/`reconnect` handler): many sockets, one after
// another, each emitting from its `connect` handler, must all be answered and
// stay connected. A busy thread competes for the CPU meanwhile, as on a
// loaded host, which makes a server-side race after CONNECT far more likely
// to show.
scenarios['connect-race'] = async () => {
  const N = TRANSPORT === 'websocket' ? 300 : 100; // polling connects take longer
  const problems = [];
  const hog = new Worker('for (;;) {}', { eval: true });
  try {
    for (let i = 0; i < N; i++) {
      const s = io(URL, { transports: [TRANSPORT], reconnection: false, forceNew: true });
      opened.add(s);
      let sid = 'not connected';
      const outcome = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve('no acknowledgement within 3 s'), 3000);
        s.once('disconnect', (reason) => {
          clearTimeout(timer);
          resolve(`disconnected (${reason}) before the acknowledgement`);
        });
        s.once('connect_error', (err) => {
          clearTimeout(timer);
          resolve(`connect_error ${err.message}`);
        });
        s.once('connect', () => {
          sid = s.id;
          s.emit('join_room', uid(`race${i}`), (ack) => {
            clearTimeout(timer);
            resolve(ack && ack.ok === true ? null : `ack ${j(ack)}`);
          });
        });
      });
      if (outcome) problems.push(`socket ${i} (${sid}): ${outcome}`);
      s.disconnect();
      opened.delete(s);
    }
  } finally {
    await hog.terminate();
  }
  assert.equal(problems.length, 0, `${problems.length} of ${N} sockets that emitted join_room on connect were not answered:\n  - ${problems.slice(0, 10).join('\n  - ')}`);
};

// Restart, part 1: two users online and in a chat room, three messages. It
// prints {room, users, ids, messages} as JSON and stays connected until the
// server goes away (the Go test stops or kills it).
scenarios['restart-before'] = async () => {
  const room = uid('restart');
  const U1 = uid('u1'), U2 = uid('u2');
  const p1 = profile(U1, { displayName: 'User One' }), p2 = profile(U2);
  const s1 = await connect('u1'), s2 = await connect('u2');
  const bothP = once(s1, 'online_users', WAIT_MS, (l) => lists(U1)(l) && lists(U2)(l), 'both users');
  await emitOK(s1, 'join_user_room', { userId: U1, userProfile: p1 });
  await emitOK(s2, 'join_user_room', { userId: U2, userProfile: p2 });
  await bothP;
  await joinChat(s1, room, p1);
  await joinChat(s2, room, p2);
  const messages = ['first', 'second', 'third'].map((t) => `${t} ${RUN}`);
  const ids = [];
  for (const [i, text] of messages.entries()) {
    const [s, p] = i === 1 ? [s2, p2] : [s1, p1];
    const ack = await send(s, room, p, text);
    ids.push(ack.id);
    await waitFor(s1, 'new_message', (m) => m.id === ack.id, text);
  }
  console.log(JSON.stringify({ room, users: [U1, U2], ids, messages }));
  await Promise.all([s1, s2].map((s) => disconnected(s, 20000)));
};

// Restart, part 2 (E2E_STATE is part 1's output; the server runs with
// --presence-grace 1s): once the grace has passed nobody from before is
// online, and the history survived.
scenarios['restart-after'] = async () => {
  const state = JSON.parse(process.env.E2E_STATE || 'null');
  assert.ok(state && state.room, 'E2E_STATE must hold restart-before output');
  const U3 = uid('u3');
  const p3 = profile(U3, { displayName: 'User Three' });
  const c = await connect('u3');
  const { history } = await joinChat(c, state.room, p3);
  assert.deepEqual(history.map((m) => m.id), state.ids, 'chat_history after a restart: the three messages in order');
  assert.deepEqual(history.map((m) => m.message), state.messages, 'chat_history texts after a restart');
  for (const [i, m] of history.entries()) {
    assertMessage(m, { roomName: state.room, userId: state.users[i === 1 ? 1 : 0], messageType: 'text', isAI: false }, `chat_history[${i}]`);
  }
  const before = (l) => l.some((u) => state.users.includes(u.id));
  const listP = once(c, 'online_users', WAIT_MS + 2000, (l) => lists(U3)(l) && !before(l), `listing ${U3} alone`);
  await emitOK(c, 'join_user_room', { userId: U3, userProfile: p3 });
  const list = await listP;
  assert.deepEqual(list.map((u) => u.id), [U3], `online_users after a restart lists only the new user (not ${state.users.join(', ')})`);
  assertOnlineList(list, U3, p3, c.id, 'after restart');
};

// ---------------------------------------------------------------------------

async function main() {
  const run = scenarios[SCENARIO];
  if (!run || !URL || !['websocket', 'polling'].includes(TRANSPORT)) {
    console.error(`usage: node e2e.mjs <${Object.keys(scenarios).join('|')}> <url> <websocket|polling>`);
    return 2;
  }
  let timer;
  const overall = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario did not finish within ${SCENARIO_MS / 1000} s`)), SCENARIO_MS);
  });
  try {
    await Promise.race([run(), overall]);
    return 0;
  } catch (err) {
    console.error(`FAIL ${SCENARIO} over ${TRANSPORT}: ${err && err.message}`);
    if (err && err.stack) console.error(err.stack.split('\n').filter((l) => l.includes('e2e.mjs')).join('\n'));
    return 1;
  } finally {
    clearTimeout(timer);
    for (const s of opened) s.disconnect();
  }
}

const code = await main();
// Let the close packets go out before exiting.
setTimeout(() => process.exit(code), 50);
