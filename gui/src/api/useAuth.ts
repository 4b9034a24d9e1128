// The session as every page sees it: who is logged in, whether an admin (admin buttons show only then), login
// and logout. Provided by AuthProvider (auth.tsx).
import { createContext, useContext } from "react";
import type { Session } from "./session";

export interface Auth {
  session: Session | null;
  isAdmin: boolean;
  /** The user logged out (rather than the session ending by itself): the login page asks for no page back. */
  loggedOut: boolean;
  login: (username: string, password: string) => Promise<void>;
  logout: () => void;
}

export const AuthContext = createContext<Auth | null>(null);

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error("useAuth outside AuthProvider");
  return auth;
}
