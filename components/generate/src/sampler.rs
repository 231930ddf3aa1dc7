//! Picks the next token from logits: greedy at temperature 0, otherwise
//! temperature, top-k and top-p (nucleus) sampling with a seeded generator.

/// A small, seedable generator (SplitMix64): the same seed gives the same tokens.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Sampling settings plus the generator.
pub struct Sampler {
    temperature: f32,
    top_p: f32,
    top_k: usize,
    rng: Rng,
}

impl Sampler {
    pub fn new(temperature: f32, top_p: f32, top_k: u32, seed: u64) -> Self {
        Sampler {
            temperature,
            top_p,
            top_k: top_k as usize,
            rng: Rng::new(seed),
        }
    }

    /// How many of the best logits this sampler needs, when it needs fewer than
    /// all of them: one when greedy, `top_k` when that cuts (up to 256).
    pub fn wants(&self) -> Option<u32> {
        match self.top_k {
            _ if self.temperature <= 0.0 => Some(1),
            k @ 1..=256 => Some(k as u32),
            _ => None,
        }
    }

    /// The next token from all logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.temperature <= 0.0 || self.top_k == 1 {
            return argmax(logits);
        }
        self.sample_candidates(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect())
    }

    /// The next token from `(id, logit)` candidates that include the best
    /// [`Sampler::wants`] ones: the same token that [`Sampler::sample`] picks
    /// from all logits.
    pub fn sample_candidates(&mut self, cand: Vec<(u32, f32)>) -> u32 {
        let best = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if self.temperature <= 0.0 || self.top_k == 1 {
            return cand.iter().copied().min_by(best).map_or(0, |c| c.0);
        }
        let fallback = cand.iter().copied().min_by(best).map_or(0, |c| c.0);
        let mut cand: Vec<(u32, f32)> = cand
            .into_iter()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, l)| (i, l / self.temperature))
            .collect();
        if cand.is_empty() {
            return fallback;
        }
        cand.sort_unstable_by(best);
        if self.top_k > 0 && self.top_k < cand.len() {
            cand.truncate(self.top_k);
        }
        let max = cand[0].1;
        let mut probs: Vec<f64> = cand.iter().map(|c| ((c.1 - max) as f64).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.top_p > 0.0 && self.top_p < 1.0 {
            let mut acc = 0.0;
            let keep = probs
                .iter()
                .position(|p| {
                    acc += p;
                    acc >= self.top_p as f64
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
            let total: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= total);
        }
        let mut r = self.rng.next_f64();
        for (i, p) in probs.iter().enumerate() {
            if r < *p {
                return cand[i].0;
            }
            r -= p;
        }
        cand[probs.len() - 1].0
    }
}

/// Index of the largest logit (the lowest index on ties, as llama.cpp picks).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest() {
        let mut s = Sampler::new(0.0, 1.0, 0, 1);
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 3.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_seeds_repeat() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut k1 = Sampler::new(1.0, 1.0, 1, 7);
        assert_eq!(k1.sample(&logits), argmax(&logits));
        let run = |seed| {
            let mut s = Sampler::new(0.8, 0.9, 20, seed);
            (0..30).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    /// The host's top-k hand-off gives the same tokens as all logits.
    #[test]
    fn candidates_from_the_host_sample_like_all_logits() {
        let logits: Vec<f32> = (0..500).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
        for (t, k) in [(0.0, 0), (0.7, 40), (1.3, 5), (1.0, 1)] {
            let (mut a, mut b) = (Sampler::new(t, 0.9, k, 5), Sampler::new(t, 0.9, k, 5));
            let want = b.wants().expect("a cut");
            let top = top_k(&logits, want as usize);
            for _ in 0..50 {
                assert_eq!(a.sample(&logits), b.sample_candidates(top.clone()), "t={t} k={k}");
            }
        }
        assert_eq!(Sampler::new(1.0, 0.9, 0, 1).wants(), None);
    }

    /// As reka-protocol's `top_k`, without the dependency in this test.
    fn top_k(l: &[f32], k: usize) -> Vec<(u32, f32)> {
        let mut v: Vec<(u32, f32)> = l.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(k);
        v
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // One token holds almost all the mass: a small top_p must always pick it.
        let mut logits = vec![0.0f32; 10];
        logits[3] = 20.0;
        let mut s = Sampler::new(1.0, 0.5, 0, 3);
        assert!((0..100).all(|_| s.sample(&logits) == 3));
    }

    #[test]
    fn sampling_follows_the_distribution() {
        // Two equal logits: each should come up about half the time.
        let logits = [5.0f32, 5.0, -50.0];
        let mut s = Sampler::new(1.0, 1.0, 0, 11);
        let ones = (0..2000).filter(|_| s.sample(&logits) == 1).count();
        assert!((850..1150).contains(&ones), "{ones}");
    }
}
