// The time ranges a chart offers: a period up to now (or from/to picked by hand) cut in buckets of an interval,
// with only the intervals that give a drawable number of buckets for the period.
import type { TimeRange } from "../../api/hooks";

export const PERIODS = [
  { value: "15m", label: "Last 15 minutes", ms: 15 * 60_000 },
  { value: "1h", label: "Last hour", ms: 3_600_000 },
  { value: "6h", label: "Last 6 hours", ms: 6 * 3_600_000 },
  { value: "24h", label: "Last 24 hours", ms: 24 * 3_600_000 },
  { value: "7d", label: "Last 7 days", ms: 7 * 24 * 3_600_000 },
  { value: "custom", label: "From … to …", ms: 0 },
];

export const INTERVALS = [
  { value: "10", label: "10 s" },
  { value: "60", label: "1 min" },
  { value: "300", label: "5 min" },
  { value: "900", label: "15 min" },
  { value: "3600", label: "1 h" },
  { value: "21600", label: "6 h" },
  { value: "86400", label: "1 day" },
];

/** More buckets than this are a smear at any screen width (the API's limit is 10,000). */
export const MAX_DRAWN_BUCKETS = 1500;

/** The period's length in ms (a custom one's from its ends; 0 when they are missing or reversed). */
export function periodMs(period: string, fromMs: number | null, toMs: number | null): number {
  if (period === "custom") return fromMs !== null && toMs !== null && toMs > fromMs ? toMs - fromMs : 0;
  return PERIODS.find((p) => p.value === period)?.ms ?? 0;
}

/** The intervals worth offering for a period: at least one bucket, at most MAX_DRAWN_BUCKETS. */
export function intervalsFor(lengthMs: number) {
  return INTERVALS.map((i) => {
    const buckets = lengthMs / (Number(i.value) * 1000);
    return { ...i, disabled: lengthMs > 0 && (buckets > MAX_DRAWN_BUCKETS || buckets < 1) };
  });
}

/** The range the API is asked for; `null` while a custom one is incomplete. */
export function timeRange(period: string, intervalS: number, fromMs: number | null, toMs: number | null): TimeRange | null {
  if (period === "custom") return fromMs !== null && toMs !== null && toMs > fromMs ? { intervalS, fromMs, toMs } : null;
  const ms = periodMs(period, null, null);
  return ms > 0 ? { intervalS, periodMs: ms } : null;
}

/** Epoch ms of a `datetime-local` input's value (local time), or null. */
export function localInputMs(text: string): number | null {
  if (!text) return null;
  const ms = new Date(text).getTime();
  return Number.isNaN(ms) ? null : ms;
}

/** Bucket starts (epoch ms) of the answer's `[from, to)`: the x of every point the API returns. */
export function bucketStarts(from: string, to: string, intervalS: number): number[] {
  const start = new Date(from).getTime();
  const end = new Date(to).getTime();
  const step = intervalS * 1000;
  const starts: number[] = [];
  for (let t = start; t < end && starts.length <= 10_000; t += step) starts.push(t);
  return starts;
}
