//! Tests of the ONNX reader on hand-built ModelProto bytes.

use super::*;

/// A tiny protobuf writer for building test messages.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }
    fn int(mut self, field: u32, v: i64) -> Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u32, m: Msg) -> Self {
        self.bytes(field, &m.0)
    }
    fn float(mut self, field: u32, v: f32) -> Self {
        self.key(field, 5);
        self.0.extend(v.to_le_bytes());
        self
    }
}

fn raw_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

fn model() -> Vec<u8> {
    // initializer "w": dims [2, 3] (unpacked), raw f32.
    let w = Msg::default().int(1, 2).int(1, 3).int(2, 1).str(8, "w").bytes(9, &raw_f32(&[1., 2., 3., 4., 5., 6.]));
    // initializer "b": dims packed [2], float_data packed.
    let b = Msg::default().bytes(1, &[2]).int(2, 1).str(8, "b").bytes(4, &raw_f32(&[0.5, -0.5]));
    // initializer "s": int64 via int64_data (field 7), a negative value.
    let s = Msg::default().int(1, 2).int(2, 7).str(8, "s").int(7, -1).int(7, 64);
    // initializer "h": f16 raw.
    let h16: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|&f| half::f16::from_f32(f).to_le_bytes()).collect();
    let h = Msg::default().int(1, 2).int(2, 10).str(8, "h").bytes(9, &h16);
    // Constant node with a scalar tensor value and one with value_ints.
    let eps = Msg::default().int(2, 1).str(8, "").bytes(9, &raw_f32(&[1e-6]));
    let c1 = Msg::default()
        .str(2, "eps")
        .str(3, "/c")
        .str(4, "Constant")
        .msg(5, Msg::default().str(1, "value").msg(5, eps).int(20, 4));
    let c2 = Msg::default()
        .str(2, "shape")
        .str(4, "Constant")
        .msg(5, Msg::default().str(1, "value_ints").bytes(8, &[0, 0, 6, 64]).int(20, 7));
    let mm = Msg::default()
        .str(1, "x")
        .str(1, "w")
        .str(2, "y")
        .str(3, "/mm")
        .str(4, "MatMul")
        .msg(5, Msg::default().str(1, "alpha").float(2, 0.25).int(20, 1))
        .msg(5, Msg::default().str(1, "axes").int(8, -1).int(20, 7));
    let dims =
        Msg::default().msg(1, Msg::default().str(2, "batch")).msg(1, Msg::default().int(1, 2)).msg(1, Msg::default());
    let input = Msg::default().str(1, "x").msg(2, Msg::default().msg(1, Msg::default().int(1, 1).msg(2, dims)));
    let graph = Msg::default()
        .msg(1, c1)
        .msg(1, c2)
        .msg(1, mm)
        .str(2, "g")
        .msg(5, w)
        .msg(5, b)
        .msg(5, s)
        .msg(5, h)
        .msg(11, input)
        .msg(12, Msg::default().str(1, "y"));
    Msg::default().int(1, 7).str(2, "test").msg(7, graph).0
}

#[test]
fn reads_a_hand_built_model() {
    let g = Graph::from_model_bytes(&model()).unwrap();
    assert_eq!(g.nodes.len(), 3);
    let w = &g.initializers["w"];
    assert_eq!(w.dims, [2, 3]);
    assert_eq!(w.f32s().unwrap(), [1., 2., 3., 4., 5., 6.]);
    assert_eq!(g.initializers["b"].f32s().unwrap(), [0.5, -0.5]);
    assert_eq!(g.initializers["s"].i64s().unwrap(), [-1, 64]);
    assert_eq!(g.initializers["h"].f32s().unwrap(), [1.5, -2.0]);
    assert!(g.initializers["s"].f32s().is_err());

    let mm = g.producer("y").unwrap();
    assert_eq!((mm.op_type.as_str(), mm.name.as_str()), ("MatMul", "/mm"));
    assert_eq!(mm.inputs, ["x", "w"]);
    assert_eq!(mm.attr("alpha"), Some(&AttrValue::Float(0.25)));
    assert_eq!(mm.attr("axes"), Some(&AttrValue::Ints(vec![-1])));
    assert_eq!(g.consumers("w").count(), 1);

    let eps = g.constant("eps").unwrap();
    assert!(eps.dims.is_empty());
    assert!((eps.scalar().unwrap() - 1e-6).abs() < 1e-12);
    assert_eq!(g.constant("shape").unwrap().i64s().unwrap(), [0, 0, 6, 64]);
    assert_eq!(g.constant("w").unwrap().dims, [2, 3]);
    assert!(g.constant("x").is_none());

    assert_eq!(g.inputs.len(), 1);
    assert_eq!(g.inputs[0].elem_type, 1);
    assert_eq!(g.inputs[0].shape, Some(vec![Dim::Named("batch".into()), Dim::Fixed(2), Dim::Unknown]));
    assert_eq!(g.outputs[0].name, "y");
    assert_eq!(g.outputs[0].shape, None);
}

#[test]
fn rejects_bad_tensors() {
    // dims say 3 values, raw_data holds 2.
    let t = Msg::default().int(1, 3).int(2, 1).str(8, "t").bytes(9, &raw_f32(&[1., 2.]));
    let e = parse_tensor(&t.0).unwrap_err();
    assert!(format!("{e:#}").contains("need 3 values"), "{e:#}");
    // external data.
    let t = Msg::default().int(1, 1).int(2, 1).str(8, "t").int(14, 1);
    assert!(format!("{:#}", parse_tensor(&t.0).unwrap_err()).contains("external"));
    // raw_data not a multiple of the element size.
    let t = Msg::default().int(1, 1).int(2, 1).str(8, "t").bytes(9, &[0, 0, 0]);
    assert!(parse_tensor(&t.0).is_err());
    // A model without a graph, and a truncated model.
    assert!(Graph::from_model_bytes(&Msg::default().int(1, 7).0).is_err());
    let m = model();
    assert!(Graph::from_model_bytes(&m[..m.len() - 3]).is_err());
}
