// Helpers the official-client load generators share: flags, the server's
// CPU and memory from /proc, and running async work a few at a time.
'use strict';

const fs = require('node:fs');

// parseArgs reads `--name value` pairs over defaults; a value is a number
// where its default is.
function parseArgs(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--?/, '');
    if (!(key in defaults) || i + 1 >= argv.length) throw new Error(`unknown or incomplete flag ${argv[i]}`);
    out[key] = typeof defaults[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return out;
}

// groupUsage sums user+system CPU seconds and VmRSS/VmHWM KiB over the
// processes of a process group (/proc/PID/stat field 5 is the group).
function groupUsage(pgid) {
  const u = { cpu: 0, rssKiB: 0, hwmKiB: 0 };
  if (!pgid) return u;
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // it exited meanwhile
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) !== pgid) continue;
    u.cpu += (Number(f[11]) + Number(f[12])) / 100; // USER_HZ
    try {
      const status = fs.readFileSync(`/proc/${name}/status`, 'utf8');
      u.rssKiB += Number((/VmRSS:\s+(\d+)/.exec(status) || [0, 0])[1]);
      u.hwmKiB += Number((/VmHWM:\s+(\d+)/.exec(status) || [0, 0])[1]);
    } catch {
      // it exited meanwhile
    }
  }
  return u;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// inBatches runs fn(0..n-1) at most par at a time.
async function inBatches(n, par, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(par, n) }, async () => {
    while (next < n) await fn(next++);
  }));
}

module.exports = { parseArgs, groupUsage, sleep, inBatches };
