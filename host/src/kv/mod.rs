//! Spin's key-value stores for guests: `spin:key-value/key-value@3.0.0`, the
//! interface spin-sdk 7's `key_value::Store` imports, backed by SQLite as Spin's
//! default store is.
//!
//! As under Spin: a component may open only the labels its `key_value_stores`
//! lists in `spin.toml` (others: `access-denied`); the label `default` needs no
//! configuration and lives in `<state dir>/sqlite_key_value.db` (the state dir
//! is `.spin` beside the manifest unless `--state-dir` says otherwise); other
//! labels come from the runtime config's `[key_value_store.<label>]` tables
//! (`type = "spin"`, `path`; no path: in memory), and a label a component names
//! that nothing configures stops the server at start. Stores are apart by label
//! even when they share a file.

mod bindings;
pub mod sqlite;

use anyhow::{bail, Result};
pub use bindings::{add_to_linker, Kv, KvView, OpenStore};
use sqlite::SqliteStore;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The label every app may name without configuring it.
pub const DEFAULT_STORE: &str = "default";
/// The default store's database file, in the state dir (Spin's name for it).
pub const DEFAULT_DB: &str = "sqlite_key_value.db";
/// Stores one request may hold open at once; more get `store-table-full`.
pub const MAX_OPEN: usize = 64;

/// Where a configured store keeps its data.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSpec {
    pub label: String,
    /// `None`: in memory, for the server's lifetime.
    pub path: Option<PathBuf>,
}

/// The stores that the app's components name, opened once per server.
#[derive(Debug, Default)]
pub struct KvStores {
    stores: BTreeMap<String, Arc<SqliteStore>>,
}

impl KvStores {
    /// Opens every label in `named`: from `specs`, or `default` in `state_dir`.
    pub fn open<'a>(named: impl IntoIterator<Item = &'a str>, specs: &[StoreSpec], state_dir: &Path) -> Result<Self> {
        let mut stores = BTreeMap::new();
        for label in named {
            if stores.contains_key(label) {
                continue;
            }
            let path = match specs.iter().find(|s| s.label == label) {
                Some(spec) => spec.path.clone(),
                None if label == DEFAULT_STORE => Some(state_dir.join(DEFAULT_DB)),
                None => bail!(
                    "a component names key-value store {label:?}, which the runtime config does not define \
                     (add [key_value_store.{label}] with type = \"spin\")"
                ),
            };
            let store = SqliteStore::open(label, path.as_deref())?;
            tracing::info!(label, path = %path.as_deref().map_or("(memory)".into(), |p| p.display().to_string()), "key-value store open");
            stores.insert(label.to_string(), Arc::new(store));
        }
        Ok(Self { stores })
    }

    /// What a component listing `labels` may open.
    pub fn access(&self, labels: &[String]) -> KvAccess {
        let allowed = labels.iter().filter_map(|l| self.stores.get(l).cloned()).collect();
        KvAccess { allowed, opened: 0 }
    }
}

/// One request's stores: those its component may open, and how many are open.
#[derive(Debug, Clone, Default)]
pub struct KvAccess {
    allowed: Vec<Arc<SqliteStore>>,
    opened: usize,
}

impl KvAccess {
    fn find(&self, label: &str) -> Option<Arc<SqliteStore>> {
        self.allowed.iter().find(|s| s.label() == label).cloned()
    }
}
