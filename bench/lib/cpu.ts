/**
 * CPU accounting from /proc: the server's RSS and CPU time, its event loop's scheduling, the
 * PostgreSQL processes that work for the bench, and the whole machine.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { round } from './round.js';

const CLK_TCK = 100; // /proc/<pid>/stat and /proc/stat count in USER_HZ, 100 on Linux

export function rssMiB(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Math.round(Number(match[1]) / 102.4) / 10 : null;
  } catch {
    return null;
  }
}

/** The fields of /proc/<pid>/stat after the command name, which may itself contain spaces. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
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

interface ServerSched {
  system: number;
  mainOnCpu: number;
  mainWaiting: number;
}

/**
 * The server process's kernel-mode CPU seconds, and its main thread's scheduler statistics from
 * /proc/<pid>/task/<pid>/schedstat: seconds on a CPU and seconds runnable but waiting for one
 * (time the event loop was ready to run while the cores were busy with something else).
 */
function serverSched(pid: number | undefined): ServerSched | null {
  if (!pid) return null;
  try {
    const fields = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const [onCpu, waiting] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8')
      .split(' ')
      .map(Number);
    return { system: Number(fields[12]) / CLK_TCK, mainOnCpu: onCpu / 1e9, mainWaiting: waiting / 1e9 };
  } catch {
    return null;
  }
}

export interface CpuSample {
  at: bigint;
  server: number | null;
  sched: ServerSched | null;
  node: boolean;
  postgres: PostgresCpu;
  machine: MachineCpu;
}

/** `node`: the server is ours (Node), whose main thread is the event loop the loop columns describe. */
export function sampleCpu(pid: number | undefined, node = true): CpuSample {
  return {
    at: process.hrtime.bigint(),
    server: procCpu(pid),
    sched: serverSched(pid),
    node,
    postgres: postgresCpu(),
    machine: machineCpu(),
  };
}

/** Where the CPU went between two samples: % of one core, and ms per request (or per event). */
export interface CpuShares {
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
  const server = before.server === null || after.server === null ? null : after.server - before.server;
  const postgres = postgresCpuDelta(before.postgres, after.postgres);
  const perReq = (seconds: number | null) =>
    seconds === null || !requests ? null : round((seconds * 1000) / requests, 3);
  const sched =
    before.sched && after.sched
      ? {
          system: after.sched.system - before.sched.system,
          onCpu: after.sched.mainOnCpu - before.sched.mainOnCpu,
          waiting: after.sched.mainWaiting - before.sched.mainWaiting,
        }
      : null;
  return {
    // Share of the server's CPU time spent in the kernel (syscalls: sockets, loopback TCP, ...).
    serverKernelSharePct: sched && server ? round((sched.system / server) * 100, 1) : null,
    // The main thread (event loop): % of wall time on a CPU, and % runnable but kept off the CPU.
    serverMainOnCpuPct: sched && after.node ? round((sched.onCpu / wall) * 100, 1) : null,
    serverMainRunqWaitPct: sched && after.node ? round((sched.waiting / wall) * 100, 1) : null,
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
