//! The request's constraint (WIT) as a compiled `reka_constrain` matcher:
//! JSON texts parsed, and every compile error a 400 that says what is wrong
//! or unsupported.

use crate::reka::inference::types::{Constraint as Wit, Error, ErrorKind};
use reka_constrain::{Compiler, Constraint, Spec, ToolSpec, Vocab};
use reka_tokenizer::Tokenizer;
use serde_json::Value;

fn invalid(message: String) -> Error {
    Error { kind: ErrorKind::InvalidRequest, message }
}

fn json(what: &str, text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| invalid(format!("{what} is not valid JSON: {e}")))
}

/// The WIT constraint as a [`Spec`].
pub fn spec(c: &Wit) -> Result<Spec, Error> {
    Ok(match c {
        Wit::JsonObject => Spec::JsonObject,
        Wit::JsonSchema(s) => Spec::JsonSchema(json("the JSON schema", s)?),
        Wit::Regex(r) => Spec::Regex(r.clone()),
        Wit::Choice(c) => Spec::Choice(c.clone()),
        Wit::Grammar(g) => Spec::Lark(g.clone()),
        Wit::ToolCalls(t) => Spec::ToolCalls {
            tools: t
                .tools
                .iter()
                .map(|f| Ok(ToolSpec { name: f.name.clone(), parameters: json(&format!("tool `{}`'s parameters", f.name), &f.parameters)? }))
                .collect::<Result<_, Error>>()?,
            parallel: t.parallel,
        },
    })
}

/// `spec` compiled for the model's vocabulary; `stop_ids` end the output.
pub fn compile(tok: &Tokenizer, stop_ids: &[u32], spec: &Spec) -> Result<Constraint, Error> {
    let vocab = Vocab::new(tok.clone(), stop_ids).map_err(invalid)?;
    let compiler = Compiler::new(vocab).map_err(|e| Error { kind: ErrorKind::Internal, message: e })?;
    compiler.compile(spec).map_err(|e| invalid(format!("the constraint cannot be used: {e}")))
}
