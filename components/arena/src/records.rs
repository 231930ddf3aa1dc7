//! Battles and votes in Spin's key-value store: `battle/<id>` holds the pair
//! (and, once voted, the vote); `vote/<time>/<id>` holds each vote, so the
//! keys' order is the votes' order (online Elo depends on it).

use reka_arena::{Outcome, Vote};
use serde::{Deserialize, Serialize};
use spin_sdk::key_value::Store;
use std::hash::{BuildHasher, Hasher};

/// The store the arena keeps its records in.
const STORE: &str = "default";
const BATTLE: &str = "battle/";
const VOTE: &str = "vote/";

/// Two models and, once given, the vote between them.
#[derive(Serialize, Deserialize)]
pub struct Battle {
    pub left: String,
    pub right: String,
    pub vote: Option<Outcome>,
}

/// What became of a vote.
pub enum Voted {
    Recorded(Battle),
    NoSuchBattle,
    Already,
}

/// A fresh random number (std's hasher keys come from WASI's random source).
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

/// Two different indices below `n` (n ≥ 2), in random order.
pub fn pick_pair(n: usize) -> (usize, usize) {
    let n64 = n as u64;
    let left = (random() % n64) as usize;
    let right = (left + 1 + (random() % (n64 - 1)) as usize) % n;
    (left, right)
}

/// The vote the page sends, by name.
pub fn outcome(name: &str) -> Option<Outcome> {
    match name {
        "left" => Some(Outcome::Left),
        "right" => Some(Outcome::Right),
        "tie" => Some(Outcome::Tie),
        "bothbad" => Some(Outcome::BothBad),
        _ => None,
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The arena's records in the store.
pub struct Records(Store);

impl Records {
    pub async fn open() -> Result<Self, String> {
        Store::open(STORE).await.map(Records).map_err(|e| format!("opening key-value store {STORE}: {e:?}"))
    }

    /// Stores `battle` under a new id, which it returns.
    pub async fn new_battle(&self, battle: &Battle) -> Result<String, String> {
        let id = format!("b-{:016x}", random());
        let value = serde_json::to_vec(battle).map_err(|e| e.to_string())?;
        self.0.set(format!("{BATTLE}{id}"), value).await.map_err(|e| format!("{e:?}"))?;
        Ok(id)
    }

    /// Records the vote on battle `id`, once.
    pub async fn vote(&self, id: &str, outcome: Outcome) -> Result<Voted, String> {
        let key = format!("{BATTLE}{id}");
        let Some(bytes) = self.0.get(&key).await.map_err(|e| format!("{e:?}"))? else {
            return Ok(Voted::NoSuchBattle);
        };
        let mut battle: Battle = serde_json::from_slice(&bytes).map_err(|e| format!("battle {id}: {e}"))?;
        if battle.vote.is_some() {
            return Ok(Voted::Already);
        }
        battle.vote = Some(outcome);
        let vote = Vote { left: battle.left.clone(), right: battle.right.clone(), outcome };
        let vote_bytes = serde_json::to_vec(&vote).map_err(|e| e.to_string())?;
        self.0.set(format!("{VOTE}{:024}/{id}", now_nanos()), vote_bytes).await.map_err(|e| format!("{e:?}"))?;
        let battle_bytes = serde_json::to_vec(&battle).map_err(|e| e.to_string())?;
        self.0.set(key, battle_bytes).await.map_err(|e| format!("{e:?}"))?;
        Ok(Voted::Recorded(battle))
    }

    /// Every vote, oldest first.
    pub async fn votes(&self) -> Result<Vec<Vote>, String> {
        let mut keys: Vec<String> = self.0.get_keys().await.collect().await.map_err(|e| format!("{e:?}"))?;
        keys.retain(|k| k.starts_with(VOTE));
        keys.sort();
        let mut votes = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(bytes) = self.0.get(&key).await.map_err(|e| format!("{e:?}"))? {
                votes.push(serde_json::from_slice(&bytes).map_err(|e| format!("{key}: {e}"))?);
            }
        }
        Ok(votes)
    }
}
