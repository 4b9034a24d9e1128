// Server-sent events read with fetch, because EventSource cannot send the Authorization header the API needs.
// The stream is reopened after a pause when it ends or fails (the server restarted, a proxy cut it), and a 401
// ends the session like any other call.
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { ApiError, authorization, notifyUnauthorized, problemDetail } from "./client";

export type StreamState = "connecting" | "live" | "reconnecting";

export interface StreamHandlers {
  onEvent: (message: EventSourceMessage) => void;
  onState: (state: StreamState, error?: string) => void;
}

const RETRY_MS = [500, 1000, 2000, 5000];

/** Follow the server-sent events of `path` (from `/api`) until `signal` aborts. */
export async function followStream(path: string, handlers: StreamHandlers, signal: AbortSignal): Promise<void> {
  let failures = 0;
  while (!signal.aborted) {
    handlers.onState(failures === 0 ? "connecting" : "reconnecting");
    try {
      const response = await fetch(`/api${path}`, {
        headers: { Accept: "text/event-stream", ...authorization() },
        signal,
      });
      if (response.status === 401) {
        notifyUnauthorized();
        return;
      }
      if (!response.ok || !response.body) throw new ApiError(response.status, await problemDetail(response));
      handlers.onState("live");
      failures = 0;
      const parser = createParser({ onEvent: handlers.onEvent });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") return;
      const detail = error instanceof ApiError ? error.detail : "the stream was interrupted";
      handlers.onState("reconnecting", detail);
    }
    const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)] ?? 5000;
    failures += 1;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }
}
