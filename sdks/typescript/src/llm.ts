import { HTTPClient } from "./client.js";
import { resolveConfig, type ConnectionConfig } from "./config.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  max_tokens?: number;
  temperature?: number;
  stream?: boolean;
}

export interface ChatCompletionChoice {
  index: number;
  message: { role: string; content: string };
  finish_reason: string;
}

export interface ChatCompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost?: number;
}

export interface ChatCompletionResponse {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: ChatCompletionChoice[];
  usage: ChatCompletionUsage;
}

export interface LLMUsage {
  spendUsedCents: number;
  spendCapCents: number;
  remainingCents: number;
}

export interface LLMModel {
  id: string;
  [key: string]: unknown;
}

interface ChatChunk {
  choices?: { delta?: { content?: string } }[];
}

/** The OpenAI-compatible LLM proxy, on the same API key. */
export class LLM {
  private readonly client: HTTPClient;

  constructor(config?: Partial<ConnectionConfig>) {
    this.client = new HTTPClient(resolveConfig(config));
  }

  async chatCompletion(request: ChatCompletionRequest): Promise<ChatCompletionResponse> {
    return this.client.post<ChatCompletionResponse>("/llm/v1/chat/completions", { ...request, stream: false });
  }

  /** The text of each streamed chunk, as it arrives. */
  async *streamChatCompletion(request: ChatCompletionRequest): AsyncGenerator<string> {
    for await (const chunk of this.client.streamSSE<ChatChunk>("POST", "/llm/v1/chat/completions", { body: { ...request, stream: true } })) {
      const text = chunk?.choices?.[0]?.delta?.content;
      if (text) yield text;
    }
  }

  async listModels(): Promise<LLMModel[]> {
    const data = await this.client.get<{ data?: LLMModel[] }>("/llm/v1/models");
    return data?.data ?? [];
  }

  async getUsage(): Promise<LLMUsage> {
    return this.client.get<LLMUsage>("/llm/v1/usage");
  }
}
