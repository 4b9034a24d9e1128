// An in-app link: client-side navigation, with a real href for new tabs and keyboard users.
import { Anchor } from "@mantine/core";
import type { ReactNode } from "react";
import { Link } from "react-router";

/** An in-app link (client-side navigation, a real href for new tabs and keyboard users). */
export function AppLink({ to, children, maxWidth }: { to: string; children: ReactNode; maxWidth?: number }) {
  if (maxWidth === undefined) return <Anchor component={Link} to={to}>{children}</Anchor>;
  // Long identifiers end in an ellipsis (the whole one on hover) rather than widening their table.
  return (
    <Anchor component={Link} to={to} truncate="end" maw={maxWidth} display="inline-block"
      title={typeof children === "string" ? children : undefined} style={{ verticalAlign: "bottom" }}>
      {children}
    </Anchor>
  );
}
