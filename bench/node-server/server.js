// The baseline of `make bench`: the chat and presence events of
// SOCKET_EVENTS.md served the way the source document's own Node.js server
// serves them — socket.io 4.8 with its default settings (no connection state
// recovery, no perMessageDeflate), everything in memory, nothing stored.
//
//   node server.js [port] [workers]   (or PORT=5001 WORKERS=2 node server.js)
//
// With workers > 1 it runs as a Node.js user on several cores runs
// socket.io: a primary process that hands each connection to a worker
// (@socket.io/sticky) and workers that share broadcasts through the cluster
// adapter (@socket.io/cluster-adapter). Each worker keeps its own in-memory
// state (online users, chat history), so that mode is for the fan-out
// scenario, whose broadcasts are what the adapter shares.
//
// GET /healthz answers 200 once the server listens (with workers, once every
// worker is ready). SIGTERM/SIGINT stop it.
'use strict';

const cluster = require('node:cluster');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || process.env.PORT || 5001);
const host = process.env.HOST || '127.0.0.1';
const workers = Number(process.argv[3] || process.env.WORKERS || 1);
const clustered = workers > 1;
const READY = 'auraos-bench:worker-ready';

if (clustered && cluster.isPrimary) {
  primary();
} else {
  serve();
}

// primary forwards connections to the workers and listens only once all of
// them can take one (a connection handed to a worker still starting is lost).
function primary() {
  const { setupMaster } = require('@socket.io/sticky');
  const { setupPrimary } = require('@socket.io/cluster-adapter');
  // A plain TCP server: an HTTP server's own parser would consume the
  // request bytes that sticky reads to pick the worker.
  const httpServer = require('node:net').createServer();
  setupMaster(httpServer, { loadBalancingMethod: 'least-connection' });
  setupPrimary();
  cluster.setupPrimary({ serialization: 'advanced' });
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('message', (m) => {
      if (m === READY && ++ready === workers) {
        httpServer.listen(port, host, () => {
          console.log(`node-server primary listening on ${host}:${port} with ${workers} workers (socket.io ${socketIOVersion()}, node ${process.version})`);
        });
      }
    });
  }
  // A worker that dies ends the run: the bench measures what it started.
  cluster.on('exit', (w, code, signal) => {
    console.log(`worker ${w.process.pid} exited (${signal || code})`);
    process.exit(1);
  });
  const stop = () => {
    cluster.removeAllListeners('exit');
    for (const w of Object.values(cluster.workers)) w.kill();
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function serve() {
  const HISTORY_KEEP = 100; // messages kept per room
  const HISTORY_SEND = 50; // chat_history on join

  const httpServer = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
      return;
    }
    res.writeHead(404);
    res.end();
  });

  const io = new Server(httpServer, { cors: { origin: '*' } });

  const onlineUsers = new Map(); // userId → online user
  const chatRooms = new Map(); // room name → messages, oldest first
  let nextId = 0;

  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const ack = (cb, res) => { if (typeof cb === 'function') cb(res); };
  const fail = (socket, cb, event, message) => {
    const error = { message, code: 'INVALID_PAYLOAD', details: { event } };
    socket.emit('error', error);
    ack(cb, { ok: false, error: { code: error.code, message } });
  };
  const nameOf = (p) => p.displayName || p.email || p.uid;

  io.on('connection', (socket) => {
    const chats = new Map(); // room → profile this socket joined it with

    socket.on('join_user_room', (data, cb) => {
      if (!isObject(data) || typeof data.userId !== 'string' || !isObject(data.userProfile)) {
        return fail(socket, cb, 'join_user_room', 'userId and userProfile are required');
      }
      const { userId, userProfile } = data;
      socket.join(`user_${userId}`);
      const now = new Date();
      onlineUsers.set(userId, {
        id: userId, socketId: socket.id, connectedAt: now, userProfile, status: 'online', lastSeen: now,
      });
      socket.data.userId = userId;
      socket.emit('user_joined', { id: userId, socketId: socket.id });
      io.emit('online_users', Array.from(onlineUsers.values()));
      ack(cb, { ok: true });
    });

    socket.on('join_system_room', (room, cb) => {
      if (typeof room !== 'string') return fail(socket, cb, 'join_system_room', 'room name is required');
      socket.join(`system_${room}`);
      ack(cb, { ok: true });
    });

    socket.on('join_room', (room, cb) => {
      if (typeof room !== 'string') return fail(socket, cb, 'join_room', 'room name is required');
      socket.join(room);
      ack(cb, { ok: true });
    });

    socket.on('leave_room', (room, cb) => {
      if (typeof room !== 'string') return fail(socket, cb, 'leave_room', 'room name is required');
      socket.leave(room);
      const profile = chats.get(room);
      if (profile) {
        chats.delete(room);
        socket.to(room).emit('user_left_chat', { user: profile, message: `${nameOf(profile)} left the chat` });
      }
      ack(cb, { ok: true });
    });

    socket.on('join_chat_room', (data, cb) => {
      if (!isObject(data) || typeof data.roomName !== 'string' || !isObject(data.userProfile)) {
        return fail(socket, cb, 'join_chat_room', 'roomName and userProfile are required');
      }
      const { roomName, userProfile } = data;
      socket.join(roomName);
      chats.set(roomName, userProfile);
      if (!chatRooms.has(roomName)) chatRooms.set(roomName, []);
      socket.emit('joined_chat', { room: roomName, message: `Joined ${roomName}` });
      socket.emit('chat_history', chatRooms.get(roomName).slice(-HISTORY_SEND));
      socket.to(roomName).emit('user_joined_chat', { user: userProfile, message: `${nameOf(userProfile)} joined the chat` });
      ack(cb, { ok: true });
    });

    socket.on('send_message', (data, cb) => {
      if (!isObject(data) || typeof data.roomName !== 'string' || typeof data.message !== 'string' ||
          !isObject(data.userProfile) || data.message.trim().length === 0 || data.message.length > 1000) {
        return fail(socket, cb, 'send_message', 'roomName, message (1-1000 characters) and userProfile are required');
      }
      const { roomName, message, userProfile, messageType } = data;
      const msg = {
        id: `msg_${Date.now()}_${(nextId++).toString(36)}`,
        roomName,
        userId: userProfile.uid,
        userName: nameOf(userProfile),
        userAvatar: userProfile.photoURL || null,
        message: message.trim(),
        messageType: messageType || 'text',
        timestamp: new Date().toISOString(),
        isAI: false,
      };
      let history = chatRooms.get(roomName);
      if (!history) chatRooms.set(roomName, (history = []));
      history.push(msg);
      if (history.length > HISTORY_KEEP) history.splice(0, history.length - HISTORY_KEEP);
      io.to(roomName).emit('new_message', msg);
      ack(cb, { ok: true, id: msg.id });
    });

    const typing = (isTyping) => (data, cb) => {
      if (!isObject(data) || typeof data.roomName !== 'string' || !isObject(data.userProfile)) {
        return fail(socket, cb, isTyping ? 'typing_start' : 'typing_stop', 'roomName and userProfile are required');
      }
      const p = data.userProfile;
      socket.to(data.roomName).emit('user_typing', { userId: p.uid, userName: nameOf(p), isTyping });
      ack(cb, { ok: true });
    };
    socket.on('typing_start', typing(true));
    socket.on('typing_stop', typing(false));

    socket.on('disconnect', () => {
      for (const [room, profile] of chats) {
        socket.to(room).emit('user_left_chat', { user: profile, message: `${nameOf(profile)} left the chat` });
      }
      const userId = socket.data.userId;
      const user = userId && onlineUsers.get(userId);
      if (user && user.socketId === socket.id) {
        onlineUsers.delete(userId);
        io.emit('user_left', userId);
        io.emit('online_users', Array.from(onlineUsers.values()));
      }
    });
  });

  if (clustered) {
    io.adapter(require('@socket.io/cluster-adapter').createAdapter());
    require('@socket.io/sticky').setupWorker(io);
    process.send(READY);
  } else {
    httpServer.listen(port, host, () => {
      console.log(`node-server listening on ${host}:${port} (socket.io ${socketIOVersion()}, node ${process.version})`);
    });
  }

  const stop = () => {
    io.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function socketIOVersion() {
  const dir = path.dirname(require.resolve('socket.io'));
  return JSON.parse(fs.readFileSync(path.join(dir, '..', 'package.json'), 'utf8')).version;
}
