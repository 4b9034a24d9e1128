// Kinds of components, handlers and payloads shown as coloured badges, the same colour for a kind everywhere.
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
    <Badge variant="light" color={COLORS[kind] ?? "gray"} style={{ textTransform: "none", flexShrink: 0 }} miw="max-content">
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
