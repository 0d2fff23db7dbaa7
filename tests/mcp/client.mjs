// An MCP client on the official TypeScript SDK (npm @modelcontextprotocol/sdk), for
// tests/e2e_mcp.rs.
//   node client.mjs URL KEY CALLS_JSON
// The SDK speaks the `initialize` revisions (its latest: 2025-11-25). CALLS_JSON is a list of
// [tool, arguments]. Lists the tools, calls each, prints one JSON object like client.py's.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, key, callsJson] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "millimetric-e2e", version: "1.0.0" });
await client.connect(transport);
const listed = await client.listTools();
const out = {
  sdk: "typescript @modelcontextprotocol/sdk",
  protocol_version: transport.protocolVersion,
  server: client.getServerVersion()?.name ?? null,
  tools: listed.tools.map((t) => ({ name: t.name, readOnlyHint: t.annotations?.readOnlyHint ?? null, inputSchema: t.inputSchema, description: t.description })),
  calls: [],
};
for (const [name, args] of JSON.parse(callsJson)) {
  const r = await client.callTool({ name, arguments: args });
  out.calls.push({
    name,
    arguments: args,
    isError: r.isError ?? false,
    structuredContent: r.structuredContent ?? null,
    text: r.content.filter((c) => c.type === "text").map((c) => c.text),
  });
}
await client.close();
console.log(JSON.stringify(out));
