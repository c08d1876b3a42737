// jobs.mjs — background execs through the official MCP TypeScript SDK
// client (which checks each result against the tool's outputSchema):
// exec_start returns at once, exec_poll reads both streams by cursor,
// exec_wait is bounded and says "ended", exec_write feeds stdin, exec_kill
// signals, exec_list lists; bad arguments are refused by name and change
// nothing. Run by tests/integration/test_mcp.py with SANDPIT_BIN and
// SANDPIT_STATE.
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect, check, failed, text } from "./lib.mjs";

const ws = `jb-${process.pid}`;
const { client } = await connect();
const call = (name, args) =>
  client.callTool({ name, arguments: args }, CallToolResultSchema);

try {
  const { tools } = await client.listTools();
  for (const n of ["exec_start", "exec_poll", "exec_wait", "exec_write", "exec_kill", "exec_list"]) {
    const t = tools.find((x) => x.name === n);
    check(t && t.inputSchema.type === "object" && t.inputSchema.additionalProperties === false,
      `${n} is listed with a closed input schema`, t);
  }
  const ex = tools.find((x) => x.name === "exec");
  check(/exec_start/.test(ex.description), "exec's description says how to run longer work", ex.description);

  let r = await call("workspace_create", { name: ws });
  check(!r.isError, "workspace_create", r);

  // A foreground exec called with a progress token reports progress:
  // bytes so far (increasing) and the last line.
  const notes = [];
  r = await client.callTool({ name: "exec", arguments: { workspace: ws,
    command: "for i in 1 2 3; do echo line$i; sleep 0.6; done" } },
    CallToolResultSchema, { onprogress: (p) => notes.push(p) });
  check(!r.isError && r.structuredContent.stdout === "line1\nline2\nline3\n", "exec with progress", r);
  check(notes.length >= 1 && notes.every((p, i) => i === 0 || p.progress > notes[i - 1].progress) &&
    /lines?, \d+ bytes of output so far; last line: line\d/.test(notes[notes.length - 1].message),
    "progress notifications count the output and give the last line", notes);
  // A quiet command still reports (every 5 s), so the client keeps waiting.
  const quiet = [];
  r = await client.callTool({ name: "exec", arguments: { workspace: ws, command: "sleep 8" } },
    CallToolResultSchema, { onprogress: (p) => quiet.push(p), resetTimeoutOnProgress: true });
  check(!r.isError && quiet.length >= 1 && /^0 lines, 0 bytes/.test(quiet[0].message),
    "a quiet exec sends progress too", quiet);

  // Started at once, while the command still waits for a file.
  r = await call("exec_start", { workspace: ws,
    command: "echo one; echo e1 >&2; while [ ! -e go ]; do sleep 0.05; done; echo two; exit 7" });
  check(!r.isError && r.structuredContent.job >= 1 && r.structuredContent.state === "running",
    "exec_start returns a running job", r);
  const j = r.structuredContent.job;
  r = await call("exec_wait", { workspace: ws, job: j, timeout: 0.2 });
  check(!r.isError && r.structuredContent.ended === false && r.structuredContent.state === "running",
    "exec_wait with a short timeout says it has not ended", r);
  r = await call("exec_poll", { workspace: ws, job: j, wait: 5 });
  const s = r.structuredContent;
  check(!r.isError && s.stdout === "one\n" && s.stderr === "e1\n" && s.ended === false &&
    s.cursor === 4 && s.stderr_cursor === 3, "exec_poll reads both streams", r);
  r = await call("exec_list", { workspace: ws });
  check(!r.isError && r.structuredContent.jobs.some((x) => x.job === j && x.state === "running"),
    "exec_list lists it", r);
  r = await call("file_write", { workspace: ws, path: "go", content: "" });
  r = await call("exec_wait", { workspace: ws, job: j });
  check(!r.isError && r.structuredContent.ended === true && r.structuredContent.exit_code === 7 &&
    r.structuredContent.stdout_tail === "one\ntwo\n" && r.structuredContent.stderr_tail === "e1\n",
    "exec_wait gives the exit code and the tails", r);
  r = await call("exec_poll", { workspace: ws, job: j, cursor: s.cursor, stderr_cursor: s.stderr_cursor });
  check(!r.isError && r.structuredContent.stdout === "two\n" && r.structuredContent.stderr === "" &&
    r.structuredContent.ended === true, "exec_poll from the cursors reads only what is new", r);

  // stdin: text given at start, then more, then closed.
  r = await call("exec_start", { workspace: ws, command: ["cat"], stdin: "a\n", stdin_open: true });
  const c = r.structuredContent.job;
  check(!r.isError && r.structuredContent.stdin_open === true, "exec_start with stdin_open", r);
  r = await call("exec_write", { workspace: ws, job: c, input: "b\n", eof: true });
  check(!r.isError, "exec_write", r);
  r = await call("exec_wait", { workspace: ws, job: c });
  check(r.structuredContent.exit_code === 0 && r.structuredContent.stdout_tail === "a\nb\n",
    "cat got its stdin and ended at eof", r);
  r = await call("exec_write", { workspace: ws, job: c, input: "late" });
  check(r.isError && /stdin is closed/.test(text(r)), "writing to a closed stdin is refused", r);

  // kill, and a job's own timeout.
  r = await call("exec_start", { workspace: ws, command: "sleep 600" });
  const k = r.structuredContent.job;
  r = await call("exec_kill", { workspace: ws, job: k, signal: "TERM" });
  check(!r.isError, "exec_kill", r);
  r = await call("exec_wait", { workspace: ws, job: k });
  check(r.structuredContent.ended && r.structuredContent.exit_code === 143, "killed by TERM", r);
  r = await call("exec_kill", { workspace: ws, job: k });
  check(r.isError && /has ended/.test(text(r)), "killing an ended job is refused", r);
  r = await call("exec_start", { workspace: ws, command: "sleep 600", timeout: 0.3 });
  r = await call("exec_wait", { workspace: ws, job: r.structuredContent.job });
  check(r.structuredContent.ended && r.structuredContent.timed_out === true, "its timeout kills it", r);

  const bad = [
    ["exec_start", { workspace: ws }, /command/, "no command"],
    ["exec_start", { workspace: ws, command: [] }, /command/, "an empty command"],
    ["exec_start", { workspace: ws, command: "true", stdin_open: "yes" }, /stdin_open/, "stdin_open not a boolean"],
    ["exec_start", { workspace: ws, command: "true", timeout: -1 }, /timeout/, "a negative timeout"],
    ["exec_start", { workspace: ws, command: "true", nope: 1 }, /nope/, "an unknown argument"],
    ["exec_start", { workspace: "no-such-ws", command: "true" }, /no-such-ws/, "an unknown workspace"],
    ["exec_poll", { workspace: ws }, /job/, "no job"],
    ["exec_poll", { workspace: ws, job: 0 }, /job/, "job 0"],
    ["exec_poll", { workspace: ws, job: 1.5 }, /job/, "a fractional job"],
    ["exec_poll", { workspace: ws, job: "1" }, /job/, "a string job"],
    ["exec_poll", { workspace: ws, job: 9999 }, /no background exec 9999/, "an unknown job"],
    ["exec_poll", { workspace: ws, job: j, wait: 31 }, /wait/, "a wait over 30 s"],
    ["exec_poll", { workspace: ws, job: j, cursor: -1 }, /cursor/, "a negative cursor"],
    ["exec_wait", { workspace: ws, job: j, timeout: 3600 }, /timeout/, "a wait over 30 s"],
    ["exec_write", { workspace: ws, job: j }, /input/, "neither input nor eof"],
    ["exec_write", { workspace: ws, job: j, input: 5 }, /input/, "input not a string"],
    ["exec_kill", { workspace: ws, job: j, signal: "STOP" }, /signal/, "a signal not offered"],
    ["exec_list", { workspace: ws, job: 1 }, /job/, "exec_list with a job"],
  ];
  for (const [tool, args, re, what] of bad) {
    r = await call(tool, args);
    check(r.isError && re.test(text(r)), `${tool}: ${what} is refused by name`, r);
  }
  r = await call("exec_list", { workspace: ws });
  check(r.structuredContent.jobs.length === 4, "the refused calls started nothing", r.structuredContent);
} finally {
  await call("workspace_delete", { workspace: ws });
  await client.close();
}
const n = failed();
console.log(n ? `FAILED ${n}` : "ALL OK");
process.exit(n ? 1 : 0);
