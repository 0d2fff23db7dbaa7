//! No-op Worker: reads the body and answers 202, the floor every figure is compared with.
//! With NOOP_WAIT_MS set it first waits that long on a timer, doing nothing else: bench/load
//! uses it to price a wait as long as the edge's write, apart from the write's own work. With
//! NOOP_WAIT_MS=yield it awaits once (a 0 ms timer): what any Worker that awaits anything
//! before it answers pays, whatever it waits for.
use std::cell::Cell;
use std::time::Duration;
use worker::*;

#[derive(Clone, Copy)]
enum Wait {
    None,
    Yield,
    Ms(u64),
}

thread_local! {
    /// NOOP_WAIT_MS, read once per isolate (a read per request would slow the floor).
    static WAIT: Cell<Option<Wait>> = const { Cell::new(None) };
}

fn wait(env: &Env) -> Wait {
    WAIT.with(|w| {
        let wait = w.get().unwrap_or_else(|| match env.var("NOOP_WAIT_MS").ok().map(|v| v.to_string()).as_deref() {
            Some("yield") => Wait::Yield,
            Some(ms) => ms.parse().ok().filter(|ms| *ms > 0).map_or(Wait::None, Wait::Ms),
            None => Wait::None,
        });
        w.set(Some(wait));
        wait
    })
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let _ = req.bytes().await?;
    match wait(&env) {
        Wait::None => {}
        Wait::Yield => Delay::from(Duration::ZERO).await,
        Wait::Ms(ms) => Delay::from(Duration::from_millis(ms)).await,
    }
    Ok(Response::ok(r#"{"status":"accepted"}"#)?.with_status(202))
}
