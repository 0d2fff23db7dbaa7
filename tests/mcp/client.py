"""An MCP client on the official Python SDK (PyPI `mcp`), for tests/e2e_mcp.rs.

    python client.py URL KEY MODE CALLS_JSON

MODE is `auto` (the SDK probes `server/discover` and speaks 2026-07-28 when the server does)
or `legacy` (the `initialize` handshake). CALLS_JSON is a list of [tool, arguments]. Lists the
tools, calls each, prints one JSON object: the version spoken, the tools (name, readOnlyHint,
input schema) and every call's isError, structuredContent and text.
"""

import asyncio
import json
import sys

from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url: str, key: str, mode: str, calls: list) -> dict:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    async with http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            listed = await client.list_tools()
            out = {
                "sdk": "python mcp",
                "protocol_version": client.protocol_version,
                "server": client.server_info.name if client.server_info else None,
                "tools": [
                    {"name": t.name, "readOnlyHint": t.annotations.read_only_hint if t.annotations else None, "inputSchema": t.input_schema, "description": t.description}
                    for t in listed.tools
                ],
                "calls": [],
            }
            for name, args in calls:
                r = await client.call_tool(name, args)
                out["calls"].append({
                    "name": name,
                    "arguments": args,
                    "isError": r.is_error,
                    "structuredContent": r.structured_content,
                    "text": [c.text for c in r.content if getattr(c, "type", None) == "text"],
                })
            return out


if __name__ == "__main__":
    url, key, mode, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    print(json.dumps(asyncio.run(main(url, key, mode, calls))))
