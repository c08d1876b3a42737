// bounds.mjs — issue 18 through the official MCP TypeScript SDK client:
// nothing blocks the loop (a ping is answered while service_start waits on
// readiness and shell_read waits for output), every exec says how it
// ended (exit, signal, timeout, oom, pids), an exec ends everything it
// started (setsid'd daemons, background jobs; cancelled or not), the
// operator's timeout is a ceiling, protocol details (null id, unknown
// cursor), and a crashed client (stdin and stdout closed) ends its work.
// Run by tests/integration/test_mcp.py with SANDPIT_BIN, SANDPIT_STATE and
// BOUNDS_POLICY (a policy file with {"timeout": 20}).
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect, check, failed, text } from "./lib.mjs";

const ws = `bd-${process.pid}`;
const { client, transport } = await connect(["--policy", process.env.BOUNDS_POLICY, "--max-output", "16384"]);
const call = (name, args, opts) =>
  client.callTool({ name, arguments: args }, CallToolResultSchema, opts);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
// The names of the processes running in the workspace, but ps itself.
async function procs(w) {
  const r = await call("exec", { workspace: w, command: ["ps", "-eo", "comm="] });
  return r.structuredContent.stdout.split("\n").filter((l) => l && l !== "ps");
}
// Wait (bounded) until no process named `name` is left.
async function gone(w, name) {
  for (let i = 0; i < 100; i++) {
    if (!(await procs(w)).includes(name)) return true;
    await sleep(100);
  }
  return false;
}

