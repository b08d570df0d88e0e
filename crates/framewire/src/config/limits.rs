//! The `[limits]` table of a node's file.

use serde::Deserialize;

/// The `[limits]` table: each key overrides one default of
/// `framewire_net::Limits`. Durations are in milliseconds (`_ms`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub max_connections: Option<usize>,
    pub max_opaque_connections: Option<usize>,
    pub hello_timeout_ms: Option<u64>,
    pub max_handshake_payload: Option<u32>,
    pub max_payload: Option<u32>,
    pub max_output_frames: Option<u32>,
    pub max_output_bytes: Option<u64>,
    pub writer_queue_bytes: Option<usize>,
    pub max_subscriptions_per_connection: Option<usize>,
    pub max_outputs: Option<usize>,
    pub max_edges: Option<usize>,
    pub idle_timeout_ms: Option<u64>,
    pub write_timeout_ms: Option<u64>,
    pub client_pending_bytes: Option<usize>,
    pub gateway_edge_idle_ms: Option<u64>,
}

impl LimitsSpec {
    /// Applies the keys given to `l`; a zero where zero makes no sense is an error.
    pub fn apply(&self, l: &mut framewire_net::Limits) -> anyhow::Result<()> {
        fn set<T: Copy + PartialEq + Default>(to: &mut T, v: Option<T>, key: &str) -> anyhow::Result<()> {
            if let Some(v) = v {
                anyhow::ensure!(v != T::default(), "limits.{key} must be more than 0");
                *to = v;
            }
            Ok(())
        }
        let ms = |v: Option<u64>| v.map(std::time::Duration::from_millis);
        set(&mut l.max_connections, self.max_connections, "max_connections")?;
        set(
            &mut l.max_opaque_connections,
            self.max_opaque_connections,
            "max_opaque_connections",
        )?;
        set(&mut l.hello_timeout, ms(self.hello_timeout_ms), "hello_timeout_ms")?;
        set(
            &mut l.max_handshake_payload,
            self.max_handshake_payload,
            "max_handshake_payload",
        )?;
        set(&mut l.max_payload, self.max_payload, "max_payload")?;
        set(&mut l.max_output_frames, self.max_output_frames, "max_output_frames")?;
        set(&mut l.max_output_bytes, self.max_output_bytes, "max_output_bytes")?;
        set(&mut l.writer_queue_bytes, self.writer_queue_bytes, "writer_queue_bytes")?;
        set(
            &mut l.max_subscriptions_per_connection,
            self.max_subscriptions_per_connection,
            "max_subscriptions_per_connection",
        )?;
        set(&mut l.max_outputs, self.max_outputs, "max_outputs")?;
        set(&mut l.max_edges, self.max_edges, "max_edges")?;
        set(&mut l.idle_timeout, ms(self.idle_timeout_ms), "idle_timeout_ms")?;
        set(&mut l.write_timeout, ms(self.write_timeout_ms), "write_timeout_ms")?;
        set(
            &mut l.client_pending_bytes,
            self.client_pending_bytes,
            "client_pending_bytes",
        )?;
        set(
            &mut l.gateway_edge_idle,
            ms(self.gateway_edge_idle_ms),
            "gateway_edge_idle_ms",
        )?;
        Ok(())
    }
}
