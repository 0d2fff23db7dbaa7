//! Request bodies, read under a cap: every body a key's request sends (ingest, queries, MCP) is
//! read through here. Only the admin routes, behind ADMIN_TOKEN, read theirs whole.

use millimetric_core::error::ApiError;
use millimetric_core::ingest::event::{self, Limits};
use worker::Request;

/// The body, at most `limits.max_body_bytes`: a declared Content-Length over the cap is refused
/// before a byte is read, and a chunked body with no Content-Length is read chunk by chunk and
/// refused once it passes the cap, never buffered whole (an isolate has 128 MB for everything).
pub async fn read_capped(req: &mut Request, limits: &Limits) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let declared = req.headers().get("Content-Length").ok().flatten().and_then(|l| l.parse::<usize>().ok());
    let mut body = event::CappedBody::new(limits, declared)?;
    let unreadable = || ApiError::bad_request("unreadable_body", "The request body could not be read. Send it again.");
    if declared.is_some() {
        // A declared length within the cap (CappedBody::new refused one over it; the runtime
        // holds the body to that length): read it at once, the fast path for every beacon and
        // SDK request. Only a body without Content-Length is read chunk by chunk.
        let bytes = req.bytes().await.map_err(|_| unreadable())?;
        body.push(&bytes)?;
        return Ok(body.finish());
    }
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new()); // no body at all
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if let Err(too_large) = body.push(&chunk) {
            // Read the rest and drop it, a chunk at a time, so the client gets the 413 on a
            // clean connection (an abandoned upload reads as a crash to proxies in front,
            // wrangler dev's among them); past event::MAX_DRAIN_BYTES, stop reading.
            let mut drained = chunk.len();
            while let Some(Ok(more)) = stream.next().await {
                drained += more.len();
                if drained > event::MAX_DRAIN_BYTES {
                    break;
                }
            }
            return Err(too_large);
        }
    }
    Ok(body.finish())
}
