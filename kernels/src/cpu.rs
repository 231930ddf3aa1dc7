//! Which vector instructions the CPU kernels use, chosen once at run time.
//!
//! Machines of the same kind differ in their extensions (AVX2 only; AVX-512
//! F/BW; AVX-512 VNNI; AVX-VNNI on 256-bit registers), so every quantized and
//! half-float kernel has one variant per [`Isa`] beside its scalar reference,
//! and [`selected`] names the one that runs: the best the CPU has, capped by
//! `REKA_CPU_ISA` (`scalar`, `avx2`, `avx-vnni`, `avx512`, `avx512-vnni`) so
//! that, say, the AVX2-only case can be measured on an AVX-512 machine.

use std::sync::OnceLock;

/// A level of vector support, from none to the widest. Each level's kernels
/// need every feature listed in [`Isa::features`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust: the reference every variant is tested against.
    Scalar,
    /// AVX2 + FMA + F16C (x86-64-v3).
    Avx2,
    /// AVX2 plus the 256-bit, VEX-encoded `vpdpbusd` of AVX-VNNI (Alder Lake,
    /// Zen 5 …; an AVX-512 VNNI CPU without AVX-VNNI runs [`Isa::Avx512Vnni`]).
    AvxVnni,
    /// AVX-512 F, BW, VL (512-bit registers, 16 f32 lanes).
    Avx512,
    /// AVX-512 with VNNI (`vpdpbusd` on 512 bits).
    Avx512Vnni,
}

impl Isa {
    /// Every level, narrowest first.
    pub const ALL: [Isa; 5] = [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512, Isa::Avx512Vnni];

    /// The name `REKA_CPU_ISA` takes and the bench prints.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx-vnni",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512-vnni",
        }
    }

    /// Parses a [`Isa::name`].
    pub fn parse(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name().eq_ignore_ascii_case(s.trim()))
    }

    /// The CPU features this level's kernels are compiled for.
    pub fn features(self) -> &'static [&'static str] {
        match self {
            Isa::Scalar => &[],
            Isa::Avx2 => &["avx2", "fma", "f16c"],
            Isa::AvxVnni => &["avx2", "fma", "f16c", "avxvnni"],
            Isa::Avx512 => &["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"],
            Isa::Avx512Vnni => &["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni"],
        }
    }

    /// Whether this CPU can run the level's kernels.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl");
            match self {
                Isa::Scalar => true,
                Isa::Avx2 => avx2,
                Isa::AvxVnni => avx2 && has!("avxvnni"),
                Isa::Avx512 => avx512,
                Isa::Avx512Vnni => avx512 && has!("avx512vnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Isa::Scalar
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The widest level this CPU supports.
pub fn detected() -> Isa {
    Isa::ALL.into_iter().rev().find(|i| i.supported()).unwrap_or(Isa::Scalar)
}

/// The level the kernels run at: the widest this CPU supports at or under
/// `REKA_CPU_ISA` (read once; an unknown name is reported on stderr and
/// ignored). Always a level [`Isa::supported`] says yes to.
pub fn selected() -> Isa {
    static SEL: OnceLock<Isa> = OnceLock::new();
    *SEL.get_or_init(|| {
        let best = detected();
        let cap = match std::env::var("REKA_CPU_ISA") {
            Ok(v) if !v.trim().is_empty() => Isa::parse(&v).unwrap_or_else(|| {
                eprintln!("REKA_CPU_ISA={v:?} is not one of {}; using {best}", Isa::ALL.map(Isa::name).join(", "));
                best
            }),
            _ => best,
        };
        // The widest level at or under the cap that this CPU runs (AVX-VNNI is
        // not implied by AVX-512, so a cap may fall between levels it has).
        Isa::ALL.into_iter().rev().find(|i| *i <= cap && i.supported()).unwrap_or(Isa::Scalar)
    })
}

/// The CPU's vector extensions that matter to the kernels, as a list
/// (`avx2 fma f16c avx512f …`), for the bench and the start-up log.
pub fn extensions() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let all: [(&str, bool); 11] = [
            ("sse4.2", has!("sse4.2")),
            ("avx", has!("avx")),
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("f16c", has!("f16c")),
            ("avxvnni", has!("avxvnni")),
            ("avx512f", has!("avx512f")),
            ("avx512bw", has!("avx512bw")),
            ("avx512vl", has!("avx512vl")),
            ("avx512vnni", has!("avx512vnni")),
            ("avx512bf16", has!("avx512bf16")),
        ];
        all.into_iter().filter(|(_, on)| *on).map(|(n, _)| n).collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// The levels this CPU can run, narrowest first (what the kernel tests cover).
pub fn runnable() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.supported()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_levels_are_ordered() {
        for i in Isa::ALL {
            assert_eq!(Isa::parse(i.name()), Some(i));
        }
        assert_eq!(Isa::parse(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::parse("sse9"), None);
        assert!(Isa::Scalar < Isa::Avx2 && Isa::Avx512 < Isa::Avx512Vnni);
        assert!(selected() <= detected() && selected().supported());
        assert!(Isa::Scalar.supported());
        assert_eq!(runnable().last().copied(), Some(detected()));
    }
}
