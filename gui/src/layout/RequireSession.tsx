// Pages that need a session: without one the login page opens, and returns to the asked URL after logging in.
import type { ReactNode } from "react";
import { Navigate, useLocation } from "react-router";
import { useAuth } from "../api/useAuth";

export function RequireSession({ children }: { children: ReactNode }) {
  const { session, loggedOut } = useAuth();
  const location = useLocation();
  if (!session) {
    if (loggedOut) return <Navigate to="/login" replace />;
    const next = `${location.pathname}${location.search}${location.hash}`;
    return <Navigate to={`/login${next === "/" ? "" : `?next=${encodeURIComponent(next)}`}`} replace />;
  }
  return <>{children}</>;
}
