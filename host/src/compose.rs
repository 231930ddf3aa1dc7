//! Composition of components by interface name (wac-graph): each part is
//! instantiated in order, every import of a part that an earlier part exports
//! is wired to that export, the rest stay imports of the whole, and the whole
//! exports what the last part exports. The host's build script composes the
//! app and the Spin LLM provider with it (it includes this file); the server
//! plugs the provider into Spin apps that import `fermyon:spin/llm` with it.

use anyhow::{Context, Result};
use std::collections::HashMap;
use wac_graph::{types::Package, CompositionGraph, EncodeOptions};

/// Composes `parts` (a name for messages, the component's bytes), in order.
pub fn chain(parts: &[(&str, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    // Who exports each interface so far: (instance, export name).
    let mut exported: HashMap<String, wac_graph::NodeId> = HashMap::new();
    let mut last = None;
    for (name, bytes) in parts {
        let pkg = Package::from_bytes(&format!("reka:{}", name.replace(['_', '.'], "-")), None, bytes.clone(), graph.types_mut())
            .with_context(|| format!("reading component {name}"))?;
        let id = graph.register_package(pkg)?;
        let world = &graph.types()[graph[id].ty()];
        let imports: Vec<String> = world.imports.keys().cloned().collect();
        let exports: Vec<String> = world.exports.keys().cloned().collect();
        let instance = graph.instantiate(id);
        for import in imports {
            if let Some(&from) = exported.get(&import) {
                let alias = graph.alias_instance_export(from, &import)?;
                graph
                    .set_instantiation_argument(instance, &import, alias)
                    .with_context(|| format!("plugging {import} into {name}"))?;
            }
        }
        for e in &exports {
            exported.insert(e.clone(), instance);
        }
        last = Some((instance, exports));
    }
    let (instance, exports) = last.context("nothing to compose")?;
    for e in exports {
        let alias = graph.alias_instance_export(instance, &e)?;
        graph.export(alias, &e)?;
    }
    Ok(graph.encode(EncodeOptions::default())?)
}

/// Whether the component `bytes` imports the interface `name` (e.g.
/// `fermyon:spin/llm@2.0.0`).
pub fn imports(bytes: &[u8], name: &str) -> Result<bool> {
    let mut graph = CompositionGraph::new();
    let pkg = Package::from_bytes("reka:probe", None, bytes.to_vec(), graph.types_mut())?;
    let id = graph.register_package(pkg)?;
    Ok(graph.types()[graph[id].ty()].imports.contains_key(name))
}
