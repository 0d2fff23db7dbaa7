//! The MCP server of the read Worker (`POST /mcp`): AI agents ask about the key's project.
//! `protocol` frames JSON-RPC over Streamable HTTP and negotiates the revision; `tools`
//! defines the tools and maps their arguments to Stats API queries and their answers back.
//! Pure: the read Worker runs the queries (the same code as `POST /v1/query`).

pub mod protocol;
pub mod tools;