try {
  let r = await call("workspace_create", { name: ws, memory: "64M", pids: 32 });
  check(!r.isError, "workspace_create with memory and pids limits", r);

  // --- 6: how every exec ended ----------------------------------------------
  r = await call("exec", { workspace: ws, command: "exit 3" });
  check(r.structuredContent.outcome?.ended === "exit" &&
    r.structuredContent.outcome.exit_code === 3, "exit: outcome ended exit", r.structuredContent);
  r = await call("exec", { workspace: ws, command: "kill -SEGV $$" });
  check(r.structuredContent.outcome?.ended === "signal" &&
    r.structuredContent.outcome.signal === 11 &&
    r.structuredContent.outcome.signal_name === "SIGSEGV" &&
    text(r).includes("killed by signal 11"), "signal: outcome names it", r);
  r = await call("exec", { workspace: ws, command: "sleep 30", timeout: 0.5 });
  check(r.structuredContent.outcome?.ended === "timeout" && r.structuredContent.exit_code === 124,
    "timeout: outcome ended timeout", r.structuredContent);
  // The cgroup counts OOM kills and refused forks; without one (an
  // ordinary user here) the limits are rlimits that count nothing.
  const cg = process.env.BOUNDS_CGROUP === "1";
  if (cg) {
  r = await call("exec", { workspace: ws, command: "head -c 300M /dev/zero | tail >/dev/null" });
  check(r.structuredContent.outcome?.ended === "oom" &&
    r.structuredContent.outcome.limit_bytes === 64 * 1024 * 1024 &&
    text(r).includes("out of memory (limit 64 MiB)"), "oom: outcome says out of memory and the limit", r);
  r = await call("exec", { workspace: ws, command: "for i in $(seq 60); do sleep 5 & done; wait" });
  check(r.structuredContent.outcome?.ended === "pids" &&
    r.structuredContent.outcome.limit === 32 && r.structuredContent.outcome.refused_forks >= 1,
    "pids: outcome says the pids limit refused forks", r.structuredContent);
  } else {
    console.log("# no cgroup here: oom and pids outcomes not checked");
  }

  // --- 7: an exec ends all it started -----------------------------------------
  r = await call("exec", { workspace: ws, command: "(setsid sleep 1000 &); sleep 999 & echo started" });
  check(!r.isError && r.structuredContent.stdout === "started\n", "exec with a setsid'd daemon and a background job returns", r);
  check(await gone(ws, "sleep"), "neither outlives the exec", await procs(ws));
  for (let i = 0; i < 3; i++) await call("exec", { workspace: ws, command: "for i in 1 2 3 4 5 6 7 8; do sleep 100 & done; echo ok" });
  r = await call("exec", { workspace: ws, command: "for i in $(seq 20); do sleep 0 & done; wait; echo forked" });
  check(r.structuredContent.stdout === "forked\n" && r.structuredContent.outcome.ended === "exit",
    "background jobs of finished execs do not count against pids", r.structuredContent);
  const ac = new AbortController();
  const p = call("exec", { workspace: ws, command: "(setsid sleep 1001 &); exec sleep 1002" }, { signal: ac.signal });
  for (let i = 0; i < 100 && !(await procs(ws)).includes("sleep"); i++) await sleep(50);
  ac.abort();
  await p.catch(() => {});
  check(await gone(ws, "sleep"), "a cancelled exec ends its setsid'd daemon too", await procs(ws));

  // --- 3: the operator's timeout is a ceiling -------------------------------
  r = await call("exec", { workspace: ws, command: "true", timeout: 60 });
  check(r.isError && text(r).includes("over the operator's timeout of 20 s"), "exec timeout over the operator's is refused", r);
  r = await call("workspace_create", { name: `${ws}-x`, idle_timeout: 600 });
  check(r.isError && text(r).includes("idle_timeout"), "idle_timeout over the operator's timeout is refused", r);
  r = await call("service_start", { workspace: ws, name: "s0", command: "sleep 100", ready_timeout: 60 });
  check(r.isError && text(r).includes("ready_timeout"), "ready_timeout over the operator's timeout is refused", r);

  // --- 4: nothing blocks the loop ---------------------------------------------
  r = await call("shell_open", { workspace: ws });
  check(!r.isError, "shell_open", r);
  const shell = r.structuredContent.shell;
  const order = [];
  const waits = [
    call("service_start", { workspace: ws, name: "slow", command: "sleep 100",
      ready: "file:/tmp/never", ready_timeout: 3 }).then((x) => { order.push("service"); return x; }),
    call("shell_read", { workspace: ws, shell, cursor: 1e9, wait: 3 }).then((x) => { order.push("shell"); return x; }),
  ];
  await sleep(200);
  await client.ping();
  order.push("ping");
  const [sv, sh] = await Promise.all(waits);
  check(order[0] === "ping", "ping is answered while service_start and shell_read wait", order);
  check(sv.isError && text(sv).includes("readiness timeout"), "the service's readiness wait still ends as it did", sv);
  check(!sh.isError && sh.structuredContent.shell === shell, "the shell read still answers", sh);
  const ac2 = new AbortController();
  const q = call("shell_read", { workspace: ws, shell, cursor: 1e9, wait: 20 }, { signal: ac2.signal });
  await sleep(100);
  ac2.abort();
  let aborted = false;
  await q.catch(() => { aborted = true; });
  await client.ping();
  check(aborted, "a waiting shell_read can be cancelled");

  // --- 1: results are bounded where they can go on ---------------------------
  // (this server runs with --max-output 16384, see BOUNDS_MAXOUT)
  const maxo = 16384;
  r = await call("exec", { workspace: ws, command: "seq 1 20000 > big.txt; i=0; while [ $i -lt 5000 ]; do : > f$i.txt; i=$((i+1)); done" });
  check(!r.isError && r.structuredContent.exit_code === 0, "make a 20,000-line file and 5,000 files", r.structuredContent);
  let whole = "", off = 0, pages = 0;
  for (; pages < 100; pages++) {
    r = await call("file_read", { workspace: ws, path: "big.txt", offset: off });
    const t = text(r);
    const body = t.slice(t.indexOf("--- content ---\n") + 16);
    if (pages === 0)
      check(t.length <= maxo && JSON.stringify(r.structuredContent).length <= maxo &&
        t.startsWith("{") && t.includes('"next_offset":') && body === r.structuredContent.content,
        "file_read: the text holds where to go on, then the content as it is, within --max-output",
        { len: t.length, head: t.slice(0, 200) });
    whole += r.structuredContent.content;
    if (!r.structuredContent.truncated) break;
    off = r.structuredContent.next_offset;
  }
  const want = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join("");
  check(whole === want, "reading on from next_offset gives the whole file, nothing skipped", { pages, got: whole.length, want: want.length });
  r = await call("file_list", { workspace: ws });
  check(text(r).length <= maxo && r.structuredContent.truncated === true &&
    typeof r.structuredContent.hint === "string" && r.structuredContent.count > 5000 &&
    !text(r).includes("[cut"), "file_list: cut to whole entries, with truncated and hint", { len: text(r).length });
  // --- 2: workspace_diff is bounded and paged -----------------------------------
  const seenPaths = new Set();
  let doff = 0, dpages = 0, total = -1;
  for (; dpages < 200; dpages++) {
    r = await call("workspace_diff", { workspace: ws, offset: doff });
    check(!r.isError && JSON.stringify(r.structuredContent).length <= maxo, `workspace_diff page ${dpages} within --max-output`, r.isError ? r : JSON.stringify(r.structuredContent).length);
    if (r.isError) break;
    total = r.structuredContent.total;
    for (const k of ["added", "modified", "deleted"]) for (const x of r.structuredContent[k]) seenPaths.add(x);
    if (r.structuredContent.next_offset === null) break;
    doff = r.structuredContent.next_offset;
  }
  check(dpages > 1 && seenPaths.size === total && seenPaths.has("/workspace/f4999.txt"),
    "workspace_diff pages through every path", { dpages, seen: seenPaths.size, total });

  // --- 8: protocol details ------------------------------------------------------
  let cursorErr = null;
  await client.listTools({ cursor: "no-such-cursor" }).catch((e) => { cursorErr = e; });
  check(cursorErr && cursorErr.code === -32602, "an unknown tools/list cursor is refused", String(cursorErr));
  // The SDK drops a reply whose id is null (its schema has none), so the
  // server's raw output is read alongside.
  let raw = "";
  const tap = (d) => { raw += d.toString(); };
  transport._process.stdout.on("data", tap);
  await transport.send({ jsonrpc: "2.0", id: null, method: "ping" });
  await client.ping();
  transport._process.stdout.off("data", tap);
  const seen = raw.split("\n").filter((l) => l.includes('"id":null')).map((l) => JSON.parse(l));
  check(seen.length === 1 && seen[0].error && seen[0].error.code === -32600 && !("result" in seen[0]),
    "a request with id null is refused, not answered", raw);
} finally {
  await call("workspace_delete", { workspace: ws });
  await client.close();
}

