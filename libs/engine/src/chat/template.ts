import type { ChatMessage } from '../types';

export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant.';
export const IMAGE_PLACEHOLDER = '<|vision_start|><|image_pad|><|vision_end|>';

export interface RenderOptions {
  addGenerationPrompt?: boolean;
  /** Prefix each image with `Picture N: ` (the template's `add_vision_id`). */
  addVisionId?: boolean;
  /** The system message written when the first message is not one (a bundle's `default_system_prompt`). */
  defaultSystemPrompt?: string;
}

/**
 * Renders messages exactly as the Qwen2.5-VL chat template (bundle `chat_template.jinja`) does: the default system
 * prompt (the bundle's, else DEFAULT_SYSTEM_PROMPT) when the first message is not a system message, one `<|image_pad|>` placeholder per image part (expanded
 * to the image's token count later), text parts verbatim, optional generation prompt.
 */
export function renderChat(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
  let out = '';
  let imageCount = 0;
  messages.forEach((message, i) => {
    if (i === 0 && message.role !== 'system')
      out += `<|im_start|>system\n${options.defaultSystemPrompt ?? DEFAULT_SYSTEM_PROMPT}<|im_end|>\n`;
    out += `<|im_start|>${message.role}\n`;
    if (typeof message.content === 'string') {
      out += `${message.content}<|im_end|>\n`;
      return;
    }
    for (const part of message.content) {
      if (part.type === 'image') {
        imageCount++;
        if (options.addVisionId) out += `Picture ${imageCount}: `;
        out += IMAGE_PLACEHOLDER;
      } else out += part.text;
    }
    out += '<|im_end|>\n';
  });
  if (options.addGenerationPrompt ?? true) out += '<|im_start|>assistant\n';
  return out;
}
