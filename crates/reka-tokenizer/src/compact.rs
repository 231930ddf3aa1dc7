//! A compact binary form of a built [`Tokenizer`], so that a guest component can
//! get a ready tokenizer in a few copies instead of parsing a JSON vocabulary
//! and re-deriving every merge on each request.
//!
//! Layout (little-endian): magic `RKTK`, version u32, pre-tokenizer u8, token
//! count u32, token types, the token-text and token-byte arenas, the byte → id
//! table, and the two hash tables (text → id, pair → merge) slot by slot, so that
//! loading is copying, not hashing.

use crate::index::{Arena, PairIndex, StrIndex};
use crate::pretokenize::PreTokenizer;
use crate::{Error, Tokenizer};

const MAGIC: &[u8; 4] = b"RKTK";
const VERSION: u32 = 2;

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_arena(out: &mut Vec<u8>, a: &Arena) {
    let (data, ends) = a.parts();
    put_u32(out, data.len() as u32);
    out.extend_from_slice(data);
    ends.iter().for_each(|&e| put_u32(out, e));
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| Error::BadCompact("truncated".into()))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, Error> {
        let b = self.take(n.checked_mul(4).ok_or_else(|| Error::BadCompact("size".into()))?)?;
        Ok(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    fn arena(&mut self, n: usize) -> Result<Arena, Error> {
        let len = self.u32()? as usize;
        let data = self.take(len)?.to_vec();
        let ends = self.u32s(n)?;
        Arena::from_parts(data, ends).ok_or_else(|| Error::BadCompact("bad string table".into()))
    }
}

impl Tokenizer {
    /// The compact binary form (see the module docs).
    pub fn to_compact(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        put_u32(&mut out, VERSION);
        out.push(match self.pre {
            PreTokenizer::Gpt2 => 0,
            PreTokenizer::SmolLm => 1,
            PreTokenizer::Llama3 => 2,
        });
        put_u32(&mut out, self.types.len() as u32);
        self.types.iter().for_each(|&t| put_u32(&mut out, t as u32));
        put_arena(&mut out, &self.texts);
        put_arena(&mut out, &self.bytes);
        self.byte_ids.iter().for_each(|&b| put_u32(&mut out, b));
        let slots: Vec<(u32, u16)> = self.text_index.slots().collect();
        put_u32(&mut out, slots.len() as u32);
        slots.iter().for_each(|&(id, _)| put_u32(&mut out, id));
        slots.iter().for_each(|&(_, tag)| out.extend_from_slice(&tag.to_le_bytes()));
        let pairs = self.merges.slots();
        put_u32(&mut out, pairs.len() as u32);
        for &(key, rank, merged) in pairs {
            out.extend_from_slice(&key.to_le_bytes());
            put_u32(&mut out, rank);
            put_u32(&mut out, merged);
        }
        out
    }

    /// Rebuilds a tokenizer from [`Tokenizer::to_compact`]'s output.
    pub fn from_compact(data: &[u8]) -> Result<Self, Error> {
        let mut r = Reader { data, at: 0 };
        if r.take(4)? != MAGIC || r.u32()? != VERSION {
            return Err(Error::BadCompact("not a compact tokenizer of this version".into()));
        }
        let pre = match r.take(1)?[0] {
            0 => PreTokenizer::Gpt2,
            1 => PreTokenizer::SmolLm,
            2 => PreTokenizer::Llama3,
            other => return Err(Error::BadCompact(format!("unknown pre-tokenizer {other}"))),
        };
        let n = r.u32()? as usize;
        if n == 0 {
            return Err(Error::EmptyVocab);
        }
        let types: Vec<i32> = r.u32s(n)?.into_iter().map(|t| t as i32).collect();
        let texts = r.arena(n)?;
        let bytes = r.arena(n)?;
        let mut byte_ids = [0u32; 256];
        byte_ids.copy_from_slice(&r.u32s(256)?);
        let bad = |what: &str| Error::BadCompact(format!("bad {what} table"));
        let count = r.u32()? as usize;
        let ids = r.u32s(count)?;
        let tags = r.take(count.checked_mul(2).ok_or_else(|| bad("text"))?)?;
        let tags = tags.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
        let text_index = StrIndex::from_slots(ids.into_iter().zip(tags), n).ok_or_else(|| bad("text"))?;
        let count = r.u32()? as usize;
        let raw = r.take(count.checked_mul(16).ok_or_else(|| bad("merge"))?)?;
        let entries = raw
            .chunks_exact(16)
            .map(|c| {
                let w = |i: usize| u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                ((u64::from(w(4)) << 32) | u64::from(w(0)), w(8), w(12))
            })
            .collect();
        let merges = PairIndex::from_slots(entries, n).ok_or_else(|| bad("merge"))?;
        if r.at != data.len() {
            return Err(Error::BadCompact("trailing bytes".into()));
        }
        Ok(Tokenizer::assemble(pre, texts, text_index, bytes, types, byte_ids, merges))
    }
}
