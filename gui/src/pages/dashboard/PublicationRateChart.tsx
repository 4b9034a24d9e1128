// The publication rate over time (GUI-B's chart slot on the dashboard): until the chart lands, the current rate
// in words. Props: the rate now (events/s) and the window it is measured over (s).
import { Text } from "@mantine/core";

export default function PublicationRateChart({ rate, windowSeconds }: { rate: number; windowSeconds: number }) {
  return (
    <Text size="sm" c="dimmed" data-testid="publication-rate-slot">
      {rate.toFixed(2)} events/s over the last {windowSeconds} s
    </Text>
  );
}
