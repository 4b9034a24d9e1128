// The logged-in user's token, kept in localStorage so a reload or a new tab stays logged in until the token
// expires (the server signs it with an expiry; the GUI forgets it then, or at the first 401).

export interface Session {
  username: string;
  token: string;
  expiresAt: string;
  roles: string[];
}

const KEY = "evento.session";

function isSession(value: unknown): value is Session {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.username === "string" &&
    typeof v.token === "string" &&
    typeof v.expiresAt === "string" &&
    Array.isArray(v.roles)
  );
}

/** The stored session, unless there is none, it is unreadable or its token expired. */
export function loadSession(): Session | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(localStorage.getItem(KEY) ?? "null");
  } catch {
    return null;
  }
  if (!isSession(parsed)) return null;
  if (Date.parse(parsed.expiresAt) <= Date.now()) {
    localStorage.removeItem(KEY);
    return null;
  }
  return parsed;
}

export function saveSession(session: Session): void {
  localStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession(): void {
  localStorage.removeItem(KEY);
}

export function isAdmin(session: Session | null): boolean {
  return session?.roles.includes("admin") ?? false;
}
