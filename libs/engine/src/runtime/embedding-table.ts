import * as ort from 'onnxruntime-node';

type Rows = Float32Array | Uint16Array;

/** Ids per `embed_tokens.onnx` call while the table is read. */
const READ_CHUNK = 8192;

/**
 * The token embedding as a host table `[V, H]` in the model dtype. `embed_tokens.onnx` is a row gather, so running it
 * once over every id gives the table; the session is released after that. Prompt and step inputs then copy rows from
 * the table instead of calling onnxruntime for every step.
 */
export class EmbeddingTable {
  private constructor(
    private readonly table: Rows,
    readonly vocab: number,
    readonly hidden: number,
  ) {}

  static async read(graph: string, vocab: number, hidden: number): Promise<EmbeddingTable> {
    const session = await ort.InferenceSession.create(graph, { executionProviders: ['cpu'] });
    try {
      let table: Rows | undefined;
      for (let first = 0; first < vocab; first += READ_CHUNK) {
        const n = Math.min(READ_CHUNK, vocab - first);
        const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(first + i));
        const out = await session.run({ input_ids: new ort.Tensor('int64', ids, [1, n]) });
        const rows = out.inputs_embeds.data as Rows;
        if (rows.length !== n * hidden)
          throw new Error(
            `embed_tokens.onnx returned ${rows.length / n} values per token, expected ${hidden}`,
          );
        table ??=
          rows instanceof Uint16Array ? new Uint16Array(vocab * hidden) : new Float32Array(vocab * hidden);
        table.set(rows as never, first * hidden);
      }
      return new EmbeddingTable(table!, vocab, hidden);
    } finally {
      await session.release();
    }
  }

  /** The whole table `[V, H]` (not a copy: read it only). */
  get rows(): Rows {
    return this.table;
  }

  /** Row `id` (a view into the table: copy it before changing it). */
  row(id: number): Rows {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab)
      throw new RangeError(`token id ${id} is outside the vocabulary of ${this.vocab}`);
    return this.table.subarray(id * this.hidden, (id + 1) * this.hidden);
  }

  /** The rows of `ids`, in order: a new `[n, H]` array. */
  lookup(ids: ArrayLike<bigint | number>): Rows {
    const h = this.hidden;
    const out =
      this.table instanceof Uint16Array ? new Uint16Array(ids.length * h) : new Float32Array(ids.length * h);
    for (let i = 0; i < ids.length; i++) out.set(this.row(Number(ids[i])) as never, i * h);
    return out;
  }
}
