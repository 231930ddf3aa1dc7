//! The protobuf wire format, just enough to walk ONNX messages: varints,
//! field keys, and the four wire types that proto3 uses (varint, 64-bit,
//! length-delimited, 32-bit). Messages are read in place from a byte slice;
//! nothing is copied until a caller asks for a value.

use std::fmt;

/// A malformed or truncated protobuf message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protobuf: {}", self.0)
    }
}

impl std::error::Error for WireError {}

fn err<T>(msg: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(msg.into()))
}

/// One field's payload, by wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0: int32/int64/uint*/bool/enum.
    Varint(u64),
    /// Wire type 1: fixed64/double.
    Fixed64(u64),
    /// Wire type 2: bytes, strings, sub-messages and packed repeated scalars.
    Bytes(&'a [u8]),
    /// Wire type 5: fixed32/float.
    Fixed32(u32),
}

/// A field: its number and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
}

/// Reads a base-128 varint at `buf[*pos..]`, advancing `pos`.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = buf.get(*pos) else {
            return err("truncated varint");
        };
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    err("varint longer than 10 bytes")
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], WireError> {
    let end = pos.checked_add(n).filter(|&e| e <= buf.len());
    let Some(end) = end else {
        return err(format!("field of {n} bytes runs past the end of its message"));
    };
    let out = &buf[*pos..end];
    *pos = end;
    Ok(out)
}

/// Iterates over the fields of one message (no nesting: a sub-message comes
/// back as `Value::Bytes`, to be read with another `Fields`).
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn read_field(&mut self) -> Result<Field<'a>, WireError> {
        let key = read_varint(self.buf, &mut self.pos)?;
        let number = u32::try_from(key >> 3).or_else(|_| err("field number too large"))?;
        if number == 0 {
            return err("field number 0");
        }
        let value = match key & 7 {
            0 => Value::Varint(read_varint(self.buf, &mut self.pos)?),
            1 => {
                let b = take(self.buf, &mut self.pos, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let len = read_varint(self.buf, &mut self.pos)?;
                let len = usize::try_from(len).or_else(|_| err("length too large"))?;
                Value::Bytes(take(self.buf, &mut self.pos, len)?)
            }
            5 => {
                let b = take(self.buf, &mut self.pos, 4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                Value::Fixed32(u32::from_le_bytes(a))
            }
            t => return err(format!("unsupported wire type {t} (field {number})")),
        };
        Ok(Field { number, value })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = self.read_field();
        if r.is_err() {
            // Stop after the first error: the rest of the buffer is unframed.
            self.pos = self.buf.len();
        }
        Some(r)
    }
}

