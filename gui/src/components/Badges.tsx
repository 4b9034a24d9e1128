// Kinds of components, handlers and payloads shown as tinted badges, the same tint for a kind everywhere; the
// text keeps the page's text colour, since a tint's own dark shade is below 4.5:1 contrast on it for several hues.
import { Badge } from "@mantine/core";

const COLORS: Record<string, string> = {
  Aggregate: "indigo",
  Service: "cyan",
  Projector: "teal",
  Projection: "green",
  Saga: "orange",
  Observer: "grape",
  Invoker: "pink",
  DomainCommand: "indigo",
  ServiceCommand: "cyan",
  DomainEvent: "teal",
  ServiceEvent: "green",
  Query: "orange",
  View: "grape",
};

export function KindBadge({ kind }: { kind: string }) {
  return (
    <Badge variant="light" color={COLORS[kind] ?? "gray"} c="var(--mantine-color-text)"
      style={{ textTransform: "none", flexShrink: 0 }} miw="max-content">
      {kind}
    </Badge>
  );
}

export function OnlineBadge({ online, onLabel = "online", offLabel = "offline" }: {
  online: boolean;
  onLabel?: string;
  offLabel?: string;
}) {
  return <Badge variant="dot" color={online ? "green" : "gray"} miw="max-content">{online ? onLabel : offLabel}</Badge>;
}
