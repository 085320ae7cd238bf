/**
 * A minimal ONNX model writer (protobuf wire format) for the small helper graphs the engine builds at run time
 * (KV-cache row selection and concatenation on the device). Only what those graphs need: nodes with int
 * attributes, graph inputs/outputs with symbolic shapes, one opset import.
 */

/** ONNX TensorProto element types used here. */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;
export const ONNX_FLOAT16 = 10;

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  intAttrs?: Record<string, number>;
}

export interface OnnxValue {
  name: string;
  elemType: number;
  /** A number is a fixed dimension, a string a symbolic one. */
  dims: Array<number | string>;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  inputs: OnnxValue[];
  outputs: OnnxValue[];
  opset: number;
}

class Writer {
  private readonly bytes: number[] = [];

  private varint(value: bigint): void {
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }

  private key(field: number, wire: 0 | 2): void {
    this.varint(BigInt((field << 3) | wire));
  }

  int(field: number, value: number | bigint): this {
    this.key(field, 0);
    this.varint(BigInt(value));
    return this;
  }

  bytesField(field: number, data: Uint8Array): this {
    this.key(field, 2);
    this.varint(BigInt(data.length));
    for (const b of data) this.bytes.push(b);
    return this;
  }

  str(field: number, value: string): this {
    return this.bytesField(field, new TextEncoder().encode(value));
  }

  msg(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytesField(field, inner.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

// Field numbers from onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, ValueInfoProto, TypeProto).
function valueInfo(w: Writer, v: OnnxValue): void {
  w.str(1, v.name).msg(2, (type) =>
    type.msg(1, (tensor) =>
      tensor.int(1, v.elemType).msg(2, (shape) => {
        for (const d of v.dims)
          shape.msg(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.str(2, d)));
      }),
    ),
  );
}

function node(w: Writer, n: OnnxNode, index: number): void {
  for (const i of n.inputs) w.str(1, i);
  for (const o of n.outputs) w.str(2, o);
  w.str(3, `${n.op}_${index}`).str(4, n.op);
  const ATTRIBUTE_INT = 2;
  for (const [name, value] of Object.entries(n.intAttrs ?? {}))
    w.msg(5, (a) => a.str(1, name).int(3, value).int(20, ATTRIBUTE_INT));
}

/** Serialized ModelProto (IR version 8) of `graph`. */
export function writeOnnxModel(graph: OnnxGraph): Uint8Array {
  const w = new Writer();
  w.int(1, 8).str(2, 'lvr-engine');
  w.msg(7, (g) => {
    graph.nodes.forEach((n, i) => g.msg(1, (nw) => node(nw, n, i)));
    g.str(2, graph.name);
    for (const v of graph.inputs) g.msg(11, (vw) => valueInfo(vw, v));
    for (const v of graph.outputs) g.msg(12, (vw) => valueInfo(vw, v));
  });
  w.msg(8, (o) => o.str(1, '').int(2, graph.opset));
  return w.finish();
}
