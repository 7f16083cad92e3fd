/**
 * CPU accounting from /proc: the server's RSS and CPU time, its event loop's scheduling, the
 * PostgreSQL processes that work for the bench, and the whole machine.
 *
 * A server is a process tree: the pid the bench started and every live descendant (`orders serve
 * --processes N` forks N workers; a single process is a tree of one). Its CPU is summed over the
 * tree, counting a process that started between two samples whole; a process that ended between
 * them takes its CPU time with it (its parent's cutime is not read), so a tree that loses
 * processes during a run is under-counted.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { round } from './round.js';

const CLK_TCK = 100; // /proc/<pid>/stat and /proc/stat count in USER_HZ, 100 on Linux

/** The fields of /proc/<pid>/stat after the command name, which may itself contain spaces. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** `pid` and its live descendants (children found through the ppid of every /proc/<n>/stat). */
export function processTree(pid: number | undefined): number[] {
  if (!pid) return [];
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(statFields(readFileSync(`/proc/${entry}/stat`, 'utf8'))[1]);
      const siblings = children.get(ppid);
      if (siblings) siblings.push(Number(entry));
      else children.set(ppid, [Number(entry)]);
    } catch {
      // the process ended meanwhile
    }
  }
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

/** VmRSS of one process in KiB (null when it is gone). */
function rssKiB(pid: number): number | null {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/**
 * RSS of the server's process tree in MiB: the sum of each live process's VmRSS (pages shared
 * between processes count once per process, as `ps` shows them).
 */
export function rssMiB(pid: number | undefined): number | null {
  const sizes = processTree(pid)
    .map(rssKiB)
    .filter((kib): kib is number => kib !== null);
  return sizes.length === 0 ? null : Math.round(sizes.reduce((a, b) => a + b, 0) / 102.4) / 10;
}

/** utime + stime of one process, in seconds (null when unknown). */
export function procCpu(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const fields = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** utime + stime summed over the live process tree of `pid`, in seconds (null when it is gone). */
export function treeCpu(pid: number | undefined): number | null {
  const times = processTree(pid)
    .map(procCpu)
    .filter((s): s is number => s !== null);
  return times.length === 0 ? null : times.reduce((a, b) => a + b, 0);
}

/**
 * CPU seconds per PostgreSQL process that works for the bench: the cluster's own processes
 * (postmaster, walwriter, checkpointer, ...) and backends or autovacuum workers of the bench
 * databases (PostgreSQL puts the database name into each backend's process title). Backends of
 * other databases, e.g. a neighbour's test suite on the same server, are left out.
 */
const benchDatabases = new Set<string>();
const PG_AUX =
  /^postgres: (?:\S+: )?(checkpointer|background writer|walwriter|autovacuum launcher|logical replication launcher|stats collector|archiver|startup|walreceiver|walsender)/;

/** From now on, the backends of this database count as the bench's PostgreSQL CPU. */
export function countPostgresBackendsOf(database: string): void {
  benchDatabases.add(database);
}

export type PostgresCpu = Map<string, number>;

export function postgresCpu(): PostgresCpu {
  const perPid: PostgresCpu = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (comm !== 'postgres') continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const ours =
        !title.startsWith('postgres: ') || // the postmaster itself (its path and arguments)
        PG_AUX.test(title) ||
        title.split(' ').some((word) => benchDatabases.has(word));
      if (!ours) continue;
      const fields = statFields(stat);
      perPid.set(entry, (Number(fields[11]) + Number(fields[12])) / CLK_TCK);
    } catch {
      // the process ended meanwhile
    }
  }
  return perPid;
}

/** CPU used between two postgresCpu() samples; a process that started in between counts whole. */
export function postgresCpuDelta(before: PostgresCpu, after: PostgresCpu): number {
  let total = 0;
  for (const [pid, seconds] of after) total += Math.max(0, seconds - (before.get(pid) ?? 0));
  return total;
}

interface MachineCpu {
  busy: number;
  iowait: number;
  total: number;
  system: number;
}

/** Machine-wide jiffies from /proc/stat: busy, iowait, total. */
export function machineCpu(): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, iowait, total: busy + idle + iowait, system: system + irq + softirq };
}

/** One process of the server's tree: CPU seconds, of them in the kernel, and its main thread's scheduling. */
interface ServerProcessSample {
  cpu: number;
  system: number;
  mainOnCpu: number | null;
  mainWaiting: number | null;
}

/** The server's process tree, by pid. */
type ServerSample = Map<number, ServerProcessSample>;

/**
 * Each process of the server's tree: its CPU seconds (user + kernel), the kernel part, and its
 * main thread's scheduler statistics from /proc/<pid>/task/<pid>/schedstat: seconds on a CPU and
 * seconds runnable but waiting for one (time the event loop was ready to run while the cores were
 * busy with something else).
 */
