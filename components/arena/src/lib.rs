//! The blind arena, an ordinary Spin app component (spin-sdk 7): a battle pits
//! two served models, chosen at random, against each other on the user's
//! prompt; the page streams both answers from the OpenAI-compatible API under
//! "Model A" / "Model B" and reveals the names only after the vote. Battles and
//! votes live in Spin's key-value store (`key_value_stores` in `spin.toml`); the
//! leaderboard is computed from all votes by `reka-arena` (Bradley–Terry fit
//! with bootstrap intervals, online Elo, win rates).
//!
//! Routes: `GET /arena`, `GET /arena/leaderboard` (pages), `GET
//! /arena/leaderboard.json`, `POST /arena/api/battle`, `POST /arena/api/vote`.

mod records;

use records::{Battle, Records};
use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{HeaderMap, HeaderValue, IntoResponse, Method, Request, StatusCode};
use spin_sdk::http_service;

type Reply = (StatusCode, HeaderMap, String);

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    (status, headers, body)
}

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    reply(status, "application/json", body.to_string())
}

/// An OpenAI-shaped error.
fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    let kind = if status.is_server_error() { "server_error" } else { "invalid_request_error" };
    json_reply(status, &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}))
}

#[derive(Deserialize)]
struct VoteBody {
    id: String,
    vote: String,
}

/// The chat models the arena may pick: `ARENA_MODELS` (the component's
/// environment) or every model the host serves.
fn served_models() -> Vec<String> {
    let list = std::env::var("ARENA_MODELS").or_else(|_| std::env::var("REKA_MODELS")).unwrap_or_default();
    let mut models: Vec<String> = list.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect();
    models.dedup();
    models
}

async fn battle() -> Reply {
    let models = served_models();
    if models.len() < 2 {
        return error(StatusCode::SERVICE_UNAVAILABLE, "arena_needs_two_models", "the arena needs at least two served models");
    }
    let (left, right) = records::pick_pair(models.len());
    let battle = Battle { left: models[left].clone(), right: models[right].clone(), vote: None };
    match Records::open().await {
        Ok(r) => match r.new_battle(&battle).await {
            Ok(id) => json_reply(StatusCode::OK, &json!({"id": id, "models": [battle.left, battle.right]})),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store_error", &e),
        },
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store_error", &e),
    }
}

async fn vote(body: &[u8]) -> Reply {
    let Ok(ask) = serde_json::from_slice::<VoteBody>(body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_body", "expected {\"id\": string, \"vote\": \"left\" | \"right\" | \"tie\" | \"bothbad\"}");
    };
    let Some(outcome) = records::outcome(&ask.vote) else {
        return error(StatusCode::BAD_REQUEST, "invalid_vote", "vote must be one of left, right, tie, bothbad");
    };
    let records = match Records::open().await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "store_error", &e),
    };
    match records.vote(&ask.id, outcome).await {
        Ok(records::Voted::Recorded(b)) => json_reply(StatusCode::OK, &json!({"left": b.left, "right": b.right})),
        Ok(records::Voted::NoSuchBattle) => error(StatusCode::NOT_FOUND, "battle_not_found", "no such battle"),
        Ok(records::Voted::Already) => error(StatusCode::CONFLICT, "already_voted", "this battle has its vote"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store_error", &e),
    }
}

async fn leaderboard() -> Reply {
    let votes = match Records::open().await {
        Ok(r) => r.votes().await,
        Err(e) => Err(e),
    };
    match votes {
        Ok(votes) => match serde_json::to_value(reka_arena::leaderboard(&votes, reka_arena::DEFAULT_RESAMPLES, reka_arena::DEFAULT_SEED)) {
            Ok(board) => json_reply(StatusCode::OK, &board),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", &e.to_string()),
        },
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store_error", &e),
    }
}

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/arena") => reply(StatusCode::OK, "text/html; charset=utf-8", include_str!("../../playground/assets/arena.html").into()),
        (Method::GET, "/arena/leaderboard") => {
            reply(StatusCode::OK, "text/html; charset=utf-8", include_str!("../../playground/assets/leaderboard.html").into())
        }
        (Method::GET, "/arena/leaderboard.json") => leaderboard().await,
        (Method::POST, "/arena/api/battle") => battle().await,
        (Method::POST, "/arena/api/vote") => match req.into_body().bytes().await {
            Ok(body) => vote(&body).await,
            Err(_) => error(StatusCode::BAD_REQUEST, "invalid_body", "could not read the request body"),
        },
        (_, "/arena" | "/arena/leaderboard" | "/arena/leaderboard.json" | "/arena/api/battle" | "/arena/api/vote") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this path")
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such arena path"),
    }
}
