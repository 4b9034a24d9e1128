// The publication rate over time on the dashboard: events per second in each bucket of the chosen period, counted
// from the event store's timestamps (/api/dashboard/publication-rate), with the current rate, the period's total
// and its peak in words beside the chart.
import { Group, Stack, Text } from "@mantine/core";
import { useMemo, useState } from "react";
import { usePublicationRate } from "../../api/hooks";
import { number } from "../../components/format";
import { ErrorState, Loading } from "../../components/states";
import { RangeControls, type RangeChoice } from "../charts/RangeControls";
import { localInputMs, timeRange } from "../charts/range";
import TimeSeriesChart from "../charts/TimeSeriesChart";

const rate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

export default function PublicationRateChart({ rate: now, windowSeconds }: { rate: number; windowSeconds: number }) {
  const [choice, setChoice] = useState<RangeChoice>({ period: "1h", interval: "60", from: "", to: "" });
  const range = timeRange(choice.period, Number(choice.interval), localInputMs(choice.from), localInputMs(choice.to));
  // A custom range still being typed asks for nothing (the last answer stays on screen).
  const query = usePublicationRate(range ?? { intervalS: 60, periodMs: 3_600_000 }, { enabled: range !== null });
  const chart = useMemo(() => {
    if (!query.data) return null;
    const buckets = query.data.buckets;
    return {
      timestamps: buckets.map((b) => new Date(b.timestamp).getTime()),
      series: [{ label: "Events per second", values: buckets.map((b) => b.ratePerS), color: "blue", unit: "events/s", bars: true }],
      fromMs: new Date(query.data.from).getTime(),
      toMs: new Date(query.data.to).getTime(),
      peak: buckets.reduce((max, b) => Math.max(max, b.ratePerS), 0),
    };
  }, [query.data]);
  return (
    <Stack gap="sm" data-testid="publication-rate">
      <Group justify="space-between" align="flex-end" wrap="wrap">
        <RangeControls idPrefix="rate" value={choice} onChange={(change) => { setChoice((c) => ({ ...c, ...change })); }} />
        <Text size="sm" c="dimmed">now {rate.format(now)} events/s (last {windowSeconds} s)</Text>
      </Group>
      {range === null && <Text size="sm" c="dimmed">Pick a start and an end (after it) for the period.</Text>}
      {query.isPending ? (range === null ? null : <Loading label="Loading the publication rate…" />)
        : query.isError ? <ErrorState error={query.error} onRetry={() => void query.refetch()} />
        : chart && (
          <>
            <TimeSeriesChart label={`Events published per second in buckets of ${query.data.interval} s`}
              timestamps={chart.timestamps} series={chart.series} fromMs={chart.fromMs} toMs={chart.toMs}
              height={200} testId="publication-rate-chart" />
            <Text size="sm" data-testid="publication-rate-summary">
              {number.format(query.data.events)} events in the period
              {query.data.events > 0 && `, at most ${rate.format(chart.peak)} events/s in a bucket of ${query.data.interval} s`}
            </Text>
          </>
        )}
    </Stack>
  );
}
