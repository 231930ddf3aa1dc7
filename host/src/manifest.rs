//! Reads a Spin application manifest (`spin.toml`, manifest version 2): HTTP
//! triggers with routes, and components with `source`, `files`,
//! `allowed_outbound_hosts`, `ai_models`, `environment` and `variables`.

use crate::kv::{KvAccess, StoreSpec};
use crate::limits::{GuestLimits, TOOL};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
struct RawManifest {
    spin_manifest_version: u32,
    application: Option<RawApplication>,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Debug, Deserialize)]
struct RawApplication {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
}

#[derive(Debug, Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Debug, Deserialize)]
struct RawHttpTrigger {
    route: String,
    component: String,
}

#[derive(Debug, Deserialize)]
struct RawComponent {
    source: String,
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    /// The models `fermyon:spin/llm` may use, as Spin reads it.
    #[serde(default)]
    ai_models: Vec<String>,
    /// The key-value stores the component may open (crate::kv).
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// Settings for tools other than Spin (Spin ignores them); ours are in
    /// `tool.reka-host`, see [`GuestLimits`].
    #[serde(default)]
    tool: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawFile {
    Path(String),
    Mapped { source: String, destination: String },
}

/// A directory of the host mounted into a component.
#[derive(Debug, Clone)]
pub struct Mount {
    pub host: PathBuf,
    pub guest: String,
}

/// One component of the app, resolved against the manifest's directory.
#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    pub source: PathBuf,
    pub mounts: Vec<Mount>,
    pub allowed_outbound_hosts: Vec<String>,
    /// The models the component may use through `fermyon:spin/llm`.
    pub ai_models: Vec<String>,
    /// The labels of the key-value stores it may open.
    pub key_value_stores: Vec<String>,
    /// Those stores, once the server has opened them.
    pub kv: KvAccess,
    /// Environment of the guest: `environment` plus resolved `variables`.
    pub env: Vec<(String, String)>,
    /// Memory and time limits of each request's instance.
    pub limits: GuestLimits,
}

/// A route and the component that serves it.
#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: String,
    pub component: String,
}

/// A parsed application.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub routes: Vec<Route>,
    pub components: HashMap<String, Component>,
    /// Where the app's state lives (the `default` key-value store): `.spin`
    /// beside the manifest unless the server is told otherwise.
    pub state_dir: PathBuf,
    /// Key-value stores the runtime config defines.
    pub key_value: Vec<StoreSpec>,
}

impl App {
    /// Reads and resolves the manifest at `path`. Variables take their value from
    /// `SPIN_VARIABLE_<NAME>` in the host environment, else from their default.
    pub fn load(path: &Path) -> Result<App> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, |k| std::env::var(k).ok())
    }

    /// Parses manifest text; `base` resolves relative paths, `env` looks up
    /// variable overrides.
    pub fn parse(text: &str, base: &Path, env: impl Fn(&str) -> Option<String>) -> Result<App> {
        let raw: RawManifest = toml::from_str(text).context("parsing spin.toml")?;
        if raw.spin_manifest_version != 2 {
            bail!("only spin_manifest_version = 2 is supported");
        }
        let mut vars = HashMap::new();
        for (name, v) in &raw.variables {
            let value = env(&format!("SPIN_VARIABLE_{}", name.to_uppercase())).or(v.default.clone());
            match value {
                Some(val) => {
                    vars.insert(name.clone(), val);
                }
                None if v.required => bail!("variable {name} is required and not set"),
                None => {}
            }
        }
        let mut components = HashMap::new();
        for (id, c) in raw.component {
            let mut env_vars: Vec<(String, String)> = c.environment.into_iter().collect();
            for (k, template) in c.variables {
                env_vars.push((k.to_uppercase(), expand(&template, &vars)?));
            }
            let mounts = c
                .files
                .into_iter()
                .map(|f| match f {
                    RawFile::Path(p) => Mount {
                        guest: format!("/{}", p.trim_start_matches('/')),
                        host: base.join(p),
                    },
                    RawFile::Mapped {
                        source,
                        destination,
                    } => Mount {
                        host: base.join(source),
                        guest: destination,
                    },
                })
                .collect();
            let limits = GuestLimits::from_tool_table(c.tool.get(TOOL))
                .with_context(|| format!("component {id}"))?;
            components.insert(
                id.clone(),
                Component {
                    id,
                    source: base.join(c.source),
                    mounts,
                    allowed_outbound_hosts: c.allowed_outbound_hosts,
                    ai_models: c.ai_models,
                    key_value_stores: c.key_value_stores,
                    kv: KvAccess::default(),
                    env: env_vars,
                    limits,
                },
            );
        }
        let mut routes = Vec::new();
        for t in raw.trigger.http {
            if !components.contains_key(&t.component) {
                bail!("route {} names unknown component {}", t.route, t.component);
            }
            routes.push(Route {
                pattern: t.route,
                component: t.component,
            });
        }
        // Most specific first: exact routes, then longer wildcard prefixes.
        routes.sort_by_key(|r| (r.pattern.ends_with("/..."), std::cmp::Reverse(r.pattern.len())));
        Ok(App {
            name: raw.application.map(|a| a.name).unwrap_or_else(|| "app".into()),
            routes,
            components,
            state_dir: base.join(".spin"),
            key_value: Vec::new(),
        })
    }

    /// The component that serves `path`, as Spin matches routes: exact, or a
    /// `/prefix/...` wildcard.
    pub fn route(&self, path: &str) -> Option<&Component> {
        self.routes
            .iter()
            .find(|r| route_matches(&r.pattern, path))
            .and_then(|r| self.components.get(&r.component))
    }
}

