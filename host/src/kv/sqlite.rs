//! One key-value store in SQLite, laid out as Spin's default store is: a table
//! `spin_key_value (store, key, value)` keyed by the store's label and the key,
//! so several labels may share one database file and stay apart.

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// A labelled store: its own connection to its database file.
pub struct SqliteStore {
    label: String,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("label", &self.label).finish()
    }
}

/// What a store operation failed with, for the guest (`error::other`).
type KvResult<T> = std::result::Result<T, String>;

impl SqliteStore {
    /// Opens (creating it and its folder where missing) the database at `path`
    /// for the store `label`; `None`: a database in memory, gone at exit.
    pub fn open(label: &str, path: Option<&Path>) -> Result<Self> {
        let conn = match path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                }
                Connection::open(p).with_context(|| format!("opening key-value store {label} at {}", p.display()))?
            }
            None => Connection::open_in_memory()?,
        };
        // Other labels (and other servers) may share the file.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                 store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                 PRIMARY KEY (store, key));",
        )
        .with_context(|| format!("preparing key-value store {label}"))?;
        Ok(Self { label: label.to_string(), conn: Mutex::new(conn) })
    }

    /// The store's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> KvResult<T> {
        let conn = self.conn.lock().map_err(|_| "the store's connection was poisoned".to_string())?;
        f(&conn).map_err(|e| format!("key-value store {}: {e}", self.label))
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        self.with(|c| {
            c.query_row("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2", params![self.label, key], |r| r.get(0))
                .optional()
        })
    }

    /// Sets `key` to `value`, replacing what was there.
    pub fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                params![self.label, key, value],
            )
            .map(drop)
        })
    }

    /// Removes `key`; no error when it was not there.
    pub fn delete(&self, key: &str) -> KvResult<()> {
        self.with(|c| c.execute("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2", params![self.label, key]).map(drop))
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> KvResult<bool> {
        self.with(|c| {
            c.query_row("SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)", params![self.label, key], |r| r.get(0))
        })
    }

    /// Every key of the store, in key order.
    pub fn keys(&self) -> KvResult<Vec<String>> {
        self.with(|c| {
            let mut q = c.prepare("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            let keys = q.query_map(params![self.label], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>();
            keys
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sharing_a_file_stay_apart_and_values_persist() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("reka-kv-{}", std::process::id()));
        let path = dir.join("nested/kv.db");
        {
            let a = SqliteStore::open("a", Some(&path))?;
            let b = SqliteStore::open("b", Some(&path))?;
            a.set("k", b"1").map_err(anyhow::Error::msg)?;
            a.set("k", b"2").map_err(anyhow::Error::msg)?;
            b.set("other", b"x").map_err(anyhow::Error::msg)?;
            assert_eq!(b.get("k").map_err(anyhow::Error::msg)?, None);
            assert!(!b.exists("k").map_err(anyhow::Error::msg)?);
            assert_eq!(a.keys().map_err(anyhow::Error::msg)?, ["k"]);
        }
        let a = SqliteStore::open("a", Some(&path))?;
        assert_eq!(a.get("k").map_err(anyhow::Error::msg)?.as_deref(), Some(&b"2"[..]));
        a.delete("k").map_err(anyhow::Error::msg)?;
        a.delete("k").map_err(anyhow::Error::msg)?;
        assert!(a.keys().map_err(anyhow::Error::msg)?.is_empty());
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
