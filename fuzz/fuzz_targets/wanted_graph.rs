//! A wanted-graph document as `PUT /api/wanted` receives it: the first
//! byte picks TOML or JSON, the rest is the body. Parsed, checked against
//! a controller that knows a few nodes, applied and planned when taken:
//! a refusal says why, a document taken shows every wanted edge in the
//! current graph, nothing panics. Seeded with docs/controller.md's
//! examples.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(body) else { return };
    framewire_controller::fuzz::wanted_document(text, pick & 1 == 0);
});
