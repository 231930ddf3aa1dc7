//! Constraints over SmolLM2's real vocabulary (49,152 tokens, the tokenizer
//! fixture read from its GGUF): the tokens of valid documents are allowed
//! step by step, invalid ones are not, and the stop tokens come exactly when
//! the document is complete.

use reka_constrain::{Compiler, Spec, ToolSpec, Vocab};
use reka_tokenizer::{Tokenizer, VocabSpec};
use serde_json::json;

/// SmolLM2's `<|endoftext|>` and `<|im_end|>`.
const STOPS: [u32; 2] = [0, 2];

fn compiler() -> Compiler {
    let path = format!("{}/../../tests/fixtures/tokenizer/smollm2_vocab.json", env!("CARGO_MANIFEST_DIR"));
    let spec: VocabSpec = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("vocab");
    let tok = Tokenizer::new(&spec).expect("tokenizer");
    Compiler::new(Vocab::new(tok, &STOPS).expect("vocab")).expect("compiler")
}

/// Walks `text`'s tokens through `spec`: every one must be allowed; then the
/// stop tokens must be allowed exactly when `complete`.
fn walk(c: &Compiler, spec: &Spec, text: &str, complete: bool) -> Result<(), String> {
    let mut k = c.compile(spec)?;
    let tok = c.vocab().tokenizer();
    for id in tok.encode(text, false) {
        let m = k.mask()?;
        if !m.allows(id) {
            return Err(format!("token {id} {:?} not allowed after part of {text:?}", String::from_utf8_lossy(tok.token_bytes(id))));
        }
        k.accept(id)?;
    }
    let m = k.mask()?;
    if m.allows(STOPS[1]) != complete {
        return Err(format!("stop allowed: {}, want {complete}", m.allows(STOPS[1])));
    }
    Ok(())
}

#[test]
fn json_schema_documents() {
    let c = compiler();
    let schema = json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
                       "tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
        "required": ["name", "age"], "additionalProperties": false
    });
    let spec = Spec::JsonSchema(schema);
    walk(&c, &spec, r#"{"name": "Ann", "age": 31, "tags": ["a", "b"]}"#, true).expect("valid");
    walk(&c, &spec, r#"{"name": "Ann", "age": 31"#, false).expect("valid prefix");
    assert!(walk(&c, &spec, r#"{"name": "Ann", "age": 311}"#, true).is_err(), "maximum");
    assert!(walk(&c, &spec, r#"{"nam": 1}"#, false).is_err(), "unknown key");
    // llguidance writes properties in the schema's order.
    assert!(walk(&c, &spec, r#"{"age": 3, "name": "x"}"#, true).is_err(), "schema order");
}

#[test]
fn objects_that_list_properties_are_closed_unless_they_say_otherwise() {
    let c = compiler();
    let listed = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "object", "properties": {"c": {"type": "string"}}}}});
    let spec = Spec::JsonSchema(listed.clone());
    walk(&c, &spec, r#"{"a": 1, "b": {"c": "x"}}"#, true).expect("listed keys");
    assert!(walk(&c, &spec, r#"{"a": 1, "z": 2}"#, true).is_err(), "an extra key at the top");
    assert!(walk(&c, &spec, r#"{"b": {"c": "x", "z": 2}}"#, true).is_err(), "an extra key inside");
    let mut open = listed;
    open["additionalProperties"] = json!(true);
    walk(&c, &Spec::JsonSchema(open), r#"{"a": 1, "z": 2}"#, true).expect("open on request");
    // A free-form object stays free.
    walk(&c, &Spec::JsonSchema(json!({"type": "object"})), r#"{"z": [2]}"#, true).expect("free-form");
}

#[test]
fn choices_regex_and_object() {
    let c = compiler();
    let spec = Spec::Choice(vec!["yes".into(), "no (maybe)".into()]);
    walk(&c, &spec, "no (maybe)", true).expect("choice");
    assert!(walk(&c, &spec, "nope", false).is_err());
    walk(&c, &Spec::Regex(r"\d{3}-[a-z]+".into()), "123-abc", true).expect("regex");
    walk(&c, &Spec::JsonObject, r#"{"x": [1, {"y": null}]}"#, true).expect("object");
    assert!(walk(&c, &Spec::JsonObject, "[1]", true).is_err());
}

#[test]
fn tool_calls_name_a_tool_and_validate_its_arguments() {
    let c = compiler();
    let tools = vec![
        ToolSpec { name: "get_weather".into(), parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}) },
        ToolSpec { name: "add".into(), parameters: json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}) },
    ];
    let spec = Spec::ToolCalls { tools, parallel: false };
    walk(&c, &spec, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2.5}}\n</tool_call>", true).expect("call");
    assert!(walk(&c, &spec, "<tool_call>\n{\"name\": \"sub\"", false).is_err());
    assert!(walk(&c, &spec, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"city\": 1}", false).is_err());
}

#[test]
fn unsupported_schemas_are_named() {
    let c = compiler();
    let e = c.compile(&Spec::JsonSchema(json!({"type": "string", "format": "no-such-format"}))).err();
    println!("{e:?}");
    let e = c.compile(&Spec::JsonSchema(json!({"$ref": "#/$defs/missing"}))).err().expect("missing ref");
    assert!(e.contains("missing"), "{e}");
}
