//! Randomness from the runtime's CSPRNG.

use wasm_bindgen::JsCast;

/// A random v4 UUID (`crypto.randomUUID`).
pub fn uuid() -> String {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"crypto".into())
        .ok()
        .and_then(|c| {
            let f: js_sys::Function = js_sys::Reflect::get(&c, &"randomUUID".into()).ok()?.dyn_into().ok()?;
            f.call0(&c).ok()?.as_string()
        })
        .expect("crypto.randomUUID is available in workerd")
}
