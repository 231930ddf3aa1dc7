//! A plain spin-sdk 7 component that puts Spin's key-value interface on HTTP,
//! as a Spin user's app would use it, so the host's stores are tested through
//! a real guest: `…/kv/<store>/<key>` — `GET` (get), `PUT` (set, the body),
//! `DELETE` (delete), `GET …?exists` (exists); `GET …/kv/<store>` lists the
//! keys. A store error comes back as 403 (`access-denied`), 404
//! (`no-such-store`), 503 (`store-table-full`) or 500, with `{"error": …}`.

use serde_json::json;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{HeaderMap, HeaderValue, IntoResponse, Method, Request, StatusCode};
use spin_sdk::http_service;
use spin_sdk::key_value::{Error, Store};

type Reply = (StatusCode, HeaderMap, String);

fn reply(status: StatusCode, body: String) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (status, headers, body)
}

fn failed(e: Error) -> Reply {
    let (status, name) = match &e {
        Error::AccessDenied => (StatusCode::FORBIDDEN, "access-denied".to_string()),
        Error::NoSuchStore => (StatusCode::NOT_FOUND, "no-such-store".to_string()),
        Error::StoreTableFull => (StatusCode::SERVICE_UNAVAILABLE, "store-table-full".to_string()),
        Error::Other(m) => (StatusCode::INTERNAL_SERVER_ERROR, format!("other: {m}")),
    };
    reply(status, json!({ "error": name }).to_string())
}

async fn run(req: Request) -> Result<Reply, Error> {
    let path = req.uri().path().to_string();
    let asks_exists = req.uri().query() == Some("exists");
    let rest = path.split_once("/kv/").map(|(_, r)| r).unwrap_or_default();
    let mut parts = rest.splitn(2, '/');
    let label = parts.next().unwrap_or_default().to_string();
    let key = parts.next().map(String::from);
    let method = req.method().clone();
    let store = Store::open(&label).await?;
    Ok(match (method, key) {
        (Method::GET, None) => {
            let keys = store.get_keys().await.collect().await?;
            reply(StatusCode::OK, json!({ "keys": keys }).to_string())
        }
        (Method::GET, Some(k)) if asks_exists => reply(StatusCode::OK, json!({ "exists": store.exists(&k).await? }).to_string()),
        (Method::GET, Some(k)) => match store.get(&k).await? {
            Some(v) => reply(StatusCode::OK, json!({ "value": String::from_utf8_lossy(&v) }).to_string()),
            None => reply(StatusCode::NOT_FOUND, json!({ "value": null }).to_string()),
        },
        (Method::PUT, Some(k)) => {
            let body = match req.into_body().bytes().await {
                Ok(b) => b,
                Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, json!({ "error": "unreadable body" }).to_string())),
            };
            store.set(&k, &body).await?;
            reply(StatusCode::OK, "{}".into())
        }
        (Method::DELETE, Some(k)) => {
            store.delete(&k).await?;
            reply(StatusCode::OK, "{}".into())
        }
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, json!({ "error": "method" }).to_string()),
    })
}

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    run(req).await.unwrap_or_else(failed)
}
