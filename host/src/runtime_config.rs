//! The runtime config: which models the host loads and under which names.
//! Kept apart from `spin.toml`, as Spin keeps runtime settings apart from the
//! manifest.
//!
//! ```toml
//! default_model = "smollm2-135m"      # optional; else the first listed
//! [models.smollm2-135m]
//! path = "~/.cache/reka/models/SmolLM2-135M-Instruct.Q4_1.gguf"
//! aliases = ["llama2-chat"]          # also served as (Spin apps' model names)
//! [models.reka-edge]                 # llama.cpp's GGUF pair of Reka Edge
//! path = "reka-edge.gguf"
//! mmproj = "mmproj-reka-edge.gguf"
//! [embedding_models.all-minilm-l6-v2] # a sentence-transformers directory
//! path = "~/.cache/reka/models/all-minilm-l6-v2"
//! [key_value_store.votes]             # Spin's key-value store, SQLite
//! type = "spin"
//! path = ".spin/votes.db"             # no path: in memory
//! ```
//!
//! Without an `[embedding_models]` table the default embedding model
//! (all-MiniLM-L6-v2) is served; an empty table serves none.

use crate::kv::StoreSpec;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
struct Raw {
    default_model: Option<String>,
    #[serde(default)]
    models: BTreeMap<String, RawModel>,
    embedding_models: Option<BTreeMap<String, RawEmbedding>>,
    #[serde(default)]
    key_value_store: BTreeMap<String, RawKeyValue>,
}

/// A key-value store as Spin's runtime config defines one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyValue {
    #[serde(rename = "type")]
    kind: String,
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    path: String,
    mmproj: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmbedding {
    path: String,
}

/// An embedding model to load: its graph name and its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedSpec {
    pub name: String,
    pub path: PathBuf,
}

/// Everything a runtime config says.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Language models, the default first.
    pub models: Vec<ModelSpec>,
    /// `(alias, model)` pairs: other names a model answers to.
    pub aliases: Vec<(String, String)>,
    /// Embedding models; `None`: the default one.
    pub embedding: Option<Vec<EmbedSpec>>,
    /// Key-value stores (`[key_value_store.<label>]`, crate::kv).
    pub key_value: Vec<StoreSpec>,
}

/// A model to load: its graph name and where its files are.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
    /// llama.cpp's vision projector GGUF beside a text GGUF (`--mmproj`).
    pub mmproj: Option<PathBuf>,
}

/// Reads the runtime config; relative paths resolve against its directory, `~`
/// against the home directory. The default model comes first.
pub fn load(path: &Path) -> Result<RuntimeConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading runtime config {}", path.display()))?;
    parse(&text, path.parent().unwrap_or(Path::new(".")))
}

/// Parses runtime config text.
pub fn parse(text: &str, base: &Path) -> Result<RuntimeConfig> {
    let raw: Raw = toml::from_str(text).context("parsing runtime config")?;
    if raw.models.is_empty() {
        bail!("the runtime config names no [models.<name>]");
    }
    let mut aliases = Vec::new();
    let mut specs: Vec<ModelSpec> = Vec::new();
    for (name, m) in raw.models {
        aliases.extend(m.aliases.into_iter().map(|a| (a, name.clone())));
        specs.push(ModelSpec { path: resolve(&m.path, base), mmproj: m.mmproj.as_deref().map(|p| resolve(p, base)), name });
    }
    let embedding = raw
        .embedding_models
        .map(|e| e.into_iter().map(|(name, m)| EmbedSpec { name, path: resolve(&m.path, base) }).collect());
    let mut key_value = Vec::new();
    for (label, kv) in raw.key_value_store {
        if kv.kind != "spin" {
            bail!("key_value_store.{label}: type {:?} is not supported (only \"spin\", SQLite)", kv.kind);
        }
        key_value.push(StoreSpec { label, path: kv.path.as_deref().map(|p| resolve(p, base)) });
    }
    if let Some(d) = raw.default_model {
        let i = specs
            .iter()
            .position(|s| s.name == d)
            .with_context(|| format!("default_model {d:?} is not among the models"))?;
        specs.swap(0, i);
    }
    Ok(RuntimeConfig { models: specs, aliases, embedding, key_value })
}

fn resolve(p: &str, base: &Path) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = dirs::home_dir() {
            return home.join(rest);
        }
    }
    base.join(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_comes_first() -> Result<()> {
        let specs = parse(
            "default_model = \"b\"\n[models.a]\npath = \"a.gguf\"\n[models.b]\npath = \"/m/b\"\n",
            Path::new("/etc/reka"),
        )?
        .models;
        assert_eq!(specs[0].name, "b");
        assert_eq!(specs[0].path, Path::new("/m/b"));
        assert_eq!(specs[1].path, Path::new("/etc/reka/a.gguf"));
        Ok(())
    }

    #[test]
    fn aliases_and_embedding_models() -> Result<()> {
        let c = parse(
            "[models.a]\npath = \"a\"\naliases = [\"llama2-chat\", \"x\"]\n[embedding_models.e]\npath = \"e\"\n",
            Path::new("/r"),
        )?;
        assert_eq!(c.aliases, [("llama2-chat".to_string(), "a".to_string()), ("x".to_string(), "a".to_string())]);
        assert_eq!(c.embedding, Some(vec![EmbedSpec { name: "e".into(), path: "/r/e".into() }]));
        // Absent: the default embedding model; empty: none.
        assert_eq!(parse("[models.a]\npath = \"a\"\n", Path::new("/"))?.embedding, None);
        assert_eq!(parse("[models.a]\npath = \"a\"\n[embedding_models]\n", Path::new("/"))?.embedding, Some(vec![]));
        assert!(parse("[models.a]\npath = \"a\"\n[embedding_models.e]\npath = \"e\"\nsize = 1\n", Path::new("/")).is_err());
        Ok(())
    }

    #[test]
    fn key_value_stores() -> Result<()> {
        let c = parse(
            "[models.a]\npath = \"a\"\n[key_value_store.votes]\ntype = \"spin\"\npath = \"v.db\"\n[key_value_store.tmp]\ntype = \"spin\"\n",
            Path::new("/r"),
        )?;
        assert_eq!(
            c.key_value,
            [StoreSpec { label: "tmp".into(), path: None }, StoreSpec { label: "votes".into(), path: Some("/r/v.db".into()) }]
        );
        assert!(parse("[models.a]\npath = \"a\"\n[key_value_store.r]\ntype = \"redis\"\n", Path::new("/")).is_err());
        Ok(())
    }

    #[test]
    fn rejects_empty_and_unknown_default() {
        assert!(parse("", Path::new("/")).is_err());
        assert!(parse("default_model = \"x\"\n[models.a]\npath = \"a\"\n", Path::new("/")).is_err());
    }
}