impl<'a> Field<'a> {
    /// The payload of a length-delimited field (string, bytes, message).
    pub fn bytes(&self) -> Result<&'a [u8], WireError> {
        match self.value {
            Value::Bytes(b) => Ok(b),
            v => err(format!("field {}: expected bytes, got {v:?}", self.number)),
        }
    }

    /// A UTF-8 string field.
    pub fn string(&self) -> Result<String, WireError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).or_else(|_| err(format!("field {}: not UTF-8", self.number)))
    }

    /// A varint field as a two's-complement int64 (proto `int64`/`int32`).
    pub fn int(&self) -> Result<i64, WireError> {
        match self.value {
            Value::Varint(v) => Ok(v as i64),
            v => err(format!("field {}: expected varint, got {v:?}", self.number)),
        }
    }

    /// A `float` field (wire type 5).
    pub fn float(&self) -> Result<f32, WireError> {
        match self.value {
            Value::Fixed32(v) => Ok(f32::from_bits(v)),
            v => err(format!("field {}: expected fixed32, got {v:?}", self.number)),
        }
    }

    /// Appends a repeated int64/int32 field, packed or not.
    pub fn push_ints(&self, out: &mut Vec<i64>) -> Result<(), WireError> {
        match self.value {
            Value::Varint(v) => out.push(v as i64),
            Value::Bytes(b) => {
                let mut pos = 0;
                while pos < b.len() {
                    out.push(read_varint(b, &mut pos)? as i64);
                }
            }
            v => return err(format!("field {}: expected ints, got {v:?}", self.number)),
        }
        Ok(())
    }

    /// Appends a repeated float field, packed or not.
    pub fn push_floats(&self, out: &mut Vec<f32>) -> Result<(), WireError> {
        match self.value {
            Value::Fixed32(v) => out.push(f32::from_bits(v)),
            Value::Bytes(b) => {
                if !b.len().is_multiple_of(4) {
                    return err(format!("field {}: packed floats of {} bytes", self.number, b.len()));
                }
                out.extend(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            }
            v => return err(format!("field {}: expected floats, got {v:?}", self.number)),
        }
        Ok(())
    }

    /// Appends a repeated double field, packed or not.
    pub fn push_doubles(&self, out: &mut Vec<f64>) -> Result<(), WireError> {
        match self.value {
            Value::Fixed64(v) => out.push(f64::from_bits(v)),
            Value::Bytes(b) => {
                if !b.len().is_multiple_of(8) {
                    return err(format!("field {}: packed doubles of {} bytes", self.number, b.len()));
                }
                out.extend(b.chunks_exact(8).map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f64::from_le_bytes(a)
                }));
            }
            v => return err(format!("field {}: expected doubles, got {v:?}", self.number)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            varint(v, &mut buf);
            let mut pos = 0;
            assert_eq!(read_varint(&buf, &mut pos).unwrap(), v);
            assert_eq!(pos, buf.len());
        }
        // Known encodings: 300 = ac 02; -1 as int64 = ten bytes.
        let mut pos = 0;
        assert_eq!(read_varint(&[0xac, 0x02], &mut pos).unwrap(), 300);
        let neg = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        pos = 0;
        assert_eq!(read_varint(&neg, &mut pos).unwrap() as i64, -1);
        pos = 0;
        assert!(read_varint(&[0x80, 0x80], &mut pos).is_err());
        pos = 0;
        assert!(read_varint(&[0xff; 11], &mut pos).is_err());
    }

    #[test]
    fn fields_of_each_wire_type() {
        let mut buf = Vec::new();
        buf.extend([0x08, 0x96, 0x01]); // field 1 varint 150
        buf.extend([0x12, 0x03]); // field 2, 3 bytes
        buf.extend(b"abc");
        buf.push(0x1d); // field 3 fixed32
        buf.extend(1.5f32.to_le_bytes());
        buf.push(0x21); // field 4 fixed64
        buf.extend(2.25f64.to_le_bytes());
        let fields: Vec<_> = Fields::new(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(fields.len(), 4);
        assert_eq!((fields[0].number, fields[0].int().unwrap()), (1, 150));
        assert_eq!(fields[1].string().unwrap(), "abc");
        assert_eq!(fields[2].float().unwrap(), 1.5);
        let mut d = Vec::new();
        fields[3].push_doubles(&mut d).unwrap();
        assert_eq!(d, [2.25]);
        assert!(fields[0].bytes().is_err());
    }

    #[test]
    fn packed_and_unpacked_repeated() {
        let mut ints = Vec::new();
        let packed = Field { number: 1, value: Value::Bytes(&[0x03, 0x8e, 0x02, 0x01]) };
        packed.push_ints(&mut ints).unwrap();
        Field { number: 1, value: Value::Varint(7) }.push_ints(&mut ints).unwrap();
        assert_eq!(ints, [3, 270, 1, 7]);
        let mut fl = Vec::new();
        let bytes: Vec<u8> = [1.0f32, -2.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        Field { number: 4, value: Value::Bytes(&bytes) }.push_floats(&mut fl).unwrap();
        assert_eq!(fl, [1.0, -2.0]);
        assert!(Field { number: 4, value: Value::Bytes(&[0; 3]) }.push_floats(&mut fl).is_err());
    }

    #[test]
    fn truncated_and_bad_messages_fail() {
        // Length says 5, only 2 bytes follow.
        assert!(Fields::new(&[0x12, 0x05, b'a', b'b']).any(|f| f.is_err()));
        // Wire type 3 (start group) is not supported.
        assert!(Fields::new(&[0x0b]).any(|f| f.is_err()));
        // Field number 0.
        assert!(Fields::new(&[0x00, 0x01]).any(|f| f.is_err()));
        // After an error the iterator stops.
        assert_eq!(Fields::new(&[0x0b, 0x08, 0x01]).count(), 1);
    }
}
