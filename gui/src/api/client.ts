// The one way the GUI calls the server: JSON over fetch with the session's Bearer token; every error becomes an
// ApiError carrying the problem document's one-line `detail`, and a 401 ends the session (the router then shows
// the login page).
import { clearSession, loadSession } from "./session";
import type { Problem } from "./types";

/** An answer other than 2xx: its status and the API's own words (`detail` of application/problem+json). */
export class ApiError extends Error {
  readonly status: number;
  readonly detail: string;

  constructor(status: number, detail: string) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();

/** Called when the server answers 401 to a call made with a token: the session is over. */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export function notifyUnauthorized(): void {
  clearSession();
  for (const listener of unauthorizedListeners) listener();
}

export type QueryValue = string | number | boolean | null | undefined;

/** `?a=1&b=x` from the parameters that have a value (empty strings, null and undefined are left out). */
export function queryString(params: Record<string, QueryValue>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export interface RequestOptions {
  method?: "GET" | "POST" | "PUT" | "DELETE";
  query?: Record<string, QueryValue>;
  body?: unknown;
  signal?: AbortSignal;
  /** Send no token (the login call). */
  anonymous?: boolean;
}

export function authorization(): Record<string, string> {
  const session = loadSession();
  return session ? { Authorization: `Bearer ${session.token}` } : {};
}

/** The problem's detail, or a line made of the status when the body is not a problem document. */
export async function problemDetail(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as Partial<Problem>;
    if (typeof body.detail === "string" && body.detail) return body.detail;
  } catch {
    // not JSON: a proxy's page, say
  }
  return `${response.status} ${response.statusText || "error"}`;
}

/** Call the API at `path` (from `/api`) and return its JSON body (`undefined` for 204). */
export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (!options.anonymous) Object.assign(headers, authorization());
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(`/api${path}${queryString(options.query ?? {})}`, {
      method: options.method ?? "GET",
      headers,
      body: options.body === undefined ? null : JSON.stringify(options.body),
      signal: options.signal ?? null,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, "the server cannot be reached: is it running?");
  }
  if (!response.ok) {
    const detail = await problemDetail(response);
    if (response.status === 401 && !options.anonymous) notifyUnauthorized();
    throw new ApiError(response.status, detail);
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** The words to show for any error a query or mutation raised. */
export function errorDetail(error: unknown): string {
  if (error instanceof ApiError) return error.detail;
  if (error instanceof Error) return error.message;
  return String(error);
}
