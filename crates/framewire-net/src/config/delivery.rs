//! How to subscribe, as a config table writes it (an upstream, a sink, an
//! opaque port).

use framewire_proto::{DeliveryMode, DropPolicy, SubscribeParams};
use serde::Deserialize;

use super::ConfigError;

/// The delivery keys of a table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// `low-latency` or `completeness` (the default depends on the user).
    pub mode: Option<String>,
    /// Frame budget; 0 or absent = node default.
    pub max_frames: Option<u32>,
    /// Byte budget; 0 or absent = node default.
    pub max_bytes: Option<u64>,
    /// `drop-oldest` (default) or `drop-newest`.
    pub drop_policy: Option<String>,
    /// 0-255, default 128.
    pub priority: Option<u8>,
}

impl Delivery {
    /// The keys a table may carry for delivery.
    pub const KEYS: &'static [&'static str] = &["mode", "max_frames", "max_bytes", "drop_policy", "priority"];

    /// The subscription parameters, `default_mode` when none is given.
    pub fn params(&self, default_mode: DeliveryMode) -> Result<SubscribeParams, ConfigError> {
        let mode = match &self.mode {
            None => default_mode,
            Some(m) => DeliveryMode::from_label(m)
                .ok_or_else(|| ConfigError::new(format!("unknown delivery mode `{m}` (low-latency, completeness)")))?,
        };
        let drop_policy = match &self.drop_policy {
            None => DropPolicy::DropOldest,
            Some(p) => DropPolicy::from_label(p)
                .ok_or_else(|| ConfigError::new(format!("unknown drop policy `{p}` (drop-oldest, drop-newest)")))?,
        };
        Ok(SubscribeParams {
            mode,
            max_frames: self.max_frames.unwrap_or(0),
            max_bytes: self.max_bytes.unwrap_or(0),
            drop_policy,
            priority: self.priority.unwrap_or(framewire_relay::DEFAULT_PRIORITY),
            ..SubscribeParams::default()
        })
    }
}
