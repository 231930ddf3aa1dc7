//! Embedding models as wasi:nn graphs (`reka_protocol::embed`): each model has
//! one engine thread that takes every request waiting when it is free and
//! embeds their texts together, so concurrent requests share forward passes.

use super::tensors::bad;
use reka_embed::Embedder;
use reka_protocol::embed::{decode_texts, EMBEDDINGS, EMBED_TOKENS, TEXTS};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::{ExecutionContext, Tensor};

/// Most texts one request may send.
pub const MAX_TEXTS: usize = 2048;
/// Most texts the engine thread takes into one round.
const ROUND_TEXTS: usize = 256;

/// One request's texts and where its answer goes.
struct Job {
    texts: Vec<String>,
    reply: Sender<Result<Answer, String>>,
}

/// What a request gets back.
struct Answer {
    vectors: Vec<Vec<f32>>,
    tokens: usize,
}

/// An embedding model's engine: its thread and the queue to it.
#[derive(Clone)]
pub struct EmbedGraph {
    jobs: Sender<Job>,
}

impl EmbedGraph {
    /// Starts the engine thread of `embedder`, named after `name`.
    pub fn start(name: &str, embedder: Arc<Embedder>) -> std::io::Result<EmbedGraph> {
        let (jobs, rx) = channel();
        std::thread::Builder::new().name(format!("embed-{name}")).spawn(move || run(&embedder, &rx))?;
        Ok(EmbedGraph { jobs })
    }

    fn embed(&self, texts: Vec<String>) -> Result<Answer, BackendError> {
        let (reply, answer) = channel();
        self.jobs.send(Job { texts, reply }).map_err(|_| bad("the embedding engine has stopped"))?;
        let got = super::context::blocking(|| answer.recv());
        got.map_err(|_| bad("the embedding engine has stopped"))?.map_err(bad)
    }
}

/// The engine thread: a round takes the first waiting job and every job that
/// waits behind it (up to [`ROUND_TEXTS`] texts), embeds all their texts in one
/// call, and hands each job its own vectors.
fn run(embedder: &Embedder, rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut round = vec![first];
        let mut count = round[0].texts.len();
        while count < ROUND_TEXTS {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.texts.len();
                    round.push(job);
                }
                Err(_) => break,
            }
        }
        let texts: Vec<&str> = round.iter().flat_map(|j| j.texts.iter().map(String::as_str)).collect();
        match embedder.embed(&texts) {
            Ok(out) => {
                let mut vectors = out.vectors.into_iter();
                for job in round {
                    let tokens = job.texts.iter().map(|t| embedder.tokenize(t).len()).sum();
                    let mine = vectors.by_ref().take(job.texts.len()).collect();
                    let _ = job.reply.send(Ok(Answer { vectors: mine, tokens }));
                }
            }
            Err(e) => {
                for job in round {
                    let _ = job.reply.send(Err(format!("embedding failed: {e}")));
                }
            }
        }
    }
}

impl BackendGraph for EmbedGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let ctx = EmbedContext { graph: self.clone(), outputs: Vec::new() };
        Ok(ExecutionContext::from(Box::new(ctx) as Box<dyn BackendExecutionContext>))
    }
}

/// One execution context of an embedding graph: it answers [`TEXTS`].
struct EmbedContext {
    graph: EmbedGraph,
    outputs: Vec<NamedTensor>,
}

impl EmbedContext {
    fn run(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>, BackendError> {
        let [input] = inputs else {
            return Err(bad(format!("an embedding model takes one input tensor, {TEXTS}")));
        };
        if input.name != TEXTS || input.tensor.ty != TensorType::U8 {
            return Err(bad(format!("an embedding model takes one u8 tensor {TEXTS}, not {:?}", input.name)));
        }
        let texts = decode_texts(&input.tensor.data).ok_or_else(|| bad(format!("{TEXTS} is not framed UTF-8 texts")))?;
        if texts.len() > MAX_TEXTS {
            return Err(bad(format!("at most {MAX_TEXTS} texts per call, got {}", texts.len())));
        }
        let n = texts.len();
        let a = if n == 0 { Answer { vectors: Vec::new(), tokens: 0 } } else { self.graph.embed(texts)? };
        let width = a.vectors.first().map_or(0, Vec::len);
        let data: Vec<u8> = a.vectors.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
        let tokens = i32::try_from(a.tokens).unwrap_or(i32::MAX);
        Ok(vec![
            NamedTensor { name: EMBEDDINGS.into(), tensor: Tensor::new(vec![n as u32, width as u32], TensorType::Fp32, data) },
            NamedTensor { name: EMBED_TOKENS.into(), tensor: Tensor::new(vec![1], TensorType::I32, tokens.to_le_bytes().to_vec()) },
        ])
    }
}

impl BackendExecutionContext for EmbedContext {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        let name = id.name().unwrap_or(TEXTS).to_string();
        self.outputs = self.run(&[NamedTensor { name, tensor: tensor.clone() }])?;
        Ok(())
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        let found = match &id {
            Id::Index(i) => self.outputs.get(*i as usize),
            Id::Name(n) => self.outputs.iter().find(|o| &o.name == n),
        };
        found.map(|o| o.tensor.clone()).ok_or_else(|| bad(format!("no output {id:?}")))
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        match inputs {
            None => Ok(None),
            Some(inputs) => self.run(&inputs).map(Some),
        }
    }
}
