//! No-op Worker: reads the body and answers 202, the floor every figure is compared with.
use worker::*;

#[event(fetch)]
async fn fetch(mut req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let _ = req.bytes().await?;
    Ok(Response::ok(r#"{"status":"accepted"}"#)?.with_status(202))
}
