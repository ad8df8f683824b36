import { HTTPClient } from "./client.js";
import { resolveConfig, type ConnectionConfig } from "./config.js";
import { asArray } from "./models.js";

/** A vault entry: its name and dates, never its value. */
export interface Credential {
  key: string;
  createdAt?: string;
  updatedAt?: string;
}

export interface TemplateInfo {
  templateId: string;
  name: string;
  description: string;
  builtIn: boolean;
  status: string;
  cpuCount: number;
  memoryMB: number;
  aliases: string[];
}

/** Credentials injected into sandboxes created with `vaultInject: true`; values are write-only. */
export class Vault {
  private readonly client: HTTPClient;

  constructor(config?: Partial<ConnectionConfig>) {
    this.client = new HTTPClient(resolveConfig(config));
  }

  async set(key: string, value: string): Promise<void> {
    await this.client.post("/vault/credentials", { key, value });
  }

  async list(): Promise<Credential[]> {
    // `{keys, credentials: [...]}`; servers before it answered the bare array.
    const data: any = await this.client.get("/vault/credentials");
    const items = Array.isArray(data) ? data : asArray(data?.credentials);
    return items.map((c) => ({ key: c.key ?? "", createdAt: c.createdAt, updatedAt: c.updatedAt }));
  }

  async delete(key: string): Promise<void> {
    await this.client.delete(`/vault/credentials/${encodeURIComponent(key)}`);
  }
}

/** The templates sandboxes can be created from. */
export class Templates {
  private readonly client: HTTPClient;

  constructor(config?: Partial<ConnectionConfig>) {
    this.client = new HTTPClient(resolveConfig(config));
  }

  async list(): Promise<TemplateInfo[]> {
    return asArray(await this.client.get("/templates")).map((t) => ({
      templateId: t.templateID ?? t.name ?? "",
      name: t.name ?? "",
      description: t.description ?? "",
      builtIn: t.builtIn ?? false,
      status: t.status ?? "",
      cpuCount: t.cpuCount ?? 0,
      memoryMB: t.memoryMB ?? 0,
      aliases: Array.isArray(t.aliases) ? t.aliases : [],
    }));
  }
}
