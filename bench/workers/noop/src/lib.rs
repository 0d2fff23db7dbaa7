//! No-op Worker: reads the body and answers 202, the floor every figure is compared with.
//! With NOOP_WAIT_MS set it first waits that long on a timer, doing nothing else: bench/load
//! uses it to price a wait as long as the edge's write, apart from the write's own work.
use std::cell::Cell;
use std::time::Duration;
use worker::*;

thread_local! {
    /// NOOP_WAIT_MS, read once per isolate (a read per request would slow the floor).
    static WAIT_MS: Cell<Option<u64>> = const { Cell::new(None) };
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let _ = req.bytes().await?;
    let wait = WAIT_MS.with(|w| {
        let ms = w.get().unwrap_or_else(|| env.var("NOOP_WAIT_MS").ok().and_then(|v| v.to_string().parse().ok()).unwrap_or(0));
        w.set(Some(ms));
        ms
    });
    if wait > 0 {
        Delay::from(Duration::from_millis(wait)).await;
    }
    Ok(Response::ok(r#"{"status":"accepted"}"#)?.with_status(202))
}
