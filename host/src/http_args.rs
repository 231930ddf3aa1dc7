//! `serve`'s flags for how clients are treated, turned into a server [`Policy`].

use crate::access::{ApiKeys, Cors};
use crate::connections::ConnLimits;
use crate::server::Policy;
use std::time::Duration;

/// API keys, CORS, and the caps and timeouts on what a client may hold.
#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// Require `Authorization: Bearer <key>`; several keys may be given (the flag
    /// repeated, or comma-separated in REKA_API_KEY).
    #[arg(long = "api-key", env = "REKA_API_KEY", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<String>,
    /// Paths served without a key (`/prefix/...`: all under it). The web UI's
    /// pages and files are among the defaults; the API calls they make carry the
    /// key typed into the page.
    #[arg(long, value_delimiter = ',', default_value = "/health,/metrics,/,/ui/...,/arena,/arena/leaderboard")]
    pub api_key_exempt: Vec<String>,
    /// Origins allowed to call from a browser (CORS); `*` for any. Off by default.
    #[arg(long, env = "REKA_CORS_ALLOW_ORIGIN", value_delimiter = ',')]
    pub cors_allow_origin: Vec<String>,
    /// Most connections open at once (default: what the open-files limit leaves,
    /// at most 1024). Over it the longest-idle connection is closed, or, if none
    /// is idle, the new one gets 503.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Most requests answered at once; more get 503 with Retry-After.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Seconds a connection may stay open with no request being answered.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout_s: u64,
    /// Seconds a client may take to send a request's head.
    #[arg(long, default_value_t = 10)]
    pub header_timeout_s: u64,
    /// Seconds a client may take to send a request's body.
    #[arg(long, default_value_t = 60)]
    pub body_timeout_s: u64,
    /// Seconds shutdown (SIGTERM, Ctrl-C) waits for open requests before ending them.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace_s: u64,
}

impl HttpArgs {
    /// The server policy these flags describe.
    pub fn policy(&self) -> Policy {
        Policy {
            api_keys: ApiKeys::new(self.api_keys.clone(), self.api_key_exempt.clone()),
            cors: Cors::new(self.cors_allow_origin.clone()),
            conn: ConnLimits {
                max_connections: self.max_connections.unwrap_or_else(ConnLimits::default_max_connections).max(1),
                idle_timeout: Duration::from_secs(self.idle_timeout_s.max(1)),
                header_timeout: Duration::from_secs(self.header_timeout_s.max(1)),
            },
            max_in_flight: self.max_in_flight.max(1),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_s),
            body_timeout: Duration::from_secs(self.body_timeout_s.max(1)),
        }
    }
}
