import type { HTTPClient } from "./client.js";
import { asArray } from "./models.js";

export type ExposureVisibility = "public" | "private";
export type ExposureStatus = "pending" | "ready" | "revoked" | "expired" | "sandbox_stopped" | "error";

export interface ExposureInfo {
  id: string;
  sandboxId: string;
  accountId?: string;
  port: number;
  hostname: string;
  url: string;
  accessUrl?: string;
  visibility: ExposureVisibility;
  status: ExposureStatus;
  createdAt: string;
  expiresAt: string;
  revokedAt?: string;
  sandboxStoppedAt?: string;
  lastAccessedAt?: string;
  openPath?: string;
  preserveHost: boolean;
  createdBy?: string;
}

export interface CreateExposureOptions {
  visibility?: ExposureVisibility;
  ttlSeconds?: number;
  slug?: string;
  openPath?: string;
  preserveHost?: boolean;
}

export interface RefreshExposureOptions {
  ttlSeconds?: number;
}

type Raw = Record<string, any>;

function toExposure(d: Raw): ExposureInfo {
  return {
    id: d.id ?? "",
    sandboxId: d.sandboxId ?? d.sandboxID ?? "",
    accountId: d.accountId,
    port: d.port ?? 0,
    hostname: d.hostname ?? "",
    url: d.url ?? "",
    accessUrl: d.accessUrl,
    visibility: d.visibility ?? "public",
    status: d.status ?? "pending",
    createdAt: d.createdAt ?? "",
    expiresAt: d.expiresAt ?? "",
    revokedAt: d.revokedAt,
    sandboxStoppedAt: d.sandboxStoppedAt,
    lastAccessedAt: d.lastAccessedAt,
    openPath: d.openPath ?? "/",
    preserveHost: d.preserveHost ?? true,
    createdBy: d.createdBy,
  };
}

function defined(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
}

/** `sandbox.exposures`: managed preview URLs for ports of the sandbox. */
export class Exposures {
  private readonly base: string;
  private readonly client: HTTPClient;

  constructor(sandboxId: string, client: HTTPClient) {
    this.base = `/sandboxes/${sandboxId}/exposures`;
    this.client = client;
  }

  async create(port: number, opts?: CreateExposureOptions): Promise<ExposureInfo> {
    const body = defined({ port, visibility: opts?.visibility, requestedTtlSeconds: opts?.ttlSeconds, slug: opts?.slug, openPath: opts?.openPath, preserveHost: opts?.preserveHost });
    return toExposure((await this.client.post<Raw>(this.base, body)) ?? {});
  }

  async list(): Promise<ExposureInfo[]> {
    return asArray(await this.client.get(this.base)).map(toExposure);
  }

  async get(exposureId: string): Promise<ExposureInfo> {
    return toExposure((await this.client.get<Raw>(`${this.base}/${exposureId}`)) ?? {});
  }

  async refresh(exposureId: string, opts?: RefreshExposureOptions): Promise<ExposureInfo> {
    return toExposure((await this.client.post<Raw>(`${this.base}/${exposureId}/refresh`, defined({ requestedTtlSeconds: opts?.ttlSeconds }))) ?? {});
  }

  async close(exposureId: string): Promise<void> {
    await this.client.delete(`${this.base}/${exposureId}`);
  }
}
