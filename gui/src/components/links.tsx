// An in-app link: client-side navigation, with a real href for new tabs and keyboard users.
import { Anchor } from "@mantine/core";
import type { ReactNode } from "react";
import { Link } from "react-router";

/** An in-app link (client-side navigation, a real href for new tabs and keyboard users). */
export function AppLink({ to, children }: { to: string; children: ReactNode }) {
  return <Anchor component={Link} to={to}>{children}</Anchor>;
}
