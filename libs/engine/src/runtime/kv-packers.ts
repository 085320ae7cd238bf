/**
 * The two ways the engine repacks KV rows (see kv-store.ts): on the host with typed arrays (CPU tensors), or on
 * the device with small ONNX graphs run in the decoder's execution provider, whose outputs stay in GPU buffers
 * (onnxruntime-node cannot download a GPU tensor to the host, so device caches are only ever reshaped by graphs).
 */
import * as ort from 'onnxruntime-node';
import { packRows } from './kv-batch';
import type { KvArray } from './kv-batch';
import type { KvFeeds, KvPacker, KvRowRef } from './kv-store';
import { ONNX_FLOAT, ONNX_FLOAT16, ONNX_INT64, writeOnnxModel } from './onnx-writer';
import type { OnnxNode, OnnxValue } from './onnx-writer';
import type { ModelDtype } from './protocol';

export interface KvShape {
  names: string[];
  numKvHeads: number;
  headDim: number;
  dtype: ModelDtype;
}

/** Host arrays: the rows are copied with `packRows` (the CPU execution provider's path). */
export class HostKvPacker implements KvPacker<ort.Tensor> {
  constructor(private readonly shape: KvShape) {}

  async pack(rows: ReadonlyArray<KvRowRef<ort.Tensor>>, width: number): Promise<KvFeeds<ort.Tensor>> {
    const { names, numKvHeads, headDim, dtype } = this.shape;
    const out: KvFeeds<ort.Tensor> = {};
    for (const name of names) {
      const data = packRows(
        rows.map(({ cache, row }) => ({
          data: cache.past[name].data as KvArray,
          width: cache.width,
          row,
          len: cache.lens[row],
        })),
        width,
        numKvHeads,
        headDim,
      );
      out[name] = new ort.Tensor(dtype, data, [rows.length, numKvHeads, width, headDim]);
    }
    return out;
  }
}

const INT64_MAX = 2n ** 63n - 1n;

/**
 * `kv_select`: for every KV tensor x_i `[b, KVH, w, D]`, y_i = the rows `rows` (Gather on axis 0), left-padded by
 * `pads` and cut to their last `-starts[0]` slots (Pad + Slice on axis 2): rows right-aligned into a new width.
 */
export function kvSelectModel(count: number, dtype: ModelDtype): Uint8Array {
  const elemType = dtype === 'float16' ? ONNX_FLOAT16 : ONNX_FLOAT;
  const nodes: OnnxNode[] = [];
  const inputs: OnnxValue[] = [];
  const outputs: OnnxValue[] = [];
  for (let i = 0; i < count; i++) {
    inputs.push({ name: `x${i}`, elemType, dims: [`b${i}`, 'h', `w${i}`, 'd'] });
    outputs.push({ name: `y${i}`, elemType, dims: ['n', 'h', 'width', 'd'] });
    nodes.push(
      { op: 'Gather', inputs: [`x${i}`, 'rows'], outputs: [`g${i}`], intAttrs: { axis: 0 } },
      { op: 'Pad', inputs: [`g${i}`, 'pads'], outputs: [`p${i}`] },
      { op: 'Slice', inputs: [`p${i}`, 'starts', 'ends', 'axes'], outputs: [`y${i}`] },
    );
  }
  inputs.push(
    { name: 'rows', elemType: ONNX_INT64, dims: ['n'] },
    { name: 'pads', elemType: ONNX_INT64, dims: [8] },
    { name: 'starts', elemType: ONNX_INT64, dims: [1] },
    { name: 'ends', elemType: ONNX_INT64, dims: [1] },
    { name: 'axes', elemType: ONNX_INT64, dims: [1] },
  );
  return writeOnnxModel({ name: 'kv_select', nodes, inputs, outputs, opset: 17 });
}

/** `kv_concat`: y_i = Concat(a_i, b_i) on the batch axis, for every KV tensor. */
export function kvConcatModel(count: number, dtype: ModelDtype): Uint8Array {
  const elemType = dtype === 'float16' ? ONNX_FLOAT16 : ONNX_FLOAT;
  const nodes: OnnxNode[] = [];
  const inputs: OnnxValue[] = [];
  const outputs: OnnxValue[] = [];
  for (let i = 0; i < count; i++) {
    inputs.push(
      { name: `a${i}`, elemType, dims: ['ba', 'h', 'w', 'd'] },
      { name: `b${i}`, elemType, dims: ['bb', 'h', 'w', 'd'] },
    );
    outputs.push({ name: `y${i}`, elemType, dims: ['n', 'h', 'w', 'd'] });
    nodes.push({ op: 'Concat', inputs: [`a${i}`, `b${i}`], outputs: [`y${i}`], intAttrs: { axis: 0 } });
  }
  return writeOnnxModel({ name: 'kv_concat', nodes, inputs, outputs, opset: 17 });
}

