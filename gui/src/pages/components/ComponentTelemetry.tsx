// The telemetry of a component's handlers (GUI-B's chart slot on the component page: hits and service time
// AVG/MAX/MIN per handler over an interval and period from /api/performance/component, and the aggregate's
// phases from /api/performance/aggregate). Until the charts land, it says where they will be.
import { Text } from "@mantine/core";
import type { HandlerItem } from "../../api/types";

export interface ComponentTelemetryProps {
  bundleId: string;
  component: string;
  componentKind: string;
  handlers: HandlerItem[];
}

export default function ComponentTelemetry({ handlers }: ComponentTelemetryProps) {
  return (
    <Text size="sm" c="dimmed" data-testid="telemetry-slot">
      Telemetry charts of {handlers.length} handler{handlers.length === 1 ? "" : "s"} will show here.
    </Text>
  );
}
