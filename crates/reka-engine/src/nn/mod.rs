//! Our `wasi:nn` backend on top of wasmtime-wasi-nn: a graph is a loaded model
//! shared by every request (an `Arc`), an execution context is one generation
//! session that owns its KV cache. Models are loaded once when the host starts and
//! found by name (`load-by-name`); guests cannot load models from bytes. Each
//! model has one engine thread ([`scheduler`]) that batches all its sessions.
//! A model may also be served under aliases (Spin's `llama2-chat`, say), and
//! embedding models ([`embedding`]) are graphs beside the language models.
//! Finished sessions' KV caches are kept for prompts that start the same way
//! ([`prefix`]).

mod context;
pub mod embedding;
pub mod engines;
pub mod prefix;
#[cfg(test)]
mod prefix_tests;
pub mod scheduler;
mod tensors;

use crate::model::LoadedModel;
use scheduler::{Limits, Scheduler};
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime_wasi_nn::backend::{BackendError, BackendGraph};
use wasmtime_wasi_nn::{ExecutionContext, Graph, GraphRegistry, Registry};

/// A loaded model as a wasi:nn graph.
pub struct ModelGraph {
    model: Arc<LoadedModel>,
    engine: Arc<Scheduler>,
}

impl BackendGraph for ModelGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let ctx = context::Session::new(self.model.clone(), self.engine.clone());
        Ok(ExecutionContext::from(
            Box::new(ctx) as Box<dyn wasmtime_wasi_nn::backend::BackendExecutionContext>
        ))
    }
}

/// The models of this host, by graph name; cloned cheaply into every request.
#[derive(Clone, Default)]
pub struct Models {
    graphs: Arc<HashMap<String, Graph>>,
    names: Arc<Vec<String>>,
    listing: Arc<String>,
    embedding: Arc<Vec<String>>,
}

impl Models {
    /// Wraps already-loaded models, in the order given (the first is the default),
    /// each with an engine thread under the default [`Limits`].
    pub fn new(models: Vec<(String, Arc<LoadedModel>)>) -> std::io::Result<Self> {
        Self::with_limits(models, Limits::default())
    }

    /// [`Models::new`] with the engines' limits given.
    pub fn with_limits(models: Vec<(String, Arc<LoadedModel>)>, limits: Limits) -> std::io::Result<Self> {
        let names = models.iter().map(|(n, _)| n.clone()).collect();
        let listing = models
            .iter()
            .map(|(n, m)| format!("{n}[{}]", m.info.modalities().join("+")))
            .collect::<Vec<_>>()
            .join(",");
        let mut graphs = HashMap::new();
        for (n, m) in models {
            let engine = Scheduler::start(m.clone(), limits)?;
            let g: Box<dyn BackendGraph> = Box::new(ModelGraph { model: m, engine });
            graphs.insert(n, Graph::from(g));
        }
        Ok(Self {
            graphs: Arc::new(graphs),
            names: Arc::new(names),
            listing: Arc::new(listing),
            embedding: Arc::default(),
        })
    }

    /// Also serves each `(alias, model)`'s model under the alias: the same
    /// graph, engine and KV budget. An alias may not shadow a name.
    pub fn with_aliases(mut self, aliases: &[(String, String)]) -> Result<Self, String> {
        let mut graphs = (*self.graphs).clone();
        let mut names = (*self.names).clone();
        let mut listing = (*self.listing).clone();
        for (alias, target) in aliases {
            if graphs.contains_key(alias) {
                return Err(format!("the alias {alias:?} is already a model's name"));
            }
            let graph = graphs.get(target).cloned().ok_or_else(|| format!("the alias {alias:?} names {target:?}, which is not a language model here"))?;
            let mods = listing
                .split(',')
                .find_map(|e| e.strip_prefix(target.as_str()).and_then(|r| r.strip_prefix('[')))
                .map(|m| m.trim_end_matches(']').to_string())
                .unwrap_or_else(|| "text".into());
            listing.push_str(&format!(",{alias}[{mods}]"));
            graphs.insert(alias.clone(), graph);
            names.push(alias.clone());
        }
        self.graphs = Arc::new(graphs);
        self.names = Arc::new(names);
        self.listing = Arc::new(listing);
        Ok(self)
    }

    /// Adds embedding models (the first is the default), each with its engine
    /// thread.
    pub fn with_embedders(mut self, embedders: Vec<(String, Arc<reka_embed::Embedder>)>) -> std::io::Result<Self> {
        let mut graphs = (*self.graphs).clone();
        let mut names = (*self.embedding).clone();
        for (name, e) in embedders {
            if graphs.contains_key(&name) {
                return Err(std::io::Error::other(format!("two models are named {name:?}")));
            }
            let g: Box<dyn BackendGraph> = Box::new(embedding::EmbedGraph::start(&name, e)?);
            graphs.insert(name.clone(), Graph::from(g));
            names.push(name);
        }
        self.graphs = Arc::new(graphs);
        self.embedding = Arc::new(names);
        Ok(self)
    }

    /// The embedding models' graph names, the default first.
    pub fn embedding_names(&self) -> &[String] {
        &self.embedding
    }

    /// The language models' graph names (aliases last), the default first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The models and their input modalities, as the gateway reads them:
    /// `name[text+image],other[text]`, the default first.
    pub fn listing(&self) -> &str {
        &self.listing
    }

    /// A wasi:nn registry view for one store.
    pub fn registry(&self) -> Registry {
        Registry::from(self.clone())
    }
}

impl GraphRegistry for Models {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.graphs.get(name)
    }
    fn get_mut(&mut self, _name: &str) -> Option<&mut Graph> {
        None // graphs are shared and immutable
    }
}
