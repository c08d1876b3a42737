// secretenv.mjs — secret_env for exec and service_start, and the services
// workspace_restore brings back, through the official MCP TypeScript SDK
// client. $SECRET_WS is a workspace created (by test_mcp.py) with the
// secret TOKEN; its value is not given to this script: every result is
// appended to $RESULTS_FILE, which the test greps for it.
// Run by tests/integration/test_mcp.py with SANDPIT_BIN and SANDPIT_STATE.
import { appendFileSync } from "node:fs";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect, check, failed, text } from "./lib.mjs";

const ws = process.env.SECRET_WS;
const rw = `rs-${process.pid}`;
const { client } = await connect();
const call = async (name, args) => {
  const r = await client.callTool({ name, arguments: args }, CallToolResultSchema);
  appendFileSync(process.env.RESULTS_FILE, JSON.stringify(r) + "\n");
  return r;
};

try {
  const { tools } = await client.listTools();
  for (const n of ["exec", "service_start"]) {
    const t = tools.find((x) => x.name === n);
    const p = t && t.inputSchema.properties.secret_env;
    check(p && p.type === "array" && p.items.type === "string" && p.maxItems === 32,
      `${n} lists secret_env in its schema`, t);
  }
  const same = '[ "$TOKEN" = "$(cat /run/secrets/TOKEN)" ] && echo same; echo "$TOKEN"';
  let r = await call("exec", { workspace: ws, secret_env: ["TOKEN"], command: same });
  check(!r.isError && r.structuredContent.stdout === "same\n[REDACTED:TOKEN]\n",
    "exec with secret_env: set, and redacted when printed", r);
  r = await call("exec", { workspace: ws, command: 'echo "[${TOKEN-unset}]"' });
  check(!r.isError && r.structuredContent.stdout === "[unset]\n", "exec without it: unset", r);
  r = await call("service_start", {
    workspace: ws, name: "web", secret_env: ["TOKEN"], ready: "file:/tmp/web",
    command: '[ "$TOKEN" = "$(cat /run/secrets/TOKEN)" ] && echo match; echo "v=$TOKEN"; touch /tmp/web; exec sleep 1000',
  });
  check(!r.isError && r.structuredContent.state === "ready" &&
    JSON.stringify(r.structuredContent.secret_env) === '["TOKEN"]', "service_start with secret_env", r);
  r = await call("service_logs", { workspace: ws, name: "web" });
  check(!r.isError && r.structuredContent.output === "match\nv=[REDACTED:TOKEN]\n",
    "the service had the value, its log shows it redacted", r);
  r = await call("service_status", { workspace: ws, name: "web" });
  check(!r.isError && JSON.stringify(r.structuredContent.services[0].secret_env) === '["TOKEN"]' &&
    !JSON.stringify(r).includes("secret_envv"), "service_status shows the name only", r);

  const bad = [
    [["NOPE"], /no secret named NOPE \(its secrets: TOKEN\)/, "an unknown name"],
    ["TOKEN", /must be an array/, "a string, not an array"],
    [{ TOKEN: 1 }, /must be an array/, "an object"],
    [Array(33).fill("TOKEN"), /at most 32/, "33 names"],
    [Array.from({ length: 20000 }, (_, i) => `X${i}`), /at most 32/, "20000 names"],
    [[1], /secret's name/, "a number"],
    [["TOKEN=x"], /secret's name/, "NAME=value"],
    [["../TOKEN"], /secret's name/, "a path"],
  ];
  for (const [se, re, what] of bad) {
    r = await call("exec", { workspace: ws, secret_env: se, command: "true" });
    check(r.isError === true && re.test(text(r)), `exec refuses ${what}`, r);
    r = await call("service_start", { workspace: ws, name: "x", secret_env: se, command: "sleep 100" });
    check(r.isError === true && re.test(text(r)), `service_start refuses ${what}`, r);
  }
  r = await call("service_status", { workspace: ws });
  check(JSON.stringify(r.structuredContent.services.map((s) => s.name)) === '["web"]',
    "no service was started by a refused call", r);

  // workspace_restore says what came back.
  r = await call("workspace_create", { name: rw });
  check(!r.isError, "workspace_create", r);
  r = await call("workspace_snapshot", { workspace: rw, snapshot: "s" });
  check(!r.isError, "workspace_snapshot", r);
  r = await call("exec", { workspace: rw, command: "touch ok" });
  for (const [name, command, ready] of [
    ["web", "touch /tmp/web; exec sleep 1000", "file:/tmp/web"],
    ["db", "[ -e /workspace/ok ] && touch /tmp/db; exec sleep 1000", "file:/tmp/db"],
    ["bg", "sleep 1000", undefined],
  ]) {
    r = await call("service_start", { workspace: rw, name, command, ready, ready_timeout: 1, restart_on_failure: true });
    check(!r.isError, `service_start ${name}`, r);
  }
  r = await call("workspace_restore", { workspace: rw, snapshot: "s" });
  const want = [{ name: "web", state: "ready" },
    { name: "db", state: "failed", reason: "readiness timeout (1s)" },
    { name: "bg", state: "running" }];
  check(!r.isError && r.structuredContent.restarted === true &&
    JSON.stringify(r.structuredContent.services) === JSON.stringify(want),
    "workspace_restore lists each service with its state", r);
  check(text(r).includes("readiness timeout"), "the text result says it too", r);
} finally {
  await call("workspace_delete", { workspace: rw });
  await client.close();
}
const n = failed();
console.log(n ? `FAILED ${n}` : "ALL OK");
process.exit(n ? 1 : 0);
