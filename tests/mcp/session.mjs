// session.mjs — a whole agent session against `sandpit mcp` through the
// official MCP TypeScript SDK client, every result asserted; then the
// protocol's edge cases (unknown tool, bad arguments, cancellation, oversized
// output). Prints TAP-like lines; exits non-zero when a check failed.
// Run by tests/integration/test_mcp.py with SANDPIT_BIN and SANDPIT_STATE.
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect, check, failed, text } from "./lib.mjs";

const ws = `mcp-${process.pid}`;
const { client } = await connect();
const call = (name, args, opts) =>
  client.callTool({ name, arguments: args }, CallToolResultSchema, opts);

try {
  // --- connect, list tools --------------------------------------------------
  const sv = client.getServerVersion();
  check(sv && sv.name === "sandpit", "server says it is sandpit", sv);
  const caps = client.getServerCapabilities();
  check(caps && caps.tools && caps.logging, "tools and logging capabilities", caps);
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  const want = ["workspace_create", "workspace_list", "workspace_stop",
    "workspace_delete", "workspace_diff", "exec", "file_list", "file_read",
    "file_write", "file_delete", "patch_apply", "shell_open", "shell_write",
    "shell_read", "shell_signal", "shell_close", "service_start",
    "service_status", "service_logs", "service_stop"];
  for (const w of want) check(names.includes(w), `tool ${w} is listed`, names);
  // Tools whose library API has not landed yet are not listed at all.
  const pending = ["snapshot", "restore"].filter((t) => !names.includes(t));
  if (pending.length) console.log(`# pending (no library API yet): ${pending.join(", ")}`);
  for (const t of tools) {
    check(t.description && t.description.length > 20 && t.inputSchema.type === "object",
      `${t.name} has a description and an object schema`);
  }
  const execTool = tools.find((t) => t.name === "exec");
  check(execTool.outputSchema && execTool.outputSchema.required.includes("exit_code"),
    "exec declares an output schema");
  await client.setLoggingLevel("info");

  // --- a whole session ------------------------------------------------------
  let r = await call("workspace_create", { name: ws, memory: "256M" });
  check(!r.isError && r.structuredContent.workspace === ws &&
    r.structuredContent.state === "running", "workspace_create", r);
  check(r.structuredContent.limits.memory === 256 * 1024 * 1024,
    "the asked memory limit is applied", r.structuredContent);

  r = await call("workspace_list", {});
  check(!r.isError && r.structuredContent.workspaces.some((w) => w.name === ws &&
    w.state === "running"), "workspace_list shows it running", r.structuredContent);

  const src = "def add(a, b):\n    return a - b\n";
  r = await call("file_write", { workspace: ws, path: "calc.py", content: src });
  check(!r.isError && r.structuredContent.bytes === src.length, "file_write", r);

  r = await call("file_write", {
    workspace: ws, path: "test_calc.sh",
    content: "python3 -B -c 'from calc import add; assert add(2, 3) == 5, add(2, 3)' && echo PASS\n",
  });
  check(!r.isError, "file_write a test script", r);

  r = await call("file_read", { workspace: ws, path: "calc.py" });
  check(!r.isError && r.structuredContent.content === src &&
    r.structuredContent.truncated === false, "file_read gives the text back", r);

  r = await call("file_list", { workspace: ws });
  const entries = (r.structuredContent && r.structuredContent.entries) || [];
  check(!r.isError && entries.some((e) => /calc\.py$/.test(e.path)),
    "file_list shows calc.py", r.structuredContent);

  // The test fails first: a non-zero exit is a result, not a tool error.
  r = await call("exec", { workspace: ws, command: ["sh", "test_calc.sh"] });
  check(!r.isError && r.structuredContent.exit_code === 1 &&
    /AssertionError/.test(r.structuredContent.stderr),
    "exec of the failing test: exit 1 with the assertion on stderr", r.structuredContent);

  const patch = "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n";
  r = await call("patch_apply", { workspace: ws, patch });
  check(!r.isError && r.structuredContent.applied === true, "patch_apply", r);

  r = await call("patch_apply", { workspace: ws, patch });
  check(r.isError === true && /did not apply/.test(text(r)),
    "patch_apply of a stale patch is a tool error that says so", r);

  r = await call("exec", { workspace: ws, command: "sh test_calc.sh" });
  check(!r.isError && r.structuredContent.exit_code === 0 &&
    r.structuredContent.stdout === "PASS\n", "exec of the fixed test passes", r.structuredContent);
  check(/exit code 0/.test(text(r)) && /PASS/.test(text(r)), "exec's text summary", text(r));

  r = await call("exec", { workspace: ws, command: ["cat"], stdin: "from stdin\n",
    env: { FOO: "bar" }, cwd: "/tmp" });
  check(!r.isError && r.structuredContent.stdout === "from stdin\n", "exec with stdin", r);
  r = await call("exec", { workspace: ws, command: "echo $FOO; pwd", env: { FOO: "bar" }, cwd: "/tmp" });
  check(!r.isError && r.structuredContent.stdout === "bar\n/tmp\n", "exec with env and cwd", r);

  r = await call("exec", { workspace: ws, command: "sleep 5", timeout: 0.3 });
  check(!r.isError && r.structuredContent.exit_code === 124 &&
    r.structuredContent.timed_out === true, "exec timeout gives 124", r.structuredContent);

  // A shell.
  r = await call("shell_open", { workspace: ws, command: ["/bin/sh"] });
  check(!r.isError && r.structuredContent.shell > 0, "shell_open", r);
  const shell = r.structuredContent && r.structuredContent.shell;
  r = await call("shell_write", { workspace: ws, shell, input: "echo shell-$((6*7))\n" });
  check(!r.isError, "shell_write", r);
  let seen = "", cursor = 0;
  for (let i = 0; i < 20 && !seen.includes("shell-42"); i++) {
    r = await call("shell_read", { workspace: ws, shell, cursor, wait: 1 });
    if (r.isError) break;
    seen += r.structuredContent.output;
    cursor = r.structuredContent.next_cursor;
  }
  check(seen.includes("shell-42"), "shell_read shows the command's output", seen);
  r = await call("shell_signal", { workspace: ws, shell, signal: "INT" });
  check(!r.isError, "shell_signal", r);
  r = await call("shell_close", { workspace: ws, shell });
  check(!r.isError, "shell_close", r);

  // A service.
  // (No network in the workspace: the service proves itself with a file.)
  r = await call("service_start", { workspace: ws, name: "web",
    command: "echo starting; python3 -B -c 'from calc import add; print(add(40, 2))' > served.txt; echo ready > ready.flag; while :; do echo tick >&2; sleep 0.1; done",
    ready: "file:ready.flag" });
  check(!r.isError, "service_start waits for its ready file", r);
  r = await call("file_read", { workspace: ws, path: "served.txt" });
  check(!r.isError && r.structuredContent.content === "42\n", "the service did its work", r.structuredContent);
  r = await call("service_status", { workspace: ws, name: "web" });
  check(!r.isError && ["running", "ready"].includes(r.structuredContent.services[0].state),
    "service_status", r.structuredContent);
  r = await call("service_logs", { workspace: ws, name: "web", tail: 10 });
  check(!r.isError && /starting/.test(r.structuredContent.output), "service_logs stdout", r.structuredContent);
  r = await call("service_logs", { workspace: ws, name: "web", stream: "stderr", tail: 10 });
  check(!r.isError && /tick/.test(r.structuredContent.output), "service_logs stderr", r.structuredContent);
  r = await call("service_stop", { workspace: ws, name: "web" });
  check(!r.isError, "service_stop", r);

  r = await call("workspace_diff", { workspace: ws });
  const d = r.structuredContent || {};
  const changed = [...(d.added || []), ...(d.modified || [])];
  check(!r.isError && changed.some((p) => /calc\.py$/.test(p)), "workspace_diff names calc.py", d);

  r = await call("file_delete", { workspace: ws, path: "test_calc.sh" });
  check(!r.isError, "file_delete", r);
  r = await call("file_read", { workspace: ws, path: "test_calc.sh" });
  check(r.isError === true, "file_read of the deleted file is a tool error", r);

  // --- edge cases -----------------------------------------------------------
  // Oversized output: cut, marked, saved whole in the workspace.
  r = await call("exec", { workspace: ws, command: "seq 1 200000", max_output: 4096 });
  const so = r.structuredContent || {};
  check(!r.isError && so.truncated === true && so.stdout.length <= 4096 &&
    so.stdout_bytes === 1288895 && so.output_files && so.output_files.stdout,
    "oversized output is truncated with the total and a file", so);
  if (so.output_files && so.output_files.stdout) {
    r = await call("exec", { workspace: ws, command: ["sh", "-c", `wc -c < ${so.output_files.stdout}; tail -n 1 ${so.output_files.stdout}`] });
    check(r.structuredContent.stdout === "1288895\n200000\n", "the saved file holds the whole output", r.structuredContent);
    r = await call("file_read", { workspace: ws, path: so.output_files.stdout, offset: 1288888 });
    check(!r.isError && r.structuredContent.content === "200000\n", "file_read reads the saved output on", r);
  }
  r = await call("file_read", { workspace: ws, path: "../../etc/passwd" });
  check(r.isError === true, "file_read outside the workspace is refused", r);

  // Unknown tool: a protocol error.
  let err = null;
  try { await call("no_such_tool", {}); } catch (e) { err = e; }
  check(err && err.code === -32602 && /unknown tool/.test(err.message), "unknown tool is -32602", err && err.message);

  // Bad arguments: tool errors that say what to do.
  r = await call("exec", { workspace: ws });
  check(r.isError === true && /command/.test(text(r)), "exec without command", r);
  r = await call("exec", { workspace: ws, command: [], bogus: 1 });
  check(r.isError === true && /bogus/.test(text(r)), "exec with an unknown argument", r);
  r = await call("exec", { workspace: "no-such-ws", command: "true" });
  check(r.isError === true && /no workspace named no-such-ws/.test(text(r)), "unknown workspace", r);
  r = await call("workspace_create", { name: "BAD NAME" });
  check(r.isError === true && /not a valid name/.test(text(r)), "bad workspace name", r);
  r = await call("workspace_create", { name: `${ws}-net`, network: "host" });
  check(r.isError === true && /not allowed/.test(text(r)), "network beyond the policy is refused", r);
  r = await call("workspace_create", { name: `${ws}-mem`, memory: "64G" });
  check(r.isError === true && /over the operator's limit/.test(text(r)), "memory beyond the policy is refused", r);

  // Cancellation: the command is killed.
  const ac = new AbortController();
  const p = call("exec", { workspace: ws, command: "echo $$ > cancel.pid; exec sleep 30" }, { signal: ac.signal });
  await new Promise((res) => setTimeout(res, 500));
  ac.abort("test");
  let cancelled = false;
  try { await p; } catch { cancelled = true; }
  check(cancelled, "the aborted call rejects");
  await new Promise((res) => setTimeout(res, 500));
  r = await call("exec", { workspace: ws, command: "kill -0 $(cat cancel.pid) 2>/dev/null && echo alive || echo gone" });
  check(r.structuredContent && r.structuredContent.stdout === "gone\n", "the cancelled command was killed", r.structuredContent);

  // Concurrency: two execs at once both answer.
  const t0 = Date.now();
  const both = await Promise.all([
    call("exec", { workspace: ws, command: "sleep 0.5; echo a" }),
    call("exec", { workspace: ws, command: "sleep 0.5; echo b" }),
  ]);
  check(both[0].structuredContent.stdout === "a\n" && both[1].structuredContent.stdout === "b\n" &&
    Date.now() - t0 < 950, "two execs run at once", Date.now() - t0);

  r = await call("workspace_stop", { workspace: ws });
  check(!r.isError && r.structuredContent.state === "stopped", "workspace_stop", r);
  r = await call("exec", { workspace: ws, command: "true" });
  check(r.isError === true && /not running/.test(text(r)) && /workspace_start/.test(text(r)),
    "exec in a stopped workspace says to start it", r);
  r = await call("workspace_start", { workspace: ws });
  check(!r.isError && r.structuredContent.state === "running", "workspace_start", r);
  r = await call("exec", { workspace: ws, command: "cat calc.py" });
  check(!r.isError && /a \+ b/.test(r.structuredContent.stdout), "files survive stop and start", r.structuredContent);
} finally {
  const r = await call("workspace_delete", { workspace: ws });
  check(!r.isError && r.structuredContent.deleted === true, "workspace_delete", r);
  await client.close();
}
const n = failed();
console.log(n ? `FAILED ${n}` : "ALL OK");
process.exit(n ? 1 : 0);
