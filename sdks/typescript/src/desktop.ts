import type { HTTPClient } from "./client.js";

export interface ScreenInfo {
  width: number;
  height: number;
  cursorX: number;
  cursorY: number;
}

export interface DesktopStreamInfo {
  novncPort: number;
  vncPort: number;
  wsPath: string;
}

export type MouseAction = "click" | "doubleClick" | "rightClick" | "move" | "drag" | "scroll";
export type ScrollDirection = "up" | "down" | "left" | "right";
export type KeyboardAction = "type" | "press";

export interface MouseOptions {
  action: MouseAction;
  x?: number;
  y?: number;
  endX?: number;
  endY?: number;
  direction?: ScrollDirection;
  amount?: number;
}

export interface ScreenshotOptions {
  scale?: number;
  maxWidth?: number;
  maxHeight?: number;
}

export interface KeyboardOptions {
  action: KeyboardAction;
  text?: string;
  key?: string;
}

/** `sandbox.desktop`: GUI sandboxes (template `desktop`). */
export class Desktop {
  private readonly base: string;
  private readonly client: HTTPClient;

  constructor(sandboxId: string, client: HTTPClient) {
    this.base = `/sandboxes/${sandboxId}/desktop`;
    this.client = client;
  }

  /**
   * The screen as PNG bytes. `scale` (0-1] or `maxWidth`/`maxHeight` shrink it (never
   * enlarged); the image's width over the screen's (`getScreen()`) is the factor to divide
   * coordinates in the image by.
   */
  async screenshot(opts: ScreenshotOptions = {}): Promise<Uint8Array> {
    const query = new URLSearchParams();
    if (opts.scale !== undefined) query.set("scale", String(opts.scale));
    if (opts.maxWidth !== undefined) query.set("maxWidth", String(opts.maxWidth));
    if (opts.maxHeight !== undefined) query.set("maxHeight", String(opts.maxHeight));
    const suffix = query.toString();
    return this.client.download(`${this.base}/screenshot${suffix ? `?${suffix}` : ""}`);
  }

  async mouse(opts: MouseOptions): Promise<void> {
    await this.client.post(`${this.base}/mouse`, opts);
  }

  async keyboard(opts: KeyboardOptions): Promise<void> {
    await this.client.post(`${this.base}/keyboard`, opts);
  }

  async getScreen(): Promise<ScreenInfo> {
    const d = (await this.client.get<Record<string, number>>(`${this.base}/screen`)) ?? {};
    return { width: d.width ?? 0, height: d.height ?? 0, cursorX: d.cursorX ?? 0, cursorY: d.cursorY ?? 0 };
  }

  async getStreamInfo(): Promise<DesktopStreamInfo> {
    const d = (await this.client.get<Record<string, any>>(`${this.base}/stream`)) ?? {};
    return { novncPort: d.novncPort ?? 0, vncPort: d.vncPort ?? 0, wsPath: d.wsPath ?? "" };
  }

  leftClick(x: number, y: number): Promise<void> {
    return this.mouse({ action: "click", x, y });
  }
  rightClick(x: number, y: number): Promise<void> {
    return this.mouse({ action: "rightClick", x, y });
  }
  doubleClick(x: number, y: number): Promise<void> {
    return this.mouse({ action: "doubleClick", x, y });
  }
  moveMouse(x: number, y: number): Promise<void> {
    return this.mouse({ action: "move", x, y });
  }
  drag(startX: number, startY: number, endX: number, endY: number): Promise<void> {
    return this.mouse({ action: "drag", x: startX, y: startY, endX, endY });
  }
  scroll(direction: ScrollDirection, amount?: number): Promise<void> {
    const opts: MouseOptions = { action: "scroll", direction };
    if (amount !== undefined) opts.amount = amount;
    return this.mouse(opts);
  }
  type(text: string): Promise<void> {
    return this.keyboard({ action: "type", text });
  }
  press(key: string): Promise<void> {
    return this.keyboard({ action: "press", key });
  }
  async getScreenSize(): Promise<{ width: number; height: number }> {
    const s = await this.getScreen();
    return { width: s.width, height: s.height };
  }
  async getCursorPosition(): Promise<{ x: number; y: number }> {
    const s = await this.getScreen();
    return { x: s.cursorX, y: s.cursorY };
  }
}