fn route_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix("/...") {
        Some(prefix) => {
            prefix.is_empty()
                || path == prefix
                || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
        }
        None => pattern.trim_end_matches('/') == path.trim_end_matches('/'),
    }
}

/// Expands `{{ name }}` references to application variables.
fn expand(template: &str, vars: &HashMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .with_context(|| format!("unclosed {{{{ in {template:?}"))?;
        let name = rest[start + 2..start + end].trim();
        let value = vars
            .get(name)
            .with_context(|| format!("unknown variable {name:?} in {template:?}"))?;
        out.push_str(value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
greeting = { default = "hello" }
[[trigger.http]]
route = "/v1/..."
component = "api"
[[trigger.http]]
route = "/health"
component = "probe"
[component.api]
source = "api.wasm"
files = ["static", { source = "data", destination = "/models" }]
allowed_outbound_hosts = ["https://example.com"]
ai_models = ["llama2-chat", "all-minilm-l6-v2"]
[component.api.variables]
message = "{{ greeting }}, world"
[component.probe]
source = "/abs/probe.wasm"
[component.probe.tool.reka-host]
max_memory_mb = 32
[component.probe.tool.other-tool]
anything = "goes"
"#;

    #[test]
    fn parses_routes_components_and_variables() -> Result<()> {
        let app = App::parse(MANIFEST, Path::new("/app"), |_| None)?;
        assert_eq!(app.name, "demo");
        let api = app.route("/v1/chat/completions").context("api route")?;
        assert_eq!(api.source, Path::new("/app/api.wasm"));
        assert_eq!(api.env, vec![("MESSAGE".to_string(), "hello, world".to_string())]);
        assert_eq!(api.mounts[0].guest, "/static");
        assert_eq!(api.mounts[1].host, Path::new("/app/data"));
        assert_eq!(app.route("/health").map(|c| c.id.as_str()), Some("probe"));
        assert_eq!(app.route("/health").map(|c| c.limits.max_memory_bytes), Some(32 << 20));
        assert_eq!(api.limits, GuestLimits::default());
        assert_eq!(api.ai_models, ["llama2-chat", "all-minilm-l6-v2"]);
        assert!(app.route("/health").is_some_and(|c| c.ai_models.is_empty()));
        assert!(app.route("/v2/x").is_none());
        assert!(app.route("/v1x").is_none());
        Ok(())
    }

    #[test]
    fn variables_come_from_the_environment_first() -> Result<()> {
        let app = App::parse(MANIFEST, Path::new("/app"), |k| {
            (k == "SPIN_VARIABLE_GREETING").then(|| "hi".to_string())
        })?;
        let api = app.route("/v1/models").context("api route")?;
        assert_eq!(api.env[0].1, "hi, world");
        Ok(())
    }

    #[test]
    fn rejects_unknown_components_and_versions() {
        let bad = MANIFEST.replace("component = \"probe\"", "component = \"nope\"");
        assert!(App::parse(&bad, Path::new("/"), |_| None).is_err());
        let v1 = MANIFEST.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(App::parse(&v1, Path::new("/"), |_| None).is_err());
    }
}
