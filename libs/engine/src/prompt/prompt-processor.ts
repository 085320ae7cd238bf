import type { BundleManifest } from '../bundle/manifest';
import { renderChat } from '../chat/template';
import { EngineError, RequestError } from '../errors';
import { ropeIndex } from '../rope/mrope';
import type { VisionRequest } from '../runtime/protocol';
import type { Tokenizer } from '../tokenizer';
import type { GenerationRequest, ImagePart } from '../types';
import { visionHostInputs } from '../vision/host-inputs';
import type { PatchConfig } from '../vision/patchify';
import { ImageProcessorConfig, imageTokenCount, processImage, ProcessedImage } from '../vision/preprocess';

/** A prompt ready for prefill: ids with image pads expanded, processed images, M-RoPE positions. */
export interface PreparedPrompt {
  ids: number[];
  images: ProcessedImage[];
  positions: BigInt64Array;
  ropeDelta: number;
  imageTokens: number;
}

/** A rendered, tokenized prompt whose images are not decoded yet (pads expanded from the image headers). */
export interface TokenizedPrompt {
  ids: number[];
  images: Uint8Array[];
  imageTokensPerImage: number[];
  imageConfig: ImageProcessorConfig;
}

/** Runs the vision graph (encoder + merger) on one image's patches. */
export type VisionRunner = (request: VisionRequest) => Promise<Float32Array | Uint16Array>;

/**
 * Everything between a chat request and the decoder's inputs: the chat template, tokenization with image pads,
 * image preprocessing, M-RoPE positions and the image features. Knows the bundle's preprocessing numbers, nothing of
 * sampling or batching.
 */
export class PromptProcessor {
  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly manifest: BundleManifest,
    private readonly runVision: VisionRunner,
  ) {}

  private get imagePadId(): number {
    return this.manifest.special_tokens.image_pad_id;
  }

  /** The bundle's patch geometry and normalisation. */
  private get patchConfig(): PatchConfig {
    const preprocessing = this.manifest.preprocessing;
    return {
      patchSize: preprocessing.patch_size,
      temporalPatchSize: preprocessing.temporal_patch_size,
      mergeSize: preprocessing.merge_size,
      rescaleFactor: preprocessing.rescale_factor,
      imageMean: preprocessing.image_mean,
      imageStd: preprocessing.image_std,
    };
  }

  /** The bundle's image preprocessing settings, with the request's pixel bounds when it sets them. */
  private imageConfig(request: GenerationRequest): ImageProcessorConfig {
    const preprocessing = this.manifest.preprocessing;
    return {
      ...this.patchConfig,
      minPixels: request.image?.minPixels ?? preprocessing.min_pixels,
      maxPixels: request.image?.maxPixels ?? preprocessing.max_pixels,
    };
  }

  /**
   * Renders and tokenizes a request, with each image's `<|image_pad|>` run expanded to the count its header implies
   * (no pixel decoding yet): enough to check the context length before any compute.
   */
  async tokenize(request: GenerationRequest): Promise<TokenizedPrompt> {
    if (!request.messages?.length) throw new RequestError('messages must not be empty', 'messages');
    const text =
      renderChat(request.messages, {
        addGenerationPrompt: request.addGenerationPrompt ?? true,
        defaultSystemPrompt: this.manifest.default_system_prompt,
      }) + (request.assistantPrefix ?? '');
    const imageConfig = this.imageConfig(request);
    const images = request.messages.flatMap((message) =>
      typeof message.content === 'string'
        ? []
        : message.content
            .filter((part): part is ImagePart => part.type === 'image')
            .map((part) => part.image),
    );
    const imageTokensPerImage = await Promise.all(images.map((bytes) => imageTokenCount(bytes, imageConfig)));
    const pad = this.imagePadId;
    const ids: number[] = [];
    let nextImage = 0;
    for (const id of this.tokenizer.encode(text)) {
      if (id !== pad) {
        ids.push(id);
        continue;
      }
      if (nextImage >= images.length)
        throw new RequestError('the prompt text contains more <|image_pad|> tokens than images', 'messages');
      for (let i = 0; i < imageTokensPerImage[nextImage]; i++) ids.push(pad);
      nextImage++;
    }
    if (nextImage !== images.length)
      throw new RequestError('an image part has no <|image_pad|> placeholder', 'messages');
    return { ids, images, imageTokensPerImage, imageConfig };
  }

  /** Decodes and resizes the images of a tokenized prompt and computes its M-RoPE positions. */
  async process(tokenized: TokenizedPrompt): Promise<PreparedPrompt> {
    const images = await Promise.all(
      tokenized.images.map((bytes) => processImage(bytes, tokenized.imageConfig)),
    );
    images.forEach((image, i) => {
      if (image.tokens !== tokenized.imageTokensPerImage[i])
        throw new EngineError(
          `image ${i}: ${image.tokens} tokens after decoding, ${tokenized.imageTokensPerImage[i]} from its header`,
          'inference_failed',
        );
    });
    const rope = ropeIndex(
      tokenized.ids,
      images.map((image) => image.gridThw),
      this.imagePadId,
      this.manifest.architecture.vision.spatial_merge_size,
    );
    const imageTokens = images.reduce((sum, image) => sum + image.tokens, 0);
    return { ids: tokenized.ids, images, positions: rope.positions, ropeDelta: rope.ropeDelta, imageTokens };
  }

  /** Renders, tokenizes and preprocesses a request (images decoded and resized, pads expanded, M-RoPE positions). */
  async prepare(request: GenerationRequest): Promise<PreparedPrompt> {
    return this.process(await this.tokenize(request));
  }

  /**
   * Runs the vision graph on every image and concatenates the features (model dtype).
   */
  async imageFeatures(prompt: PreparedPrompt): Promise<Float32Array | Uint16Array> {
    const geometry = this.manifest.architecture.vision;
    const features: Array<Float32Array | Uint16Array> = [];
    for (const image of prompt.images) {
      const [, gridHeight, gridWidth] = image.gridThw;
      const host = visionHostInputs(gridHeight, gridWidth, {
        spatialMergeSize: geometry.spatial_merge_size,
        windowSize: geometry.window_size,
        patchSize: geometry.patch_size,
      });
      features.push(
        await this.runVision({
          image: image.image,
          numPatches: gridHeight * gridWidth,
          patches: this.patchConfig,
          ...host,
        }),
      );
    }
    const total = features.reduce((sum, f) => sum + f.length, 0);
    const merged =
      this.manifest.io_dtypes.embeds === 'float16' ? new Uint16Array(total) : new Float32Array(total);
    let offset = 0;
    for (const f of features) {
      merged.set(f as never, offset);
      offset += f.length;
    }
    return merged;
  }
}
