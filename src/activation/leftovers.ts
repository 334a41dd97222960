import { readdirSync, readFileSync } from 'node:fs';
import { INSTANCE_TOKEN } from './spawn.js';

/**
 * Which of the process groups a previous run of arr listed are still its instances'. A pid and
 * its start time (/proc/PID/stat) tell a reused pid apart, but anyone can read them: they do not
 * tell that arr started the process. What does, and what no other user can arrange:
 *
 * - the process is in a cgroup of the previous arr (`arr-<its pid>/<instance>`, see cgroup.ts):
 *   only root, or the process's own user, can move a process into a cgroup;
 * - or its environment holds the token arr gave that instance (spawn.ts): only the process's
 *   own user and root can read /proc/PID/environ, and only its descendants inherit it.
 *
 * A group counts as an instance's when any of its members passes (its leader may be gone, and
 * Linux gives no new process a pid that is still some group's id).
 */

/** One instance as the state file lists it (`token` is missing in files written before arr had tokens). */
export interface ListedInstance {
  pid: number;
  start: string;
  token?: string;
}

/** A token as spawn.ts makes them: anything else (a forged or damaged line) proves nothing. */
const TOKEN = /^[0-9a-f]{32}$/;

/**
 * The listed groups that are verified to be the previous run's instances (`ours`) and those
 * that are not (`unproven`: left alone). `owner` is the pid of that run, `ownerGone` whether no
 * other process holds its pid now (else a cgroup named after it proves nothing).
 */
export function verifyLeftovers(
  listed: ListedInstance[],
  owner: number,
  ownerGone: boolean,
): { ours: number[]; unproven: number[] } {
  const members = groupMembers(new Set(listed.map((l) => l.pid)));
  const ours: number[] = [];
  const unproven: number[] = [];
  for (const l of listed) {
    const token = l.token !== undefined && TOKEN.test(l.token) ? l.token : undefined;
    const proven = (members.get(l.pid) ?? []).some(
      (pid) => (ownerGone && inCgroupOf(pid, owner)) || (token !== undefined && carries(pid, token)),
    );
    (proven ? ours : unproven).push(l.pid);
  }
  return { ours, unproven };
}

/** The live members of each of these process groups, by a walk of /proc (field 5 of stat). */
function groupMembers(groups: Set<number>): Map<number, number[]> {
  const members = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return members;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses.
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    if (!groups.has(pgrp)) continue;
    const list = members.get(pgrp) ?? [];
    list.push(Number(entry));
    members.set(pgrp, list);
  }
  return members;
}

/** Whether the process is in a cgroup (v2) below one named `arr-<owner>`. */
function inCgroupOf(pid: number, owner: number): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return false;
  }
  const path = /^0::(\/.*)$/m.exec(text)?.[1];
  if (path === undefined) return false;
  const parts = path.split('/');
  const at = parts.indexOf(`arr-${owner}`);
  return at >= 0 && at < parts.length - 1 && parts[at + 1] !== '';
}

/** Whether the process's environment holds INSTANCE_TOKEN=token. */
function carries(pid: number, token: string): boolean {
  try {
    const environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
    return `\0${environ}`.includes(`\0${INSTANCE_TOKEN}=${token}\0`);
  } catch {
    return false;
  }
}
