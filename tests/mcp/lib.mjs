// lib.mjs — what session.mjs and bench.mjs share: start `sandpit mcp`
// ($SANDPIT_BIN) under the official MCP TypeScript SDK client.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

export async function connect(args = [], name = "sandpit-test") {
  const bin = process.env.SANDPIT_BIN;
  if (!bin) throw new Error("set SANDPIT_BIN to the sandpit binary");
  const transport = new StdioClientTransport({
    command: bin,
    args: ["mcp", ...args],
    env: { ...process.env },
    stderr: "inherit",
  });
  const client = new Client({ name, version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

let failures = 0;
export function check(cond, what, detail) {
  if (cond) {
    console.log(`ok - ${what}`);
  } else {
    failures++;
    console.log(`not ok - ${what}${detail === undefined ? "" : ": " + JSON.stringify(detail).slice(0, 2000)}`);
  }
}
export function failed() {
  return failures;
}

// The text of a tool result's first content block.
export function text(r) {
  return (r.content && r.content[0] && r.content[0].text) || "";
}
