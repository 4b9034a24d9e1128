// The telemetry of a component's handlers over time (/api/performance/component): per handler, its hits per bucket
// (bars) and service time (line) combined by the chosen aggregation, over a period cut in buckets of an interval;
// for an aggregate, the server's phases of each command type (/api/performance/aggregate: lock, retrieve,
// compute, publish). Each chart's figures are also in a table, for screen readers and for reading exact values.
// The choices live in the URL, so a view of the charts is a link.
import { Group, SegmentedControl, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { useMemo } from "react";
import { useAggregatePerformance, useComponentPerformance } from "../../api/hooks";
import type { AggregatePerformance, Aggregation, ComponentPerformance, HandlerItem } from "../../api/types";
import { number } from "../../components/format";
import { Empty, ErrorState, Loading } from "../../components/states";
import { useUrlState } from "../../components/urlState";
import { RangeControls, type RangeChoice } from "../charts/RangeControls";
import { bucketStarts, localInputMs, timeRange } from "../charts/range";
import TimeSeriesChart from "../charts/TimeSeriesChart";

export interface ComponentTelemetryProps {
  bundleId: string;
  component: string;
  componentKind: string;
  handlers: HandlerItem[];
}

const AGGREGATIONS: Aggregation[] = ["AVG", "MAX", "MIN"];
const ms = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

/** The service times of the buckets that had samples, combined as the aggregation says (AVG: their mean). */
function combine(values: (number | null)[], aggregation: Aggregation): number | null {
  const sampled = values.filter((v): v is number => v !== null);
  if (sampled.length === 0) return null;
  if (aggregation === "MAX") return Math.max(...sampled);
  if (aggregation === "MIN") return Math.min(...sampled);
  return sampled.reduce((a, b) => a + b, 0) / sampled.length;
}

const fmt = (v: number | null) => (v === null ? "—" : ms.format(v));

function HandlerCharts({ data, aggregation }: { data: ComponentPerformance; aggregation: Aggregation }) {
  const timestamps = useMemo(() => bucketStarts(data.from, data.to, data.interval), [data]);
  const fromMs = new Date(data.from).getTime();
  const toMs = new Date(data.to).getTime();
  const charts = useMemo(
    () => data.handlers.map((h) => ({
      handler: h,
      series: [
        { label: "Hits", values: h.points.map((p) => p.hits), color: "blue", unit: "hits", bars: true },
        { label: `Service time (${aggregation})`, values: h.points.map((p) => p.serviceTimeMs), color: "orange", unit: "ms" },
      ],
    })),
    [data, aggregation],
  );
  return (
    <Stack>
      <SimpleGrid cols={{ base: 1, lg: 2 }}>
        {charts.map(({ handler, series }) => (
          <Stack key={handler.handlerId} gap={4} data-testid="handler-telemetry">
            <Text size="sm" fw={600}>{handler.payload} <Text span size="xs" c="dimmed">{handler.handlerKind}</Text></Text>
            <TimeSeriesChart
              label={`Hits and ${aggregation} service time of the ${handler.payload} handler per bucket of ${data.interval} s`}
              timestamps={timestamps} series={series} fromMs={fromMs} toMs={toMs} height={180} testId="telemetry-chart" />
          </Stack>
        ))}
      </SimpleGrid>
      <Table.ScrollContainer minWidth={480}>
        <Table verticalSpacing={4} data-testid="telemetry-summary">
          <Table.Caption style={{ captionSide: "top", textAlign: "left" }}>
            Over the period: hits of every handling, service time ({aggregation} of the buckets with samples)
          </Table.Caption>
          <Table.Thead>
            <Table.Tr>
              <Table.Th scope="col">Handler</Table.Th>
              <Table.Th scope="col" ta="right">Hits</Table.Th>
              <Table.Th scope="col" ta="right">Service time (ms)</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {data.handlers.map((h) => (
              <Table.Tr key={h.handlerId} data-handler={h.payload}>
                <Table.Th scope="row" fw={400}>{h.payload}</Table.Th>
                <Table.Td ta="right" data-testid="hits">{number.format(h.points.reduce((a, p) => a + p.hits, 0))}</Table.Td>
                <Table.Td ta="right">{fmt(combine(h.points.map((p) => p.serviceTimeMs), aggregation))}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
    </Stack>
  );
}

const PHASES = [
  { key: "lockMs", label: "Lock", color: "grape" },
  { key: "retrieveMs", label: "Retrieve", color: "teal" },
  { key: "computeMs", label: "Compute", color: "blue" },
  { key: "publishMs", label: "Publish", color: "orange" },
] as const;

function PhaseCharts({ data, aggregation }: { data: AggregatePerformance; aggregation: Aggregation }) {
  const timestamps = useMemo(() => bucketStarts(data.from, data.to, data.interval), [data]);
  const fromMs = new Date(data.from).getTime();
  const toMs = new Date(data.to).getTime();
  const charts = useMemo(
    () => data.commands.map((c) => ({
      command: c,
      series: PHASES.map((p) => ({ label: p.label, values: c.points.map((point) => point[p.key]), color: p.color, unit: "ms" })),
    })),
    [data],
  );
  if (data.commands.length === 0) return <Empty>No command of this aggregate was timed by the server in this period</Empty>;
  return (
    <Stack>
      <SimpleGrid cols={{ base: 1, lg: 2 }}>
        {charts.map(({ command, series }) => (
          <Stack key={command.payload} gap={4} data-testid="phases">
            <Text size="sm" fw={600}>{command.payload}</Text>
            <TimeSeriesChart
              label={`${aggregation} lock, retrieve, compute and publish times of ${command.payload} per bucket of ${data.interval} s`}
              timestamps={timestamps} series={series} fromMs={fromMs} toMs={toMs} height={180} testId="phases-chart" />
          </Stack>
        ))}
      </SimpleGrid>
      <Table.ScrollContainer minWidth={560}>
        <Table verticalSpacing={4} data-testid="phases-summary">
          <Table.Caption style={{ captionSide: "top", textAlign: "left" }}>
            Over the period, per command: commands timed, and each phase in ms ({aggregation} of the buckets with samples)
          </Table.Caption>
          <Table.Thead>
            <Table.Tr>
              <Table.Th scope="col">Command</Table.Th>
              <Table.Th scope="col" ta="right">Commands</Table.Th>
              {PHASES.map((p) => <Table.Th key={p.key} scope="col" ta="right">{p.label}</Table.Th>)}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {data.commands.map((c) => (
              <Table.Tr key={c.payload} data-command={c.payload}>
                <Table.Th scope="row" fw={400}>{c.payload}</Table.Th>
                <Table.Td ta="right" data-testid="commands">{number.format(c.points.reduce((a, p) => a + p.hits, 0))}</Table.Td>
                {PHASES.map((p) => <Table.Td key={p.key} ta="right">{fmt(combine(c.points.map((point) => point[p.key]), aggregation))}</Table.Td>)}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
    </Stack>
  );
}

export default function ComponentTelemetry({ bundleId, component, componentKind }: ComponentTelemetryProps) {
  const url = useUrlState();
  const aggregation = (AGGREGATIONS.find((a) => a === url.get("aggregation")) ?? "AVG");
  const choice: RangeChoice = {
    period: url.get("period") || "6h",
    interval: url.get("interval") || "900",
    from: url.get("from"),
    to: url.get("to"),
  };
  const range = timeRange(choice.period, Number(choice.interval), localInputMs(choice.from), localInputMs(choice.to));
  const isAggregate = componentKind === "Aggregate";
  // A custom range still being typed asks for nothing (the last answer stays on screen).
  const params = { bundleId, componentId: component, aggregation, range: range ?? { intervalS: 900, periodMs: 6 * 3_600_000 } };
  const handlers = useComponentPerformance(params, { enabled: range !== null });
  const phases = useAggregatePerformance(params, { enabled: isAggregate && range !== null });
  return (
    <Stack data-testid="telemetry">
      <Group justify="space-between" align="flex-end" wrap="wrap">
        <RangeControls idPrefix="telemetry" value={choice} onChange={(change) => { url.set(change); }} />
        <Stack gap={2}>
          <Text size="xs" fw={500} id="telemetry-aggregation">Service time</Text>
          <SegmentedControl size="xs" data={AGGREGATIONS} value={aggregation} aria-labelledby="telemetry-aggregation"
            onChange={(value) => { url.set({ aggregation: value === "AVG" ? null : value }); }} />
        </Stack>
      </Group>
      {range === null && <Text size="sm" c="dimmed">Pick a start and an end (after it) for the period.</Text>}
      {handlers.isPending ? (range === null ? null : <Loading label="Loading the telemetry…" />)
        : handlers.isError ? <ErrorState error={handlers.error} onRetry={() => void handlers.refetch()} />
        : handlers.data.handlers.length === 0
          ? <Empty>No telemetry from this component in this period yet: its handlers report once they handle messages</Empty>
          : <HandlerCharts data={handlers.data} aggregation={aggregation} />}
      {isAggregate && (
        <Stack gap="xs" data-testid="phases-section">
          <Title order={3} size="h5">Command phases (lock, retrieve, compute, publish)</Title>
          {phases.isPending ? (range === null ? null : <Loading label="Loading the phases…" />)
            : phases.isError ? <ErrorState error={phases.error} onRetry={() => void phases.refetch()} />
            : <PhaseCharts data={phases.data} aggregation={aggregation} />}
        </Stack>
      )}
    </Stack>
  );
}
