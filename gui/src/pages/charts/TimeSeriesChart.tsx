// A time-series chart drawn by uPlot on a canvas: bars or lines over time buckets, one y axis per unit (the first
// on the left, the second on the right), the theme's colours, and the hovered bucket's values read out below in
// text. The canvas is an image to assistive technology (its label says what it shows); every page that draws one
// also shows its figures as text or a table.
import { Box, Group, Text, useComputedColorScheme, useMantineTheme } from "@mantine/core";
import { useElementSize } from "@mantine/hooks";
import { useEffect, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartSeries {
  label: string;
  /** One value per timestamp; `null` leaves a gap (a bucket without a sample). */
  values: (number | null)[];
  /** A Mantine colour name (`blue`, `teal`…). */
  color: string;
  unit: string;
  bars?: boolean;
}

export interface TimeSeriesChartProps {
  /** What the chart shows, for screen readers (its figures are also on the page as text). */
  label: string;
  /** Bucket starts, epoch ms. */
  timestamps: number[];
  series: ChartSeries[];
  /** The x axis spans the whole period even where no bucket has data. */
  fromMs: number;
  toMs: number;
  height?: number;
  testId?: string;
}

const time = new Intl.DateTimeFormat(undefined, { month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
// uPlot's sides (its const enum cannot be read under isolatedModules).
const SIDE = { bottom: 2, right: 1, left: 3 } as const;
type Place = keyof typeof SIDE;
const value = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });

export default function TimeSeriesChart({ label, timestamps, series, fromMs, toMs, height = 200, testId }: TimeSeriesChartProps) {
  const { ref: sizeRef, width } = useElementSize();
  const target = useRef<HTMLDivElement>(null);
  const theme = useMantineTheme();
  const dark = useComputedColorScheme("light") === "dark";
  const [hovered, setHovered] = useState<number | null>(null);

  // The chart is made again when what it draws changes; a new width only resizes it (no flash of an empty canvas).
  const chart = useRef<uPlot | null>(null);
  const drawn = width > 0;
  useEffect(() => {
    const element = target.current;
    if (!element || !drawn) return;
    const text = dark ? theme.colors.dark[1] : theme.colors.gray[7];
    const grid = dark ? theme.colors.dark[4] : theme.colors.gray[3];
    const shade = dark ? 4 : 6;
    const units = [...new Set(series.map((s) => s.unit))];
    const axis = (place: Place, scale?: string, unit?: string): uPlot.Axis => ({
      // uPlot reads a missing scale as the x axis's; an explicit undefined would hide the time axis.
      ...(scale ? { scale, label: unit, labelSize: 18 } : {}),
      // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment -- uPlot's Side values, as numbers
      side: SIDE[place],
      stroke: text,
      grid: { stroke: grid, width: 1, show: place !== "right" },
      ticks: { stroke: grid, width: 1 },
      size: place === "bottom" ? 40 : 56,
      font: "11px sans-serif",
      labelFont: "11px sans-serif",
    });
    const options: uPlot.Options = {
      width: element.clientWidth || 300,
      height,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: [fromMs / 1000, toMs / 1000] },
        ...Object.fromEntries(units.map((u) => [u, { range: (_u: uPlot, _min: number, max: number) => [0, max > 0 ? max * 1.1 : 1] as uPlot.Range.MinMax }])),
      },
      axes: [axis("bottom"), ...units.map((u, i) => axis(i === 0 ? "left" : "right", u, u))],
      series: [
        {},
        ...series.map((s): uPlot.Series => {
          const colour = theme.colors[s.color]?.[shade] ?? s.color;
          return {
            label: s.label,
            scale: s.unit,
            stroke: colour,
            width: s.bars ? 1 : 2,
            fill: s.bars ? `${colour}99` : undefined,
            paths: s.bars ? uPlot.paths.bars?.({ size: [0.7, 48], align: 1 }) : undefined,
            points: { show: !s.bars, size: 5, fill: colour },
            spanGaps: false,
          };
        }),
      ],
      hooks: { setCursor: [(u) => { setHovered(u.cursor.idx ?? null); }] },
    };
    // An empty bucket draws no bar (a zero-height bar would draw a stroke along the axis).
    const values = series.map((s) => (s.bars ? s.values.map((v) => (v === 0 ? null : v)) : s.values));
    const made = new uPlot(options, [timestamps.map((t) => t / 1000), ...values], element);
    chart.current = made;
    return () => {
      made.destroy();
      chart.current = null;
    };
  }, [drawn, height, dark, theme, series, timestamps, fromMs, toMs]);
  useEffect(() => {
    if (width > 0) chart.current?.setSize({ width, height });
  }, [width, height]);

  const at = hovered !== null && hovered < timestamps.length ? hovered : null;
  return (
    <Box ref={sizeRef} data-testid={testId}>
      <div ref={target} role="img" aria-label={label} style={{ minHeight: height }} />
      <Group gap="md" mt={4} wrap="wrap" style={{ minHeight: 22 }}>
        {series.map((s) => (
          <Group key={s.label} gap={6} wrap="nowrap">
            <Box w={10} h={10} style={{ borderRadius: 2, background: `var(--mantine-color-${s.color}-6)` }} aria-hidden />
            <Text size="xs">
              {s.label}
              {at !== null && `: ${s.values[at] === null ? "—" : value.format(s.values[at] ?? 0)} ${s.unit}`}
            </Text>
          </Group>
        ))}
        {at !== null && <Text size="xs" c="dimmed">{time.format(new Date(timestamps[at] ?? 0))}</Text>}
      </Group>
    </Box>
  );
}
