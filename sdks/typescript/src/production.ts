import type { HTTPClient } from "./client.js";
import { asArray } from "./models.js";

export interface NetworkPolicy {
  allowDomains?: string[];
  denyDomains?: string[];
  /** IPs or CIDRs. */
  allowIPs?: string[];
  denyIPs?: string[];
}

export interface SandboxMetrics {
  cpuTimeMs: number;
  memoryUsedMb: number;
  diskUsedMb: number;
  networkRxKb: number;
  networkTxKb: number;
  commandCount: number;
  uptime: string;
}

export interface MetricsSnapshot {
  timestamp: string;
  cpuUsedPct: number;
  cpuCount: number;
  memUsed: number;
  memTotal: number;
  diskUsed: number;
  diskTotal: number;
}

export interface WebhookInfo {
  id: string;
  url: string;
  events: string[];
}

type Raw = Record<string, any>;

export function toMetricsSnapshot(m: Raw): MetricsSnapshot {
  return {
    timestamp: m.timestamp ?? "",
    cpuUsedPct: m.cpu_used_pct ?? 0,
    cpuCount: m.cpu_count ?? 0,
    memUsed: m.mem_used ?? 0,
    memTotal: m.mem_total ?? 0,
    diskUsed: m.disk_used ?? 0,
    diskTotal: m.disk_total ?? 0,
  };
}

const MiB = 1024 * 1024;

/** `sandbox.production`: pause/resume, metrics, network policy. */
export class Production {
  private readonly base: string;
  private readonly client: HTTPClient;

  constructor(sandboxId: string, client: HTTPClient) {
    this.base = `/sandboxes/${sandboxId}`;
    this.client = client;
  }

  async pause(): Promise<{ status: string }> {
    return (await this.client.post<{ status: string }>(`${this.base}/pause`)) ?? { status: "" };
  }

  async resume(): Promise<{ status: string }> {
    return (await this.client.post<{ status: string }>(`${this.base}/resume`)) ?? { status: "" };
  }

  async metrics(): Promise<SandboxMetrics> {
    const data = await this.client.get<unknown>(`${this.base}/metrics`);
    if (Array.isArray(data)) {
      const last: Raw = data[data.length - 1] ?? {};
      return {
        cpuTimeMs: 0,
        memoryUsedMb: Math.round((last.mem_used ?? 0) / MiB),
        diskUsedMb: Math.round((last.disk_used ?? 0) / MiB),
        networkRxKb: 0,
        networkTxKb: 0,
        commandCount: 0,
        uptime: last.timestamp ?? "",
      };
    }
    const d = (data ?? {}) as Raw;
    return {
      cpuTimeMs: d.cpu_time_ms ?? 0,
      memoryUsedMb: d.memory_used_mb ?? 0,
      diskUsedMb: d.disk_used_mb ?? 0,
      networkRxKb: d.network_rx_kb ?? 0,
      networkTxKb: d.network_tx_kb ?? 0,
      commandCount: d.command_count ?? 0,
      uptime: String(d.uptime ?? ""),
    };
  }

  async metricsSnapshots(): Promise<MetricsSnapshot[]> {
    const data = await this.client.get<unknown>(`${this.base}/metrics`);
    return Array.isArray(data) ? data.map(toMetricsSnapshot) : [];
  }

  async setNetworkPolicy(policy: NetworkPolicy): Promise<void> {
    await this.client.post(`${this.base}/network-policy`, {
      allowDomains: policy.allowDomains,
      denyDomains: policy.denyDomains,
      allowIPs: policy.allowIPs,
      denyIPs: policy.denyIPs,
    });
  }
}

/** Account webhooks (`sandbox.webhooks`, or `new Webhooks(client)`). */
export class Webhooks {
  private readonly client: HTTPClient;

  constructor(client: HTTPClient) {
    this.client = client;
  }

  async create(url: string, events: string[]): Promise<{ id: string }> {
    return this.client.post<{ id: string }>("/webhooks", { url, events });
  }

  register(url: string, events: string[]): Promise<{ id: string }> {
    return this.create(url, events);
  }

  async list(): Promise<WebhookInfo[]> {
    return asArray(await this.client.get("/webhooks")).map((w) => ({ id: w.id ?? "", url: w.url ?? "", events: Array.isArray(w.events) ? w.events : [] }));
  }

  async delete(webhookId: string): Promise<void> {
    await this.client.delete(`/webhooks/${webhookId}`);
  }
}