/**
 * Device buffers: rows are gathered per source cache with `kv_select`, the pieces joined with `kv_concat`, and,
 * when the sources interleave, put in the requested order with one more `kv_select`. Intermediate tensors are
 * disposed as soon as they are consumed.
 */
export class GraphKvPacker implements KvPacker<ort.Tensor> {
  private constructor(
    private readonly shape: KvShape,
    private readonly select: ort.InferenceSession,
    private readonly concat: ort.InferenceSession,
  ) {}

  static async create(shape: KvShape, options: ort.InferenceSession.SessionOptions): Promise<GraphKvPacker> {
    const n = shape.names.length;
    const [select, concat] = await Promise.all([
      ort.InferenceSession.create(kvSelectModel(n, shape.dtype), options),
      ort.InferenceSession.create(kvConcatModel(n, shape.dtype), options),
    ]);
    return new GraphKvPacker(shape, select, concat);
  }

  private async runSelect(past: KvFeeds<ort.Tensor>, srcWidth: number, rows: number[], width: number) {
    const feeds: Record<string, ort.Tensor> = {
      rows: new ort.Tensor('int64', BigInt64Array.from(rows, BigInt), [rows.length]),
      pads: new ort.Tensor(
        'int64',
        BigInt64Array.from([0, 0, Math.max(width - srcWidth, 0), 0, 0, 0, 0, 0], BigInt),
        [8],
      ),
      starts: new ort.Tensor('int64', BigInt64Array.of(BigInt(-width)), [1]),
      ends: new ort.Tensor('int64', BigInt64Array.of(INT64_MAX), [1]),
      axes: new ort.Tensor('int64', BigInt64Array.of(2n), [1]),
    };
    this.shape.names.forEach((name, i) => (feeds[`x${i}`] = past[name]));
    return this.named(await this.select.run(feeds));
  }

  private named(out: ort.InferenceSession.OnnxValueMapType): KvFeeds<ort.Tensor> {
    const feeds: KvFeeds<ort.Tensor> = {};
    this.shape.names.forEach((name, i) => (feeds[name] = out[`y${i}`]));
    return feeds;
  }

  async pack(rows: ReadonlyArray<KvRowRef<ort.Tensor>>, width: number): Promise<KvFeeds<ort.Tensor>> {
    // Source caches in first-use order, each with the rows it gives.
    const groups: Array<{ cache: KvRowRef<ort.Tensor>['cache']; rows: number[]; at: number[] }> = [];
    rows.forEach(({ cache, row }, at) => {
      let g = groups.find((x) => x.cache === cache);
      if (!g) groups.push((g = { cache, rows: [], at: [] }));
      g.rows.push(row);
      g.at.push(at);
    });
    let joined: KvFeeds<ort.Tensor> | undefined;
    try {
      for (const g of groups) {
        const piece = await this.runSelect(g.cache.past, g.cache.width, g.rows, width);
        if (!joined) {
          joined = piece;
          continue;
        }
        const feeds: Record<string, ort.Tensor> = {};
        this.shape.names.forEach((name, i) => {
          feeds[`a${i}`] = joined![name];
          feeds[`b${i}`] = piece[name];
        });
        let next: KvFeeds<ort.Tensor>;
        try {
          next = this.named(await this.concat.run(feeds));
        } finally {
          disposeFeeds(piece);
        }
        disposeFeeds(joined);
        joined = next;
      }
      // joined's row k holds the request's row order[k]; permute when that is not the identity.
      const order = groups.flatMap((g) => g.at);
      if (order.every((at, k) => at === k)) return joined!;
      const inverse = new Array<number>(order.length);
      order.forEach((at, k) => (inverse[at] = k));
      const sorted = await this.runSelect(joined!, width, inverse, width);
      disposeFeeds(joined!);
      return sorted;
    } catch (error) {
      if (joined) disposeFeeds(joined);
      throw error;
    }
  }

  async release(): Promise<void> {
    await Promise.all([this.select.release(), this.concat.release()]);
  }
}

function disposeFeeds(feeds: KvFeeds<ort.Tensor>): void {
  for (const t of Object.values(feeds)) t.dispose();
}
