//! Our `wasi:nn` backend on top of wasmtime-wasi-nn: a graph is a loaded model
//! shared by every request (an `Arc`), an execution context is one generation
//! session that owns its KV cache. Models are loaded once when the host starts and
//! found by name (`load-by-name`); guests cannot load models from bytes.

mod context;

use crate::model::LoadedModel;
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime_wasi_nn::backend::{BackendError, BackendGraph};
use wasmtime_wasi_nn::{ExecutionContext, Graph, GraphRegistry, Registry};

/// A loaded model as a wasi:nn graph.
pub struct ModelGraph {
    model: Arc<LoadedModel>,
}

impl BackendGraph for ModelGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let ctx = context::Session::new(self.model.clone());
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
}

impl Models {
    /// Wraps already-loaded models, in the order given (the first is the default).
    pub fn new(models: Vec<(String, Arc<LoadedModel>)>) -> Self {
        let names = models.iter().map(|(n, _)| n.clone()).collect();
        let graphs = models
            .into_iter()
            .map(|(n, m)| {
                let g: Box<dyn BackendGraph> = Box::new(ModelGraph { model: m });
                (n, Graph::from(g))
            })
            .collect();
        Self {
            graphs: Arc::new(graphs),
            names: Arc::new(names),
        }
    }

    /// Graph names, the default model first.
    pub fn names(&self) -> &[String] {
        &self.names
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