// --- 5: a crashed client's commands end with it --------------------------------
{
  const w = `${ws}-c`;
  const { client: c2, transport: t2 } = await connect();
  const call2 = (name, args, opts) => c2.callTool({ name, arguments: args }, CallToolResultSchema, opts);
  let r = await call2("workspace_create", { name: w });
  check(!r.isError, "workspace_create (crash)", r);
  const proc = t2._process;
  const exited = new Promise((res) => proc.on("exit", (code, sig) => res({ code, sig })));
  call2("exec", { workspace: w, command: "(setsid sleep 1003 &); exec sleep 1004" }).catch(() => {});
  await sleep(500);
  // The client crashes: both pipes close, nobody sends EOF politely.
  proc.stdout.destroy();
  proc.stdin.destroy();
  const how = await Promise.race([exited, sleep(30000).then(() => "still running")]);
  check(how !== "still running", "the server notices its client is gone and exits", how);
  const { client: c3 } = await connect();
  const call3 = (name, args) => c3.callTool({ name, arguments: args }, CallToolResultSchema);
  let left = [];
  for (let i = 0; i < 100; i++) {
    r = await call3("exec", { workspace: w, command: ["ps", "-eo", "comm="] });
    left = r.structuredContent.stdout.split("\n").filter((l) => l === "sleep");
    if (!left.length) break;
    await sleep(100);
  }
  check(left.length === 0, "what the crashed client started has ended", r.structuredContent);
  await call3("workspace_delete", { workspace: w });
  await c3.close();
}

// --- 3: a shell and a service live at most the operator's timeout ----------
{
  const fs = await import("node:fs");
  const os = await import("node:os");
  const path = await import("node:path");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bounds-"));
  const pol = path.join(dir, "policy.json");
  fs.writeFileSync(pol, JSON.stringify({ timeout: 2 }));
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(pol, 0o644);
  const w = `${ws}-t`;
  const { client: c4 } = await connect(["--policy", pol]);
  const call4 = (name, args) => c4.callTool({ name, arguments: args }, CallToolResultSchema);
  let r = await call4("workspace_create", { name: w });
  check(!r.isError, "workspace_create (timeout 2)", r);
  r = await call4("shell_open", { workspace: w, command: ["sh"] });
  const sh = r.structuredContent.shell;
  await call4("shell_write", { workspace: w, shell: sh, input: "sleep 1000\n" });
  r = await call4("service_start", { workspace: w, name: "s", command: "sleep 1000" });
  check(!r.isError && r.structuredContent.state === "running", "service_start", r);
  let rd, st, cur = 0;
  for (let i = 0; i < 60; i++) {
    rd = (await call4("shell_read", { workspace: w, shell: sh, cursor: cur, wait: 0.5 })).structuredContent;
    cur = rd.next_cursor;
    st = (await call4("service_status", { workspace: w, name: "s" })).structuredContent.services[0];
    if (rd.ended && ["exited", "failed"].includes(st.state)) break;
    await sleep(200);
  }
  check(rd.ended, "the shell is hung up at the operator's timeout", rd);
  check(st.state === "exited" && /timeout/.test(st.reason), "the service is stopped at the operator's timeout", st);
  await call4("workspace_delete", { workspace: w });
  await c4.close();
  fs.rmSync(dir, { recursive: true });
}

if (failed()) {
  console.log(`FAILED: ${failed()}`);
  process.exit(1);
}
console.log("ALL OK");
process.exit(0);
