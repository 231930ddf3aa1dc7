//! The engine thread's memory policy, on the tiny Reka checkpoint
//! (tests/fixtures/reka_tiny: 2 layers × 2 × 8 floats = 128 bytes of KV per
//! position): sessions are admitted while their prompts fit, and when memory
//! runs out under running sessions the newest one gives way, its memory comes
//! back at once, and the older ones go on.

use reka_host::model;
use reka_host::nn::scheduler::{Limits, Scheduler, StepError};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn when_memory_runs_out_the_newest_session_gives_way() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/reka_tiny");
    let m = Arc::new(model::load("reka-tiny", &dir).expect("loads"));
    assert_eq!(m.decoder.new_cache().bytes_per_position(), 128);
    let limits = Limits {
        kv_budget_bytes: 128 * 40, // 40 positions
        max_waiting: 4,
        admission_timeout: Duration::from_millis(200),
        step_tokens: 64,
        ..Limits::default()
    };
    let engine = Scheduler::start(m, limits).expect("engine thread");
    let prompt: Vec<u32> = (100..110).collect();
    let (a, b, c) = (engine.open(), engine.open(), engine.open());
    for s in [a, b, c] {
        assert!(engine.step(s, prompt.clone()).is_ok(), "three prompts of 10 fit in 40");
    }
    // A prompt that can never fit is refused at once, as too large (not overloaded).
    let huge = engine.open();
    assert!(matches!(engine.step(huge, vec![5; 41]), Err(StepError::TooLarge(_))));
    // 30 positions used: ten more steps fit, then the newest (c) must give way.
    let mut shed = None;
    for round in 0..6 {
        for s in [a, b, c] {
            match engine.step(s, vec![7]) {
                Ok(l) => assert_eq!(l.len(), 100352),
                Err(StepError::Overloaded(_)) => {
                    shed.get_or_insert((s, round));
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    }
    let (victim, _) = shed.expect("memory ran out");
    assert_eq!(victim, c, "the newest session gives way first");
    // Its memory came back: the older sessions keep going, and c stays refused.
    assert!(engine.step(a, vec![7]).is_ok());
    assert!(engine.step(b, vec![7]).is_ok());
    assert!(matches!(engine.step(c, vec![7]), Err(StepError::Overloaded(_))));
    // Ending a session frees its memory for a new one.
    engine.free(b);
    let d = engine.open();
    assert!(engine.step(d, prompt).is_ok(), "b's memory is free again");
}

/// Two models loaded from one file share their weights (a multimodal model and
/// the text model it extends), under their own names; other dtypes do not.
#[test]
fn models_of_one_file_share_one_decoder() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/reka_tiny");
    let a = model::load("tiny-a", &dir).expect("loads");
    let b = model::load("tiny-b", &dir).expect("loads");
    assert!(Arc::ptr_eq(&a.decoder, &b.decoder));
    assert_eq!((a.info.name.as_str(), b.info.name.as_str()), ("tiny-a", "tiny-b"));
    let c = model::load_as("tiny-c", &dir, model::WeightDtype::F32).expect("loads");
    assert!(!Arc::ptr_eq(&a.decoder, &c.decoder));
}