function sampleServer(pid: number | undefined): ServerSample | null {
  const sample: ServerSample = new Map();
  for (const p of processTree(pid)) {
    try {
      const fields = statFields(readFileSync(`/proc/${p}/stat`, 'utf8'));
      const cpu = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
      const system = Number(fields[12]) / CLK_TCK;
      let mainOnCpu: number | null = null;
      let mainWaiting: number | null = null;
      try {
        const [onCpu, waiting] = readFileSync(`/proc/${p}/task/${p}/schedstat`, 'utf8')
          .split(' ')
          .map(Number);
        mainOnCpu = onCpu / 1e9;
        mainWaiting = waiting / 1e9;
      } catch {
        // no schedstat (kernel without it): the loop columns stay empty
      }
      sample.set(p, { cpu, system, mainOnCpu, mainWaiting });
    } catch {
      // the process ended meanwhile
    }
  }
  return sample.size === 0 ? null : sample;
}

/** The tree's use between two samples, summed; a process that started in between counts whole. */
function serverDelta(before: ServerSample, after: ServerSample) {
  const total = { cpu: 0, system: 0, onCpu: 0, waiting: 0, sched: true };
  for (const [pid, a] of after) {
    const b = before.get(pid);
    total.cpu += Math.max(0, a.cpu - (b?.cpu ?? 0));
    total.system += Math.max(0, a.system - (b?.system ?? 0));
    if (a.mainOnCpu === null || a.mainWaiting === null) total.sched = false;
    else {
      total.onCpu += Math.max(0, a.mainOnCpu - (b?.mainOnCpu ?? 0));
      total.waiting += Math.max(0, a.mainWaiting - (b?.mainWaiting ?? 0));
    }
  }
  return total;
}

export interface CpuSample {
  at: bigint;
  server: ServerSample | null;
  node: boolean;
  postgres: PostgresCpu;
  machine: MachineCpu;
}

/**
 * `pid`: the server the bench started (with its descendants); `node`: the server is ours (Node),
 * whose processes' main threads are the event loops the loop columns describe.
 */
export function sampleCpu(pid: number | undefined, node = true): CpuSample {
  return {
    at: process.hrtime.bigint(),
    server: sampleServer(pid),
    node,
    postgres: postgresCpu(),
    machine: machineCpu(),
  };
}

/** Where the CPU went between two samples: % of one core, and ms per request (or per event). */
export interface CpuShares {
  serverProcesses: number | null;
  serverKernelSharePct: number | null;
  serverMainOnCpuPct: number | null;
  serverMainRunqWaitPct: number | null;
  serverCpuPct: number | null;
  postgresCpuPct: number;
  serverCpuMsPerReq: number | null;
  postgresCpuMsPerReq: number | null;
  generatorCpuPct: number;
  otherCpuPct: number | null;
  machineBusyPct: number | null;
  machineSystemPct: number | null;
  machineIowaitPct: number | null;
}

export function cpuDelta(before: CpuSample, after: CpuSample, requests: number, generatorCpu = 0): CpuShares {
  const wall = Number(after.at - before.at) / 1e9;
  const m = {
    busy: after.machine.busy - before.machine.busy,
    iowait: after.machine.iowait - before.machine.iowait,
    total: after.machine.total - before.machine.total,
    system: after.machine.system - before.machine.system,
  };
  const tree = before.server && after.server ? serverDelta(before.server, after.server) : null;
  const server = tree ? tree.cpu : null;
  const postgres = postgresCpuDelta(before.postgres, after.postgres);
  const perReq = (seconds: number | null) =>
    seconds === null || !requests ? null : round((seconds * 1000) / requests, 3);
  const loops = tree?.sched && after.node ? tree : null;
  return {
    // Processes in the server's tree at the end (1 unless `orders serve --processes N`).
    serverProcesses: after.server ? after.server.size : null,
    // Share of the server's CPU time spent in the kernel (syscalls: sockets, loopback TCP, ...).
    serverKernelSharePct: tree && server ? round((tree.system / server) * 100, 1) : null,
    // The main threads (event loops, summed over the tree's processes): % of one core's wall time
    // on a CPU, and % runnable but kept off the CPU.
    serverMainOnCpuPct: loops ? round((loops.onCpu / wall) * 100, 1) : null,
    serverMainRunqWaitPct: loops ? round((loops.waiting / wall) * 100, 1) : null,
    serverCpuPct: server === null ? null : round((server / wall) * 100, 1),
    postgresCpuPct: round((postgres / wall) * 100, 1),
    serverCpuMsPerReq: perReq(server),
    postgresCpuMsPerReq: perReq(postgres),
    generatorCpuPct: round((generatorCpu / wall) * 100, 1),
    // Everything else that ran: the kernel's softirq work for loopback TCP, and other processes on
    // the machine (a busy neighbour shows up here and makes the run suspect).
    otherCpuPct: m.total
      ? round(
          ((m.busy / m.total) * cpus().length -
            (server ?? 0) / wall -
            postgres / wall -
            generatorCpu / wall) *
            100,
          1,
        )
      : null,
    machineBusyPct: m.total ? round((m.busy / m.total) * 100, 1) : null,
    machineSystemPct: m.total ? round((m.system / m.total) * 100, 1) : null,
    machineIowaitPct: m.total ? round((m.iowait / m.total) * 100, 1) : null,
  };
}
