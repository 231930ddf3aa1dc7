//! The crate against the independent numpy/scipy reference in
//! `tests/fixtures/arena` (see its README): counts and win rates exactly,
//! ratings, intervals, medians and Elo within [`TOL`] rating points.

use std::collections::{BTreeMap, BTreeSet};

use reka_arena::{bootstrap, index, leaderboard, Leaderboard, Vote};
use serde_json::Value;

const VOTES: &str = include_str!("../../../tests/fixtures/arena/votes.json");
const REFERENCE: &str = include_str!("../../../tests/fixtures/arena/reference.json");

/// Rating points. Both sides converge to ~1e-8 points of the optimum (the
/// reference asserts it); the largest difference seen is printed.
const TOL: f64 = 1e-6;

fn cases() -> (BTreeMap<String, Vec<Vote>>, Value) {
    let votes = serde_json::from_str(VOTES).expect("votes.json");
    let reference: Value = serde_json::from_str(REFERENCE).expect("reference.json");
    (votes, reference)
}

fn check(case: &str, votes: &[Vote], want: &Value) -> f64 {
    let reference: Leaderboard = serde_json::from_value(want.clone()).expect("reference shape");
    let got = leaderboard(votes, reference.method.resamples, reference.method.seed);
    assert_eq!(got.votes, reference.votes, "{case}");
    assert_eq!(got.method.elo_k, reference.method.elo_k, "{case}");
    assert_eq!(got.win_rate, reference.win_rate, "{case}: win rates");
    let names = |b: &Leaderboard| b.models.iter().map(|m| m.model.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&reference), "{case}: order");

    // How many resamples each model appeared in.
    let (models, battles) = index(votes);
    let samples = bootstrap::samples(
        models.len(),
        &battles,
        reference.method.resamples,
        reference.method.seed,
    );

    let mut worst = 0.0f64;
    for (g, (w, raw)) in got.models.iter().zip(
        reference
            .models
            .iter()
            .zip(want["models"].as_array().expect("models")),
    ) {
        let counts = |m: &reka_arena::ModelRow| (m.votes, m.wins, m.losses, m.ties, m.both_bad);
        assert_eq!(counts(g), counts(w), "{case} {}: counts", g.model);
        let i = models.iter().position(|m| *m == g.model).expect("model");
        assert_eq!(
            Some(samples[i].len() as u64),
            raw["bootstrap_values"].as_u64(),
            "{case} {}: resamples containing it",
            g.model
        );
        for (what, a, b) in [
            ("rating", g.bt.rating, w.bt.rating),
            ("lo", g.bt.lo, w.bt.lo),
            ("hi", g.bt.hi, w.bt.hi),
            ("median", g.bt.median, w.bt.median),
            ("elo", g.elo, w.elo),
        ] {
            let d = (a - b).abs();
            assert!(
                d <= TOL,
                "{case} {} {what}: {a} vs reference {b} (off {d:e})",
                g.model
            );
            worst = worst.max(d);
        }
    }
    println!("{case}: largest difference {worst:e} rating points");
    worst
}

#[test]
fn matches_the_reference() {
    let (votes, reference) = cases();
    let want = reference["cases"].as_object().expect("cases");
    assert_eq!(
        votes.keys().collect::<BTreeSet<_>>(),
        want.keys().collect::<BTreeSet<_>>()
    );
    for (case, votes) in &votes {
        check(case, votes, &want[case.as_str()]);
    }
}

#[test]
fn the_pair_case_is_two_models_and_thirty_votes() {
    let (votes, _) = cases();
    let pair = &votes["pair"];
    assert_eq!(pair.len(), 30);
    assert_eq!(index(pair).0.len(), 2);
}

#[test]
fn serialises_as_the_reference_does() {
    let (votes, reference) = cases();
    let got = serde_json::to_value(leaderboard(&votes["pair"], 1000, 42)).expect("json");
    let want = &reference["cases"]["pair"];
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(keys(&got), keys(want));
    assert_eq!(keys(&got["method"]), keys(&want["method"]));
    assert_eq!(
        keys(&got["models"][0]["bt"]),
        keys(&want["models"][0]["bt"])
    );
    let mut want_row = keys(&want["models"][0]).expect("row");
    want_row.retain(|k| k != "bootstrap_values");
    assert_eq!(keys(&got["models"][0]), Some(want_row));
    assert_eq!(got["method"]["bt"], want["method"]["bt"]);
}
