// Who is logged in: the session (token and roles), login and logout, shared by every page through a context.
// Roles come from the login answer and are refreshed from GET /api/auth/me when the app starts, so a user whose
// role changed sees the right buttons after a reload.
import { useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useState, type ReactNode } from "react";
import { AuthContext } from "./useAuth";
import { api, onUnauthorized } from "./client";
import { clearSession, isAdmin, loadSession, saveSession, type Session } from "./session";
import type { LoginResponse, Me } from "./types";

export function AuthProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(loadSession);
  const [loggedOut, setLoggedOut] = useState(false);
  const queryClient = useQueryClient();

  const logout = useCallback(() => {
    clearSession();
    setLoggedOut(true);
    setSession(null);
    queryClient.clear();
  }, [queryClient]);

  useEffect(() => onUnauthorized(() => {
    setSession(null);
    queryClient.clear();
  }), [queryClient]);

  const token = session?.token;
  useEffect(() => {
    if (!token) return;
    const controller = new AbortController();
    api<Me>("/auth/me", { signal: controller.signal })
      .then((me) => {
        setSession((current) => {
          if (!current || current.token !== token) return current;
          const next = { ...current, username: me.username, roles: me.roles };
          saveSession(next);
          return next;
        });
      })
      .catch(() => undefined); // a 401 already ended the session; anything else leaves it as it was
    return () => { controller.abort(); };
  }, [token]);

  const login = useCallback(async (username: string, password: string) => {
    const answer = await api<LoginResponse>("/auth/login", {
      method: "POST",
      body: { username, password },
      anonymous: true,
    });
    const next: Session = { username, token: answer.token, expiresAt: answer.expiresAt, roles: answer.roles };
    saveSession(next);
    queryClient.clear();
    setLoggedOut(false);
    setSession(next);
  }, [queryClient]);

  const value = useMemo(
    () => ({ session, isAdmin: isAdmin(session), loggedOut, login, logout }),
    [session, loggedOut, login, logout],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}
