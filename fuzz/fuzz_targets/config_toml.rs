//! A node's configuration file as any text: whatever TOML it holds, every
//! `[[source]]` and `[[sink]]` table goes through the node's registries
//! (the kinds' own keys, sizes, rates, URLs with credentials, delivery
//! modes and budgets), as `framewire node --config` and SOURCE_ADD do. A
//! table is taken or refused with a message; nothing panics. Seeded with
//! docs/config.md's examples.
#![no_main]

use framewire_net::{sinks, sources};
use libfuzzer_sys::fuzz_target;

fn tables(v: Option<&toml::Value>) -> Vec<toml::Table> {
    match v {
        Some(toml::Value::Array(a)) => a.iter().filter_map(|t| t.as_table().cloned()).collect(),
        Some(toml::Value::Table(t)) => vec![t.clone()],
        _ => Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(doc) = text.parse::<toml::Table>() else { return };
    for t in tables(doc.get("source")) {
        // A file source reads the file it names: not the fuzzer's business.
        if t.get("kind").and_then(toml::Value::as_str) == Some("file") {
            continue;
        }
        if let Err(e) = sources::from_table(t) {
            assert!(!e.to_string().is_empty());
        }
    }
    for t in tables(doc.get("sink")) {
        if let Err(e) = sinks::from_table(t) {
            assert!(!e.to_string().is_empty());
        }
    }
});
