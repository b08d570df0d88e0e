//! The CLI's compact specs (`--source KIND:NAME,key=value...`, `--sink`,
//! `--upstream`, `--opaque`), turned into the tables a node's file holds,
//! so the CLI and the file share one parser and one set of checks.

use anyhow::Context;

use super::{OpaqueSpec, UpstreamSpec};

/// `key=value` pairs of a compact spec.
type Pairs = Vec<(String, String)>;

/// Parses a compact spec `KIND:NAME[,key=value...]` into its parts; an
/// item without `=` continues the value before it (`position=0,0`).
fn spec_parts(spec: &str) -> anyhow::Result<(String, String, Pairs)> {
    let mut items = spec.split(',');
    let head = items.next().unwrap_or_default();
    let (kind, name) = head
        .split_once(':')
        .with_context(|| format!("`{spec}`: expected KIND:NAME[,key=value...]"))?;
    let mut kv = Vec::new();
    for item in items {
        match (item.split_once('='), kv.last_mut()) {
            (Some((k, v)), _) => kv.push((k.trim().to_owned(), v.trim().to_owned())),
            (None, Some((_, v))) => {
                v.push(',');
                v.push_str(item.trim());
            }
            (None, None) => anyhow::bail!("`{spec}`: `{item}` is not key=value"),
        }
    }
    Ok((kind.to_owned(), name.to_owned(), kv))
}

/// Builds a TOML table from a compact spec, so the CLI and the file share
/// one parser and one set of checks.
fn spec_to_toml(fields: &[(&str, String)], kv: Pairs) -> String {
    let mut out = String::new();
    for (k, v) in fields {
        out.push_str(&format!("{k} = {}\n", toml_value(v)));
    }
    for (k, v) in kv {
        out.push_str(&format!("{} = {}\n", k.replace('-', "_"), toml_value(&v)));
    }
    out
}

fn toml_value(v: &str) -> String {
    if v.parse::<i64>().is_ok() || v.parse::<f64>().is_ok() || v == "true" || v == "false" {
        v.to_owned()
    } else {
        format!("{v:?}")
    }
}

/// `--source test-pattern:NAME[,size=WxH,fps=N,format=F,...]`, `--source file:NAME,path=P[,fps=N]`
/// or `--source v4l2:NAME[,device=D,size=WxH,...]`.
pub fn parse_source(spec: &str) -> anyhow::Result<toml::Table> {
    let (kind, name, kv) = spec_parts(spec)?;
    let text = spec_to_toml(&[("kind", kind), ("name", name)], kv);
    toml::from_str(&text).with_context(|| format!("--source `{spec}`"))
}

/// `--upstream HOST:PORT/STREAM[,as=NAME,mode=M,max-frames=N,...]`.
pub fn parse_upstream(spec: &str) -> anyhow::Result<UpstreamSpec> {
    let mut items = spec.splitn(2, ',');
    let head = items.next().unwrap_or_default();
    let (addr, stream) = head
        .rsplit_once('/')
        .with_context(|| format!("--upstream `{spec}`: expected HOST:PORT/STREAM[,key=value...]"))?;
    let kv = match items.next() {
        Some(rest) => spec_parts(&format!("x:x,{rest}"))?.2,
        None => Vec::new(),
    };
    let text = spec_to_toml(&[("addr", addr.to_owned()), ("stream", stream.to_owned())], kv);
    toml::from_str(&text).with_context(|| format!("--upstream `{spec}`"))
}

/// `--sink KIND:STREAM[,path=P,mode=M,...]`.
pub fn parse_sink(spec: &str) -> anyhow::Result<toml::Table> {
    let (kind, stream, kv) = spec_parts(spec)?;
    let text = spec_to_toml(&[("kind", kind), ("stream", stream)], kv);
    toml::from_str(&text).with_context(|| format!("--sink `{spec}`"))
}

/// `--link PEER[,scheduler=S,max-rate=R,burst=B,quantum=Q]`.
pub fn parse_link(spec: &str) -> anyhow::Result<framewire_net::LinkSpec> {
    let mut items = spec.splitn(2, ',');
    let peer = items.next().unwrap_or_default();
    let kv = match items.next() {
        Some(rest) => spec_parts(&format!("x:x,{rest}"))?.2,
        None => Vec::new(),
    };
    let text = spec_to_toml(&[("peer", peer.to_owned())], kv);
    toml::from_str(&text).with_context(|| format!("--link `{spec}`"))
}

/// `--opaque STREAM=HOST:PORT[,mode=M,...]`.
pub fn parse_opaque(spec: &str) -> anyhow::Result<OpaqueSpec> {
    let mut items = spec.splitn(2, ',');
    let head = items.next().unwrap_or_default();
    let (stream, listen) = head
        .split_once('=')
        .with_context(|| format!("--opaque `{spec}`: expected STREAM=HOST:PORT[,key=value...]"))?;
    let kv = match items.next() {
        Some(rest) => spec_parts(&format!("x:x,{rest}"))?.2,
        None => Vec::new(),
    };
    let text = spec_to_toml(&[("stream", stream.to_owned()), ("listen", listen.to_owned())], kv);
    toml::from_str(&text).with_context(|| format!("--opaque `{spec}`"))
}
