// The bundle's component graph (GUI-B's slot on the bundle page: its components and handlers and the messages
// between them). Until the drawing lands, it counts what it will draw.
import { Text } from "@mantine/core";
import type { BundleDetail } from "../../api/types";

export default function BundleGraph({ bundle }: { bundle: BundleDetail }) {
  return (
    <Text size="sm" c="dimmed" data-testid="bundle-graph-slot">
      {bundle.components.length} components and {bundle.handlers.length} handlers.
    </Text>
  );
}
