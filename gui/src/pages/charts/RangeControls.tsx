// The period and interval pickers of a chart (and a custom from/to with the browser's own date-time inputs), the
// same on every page that charts time buckets.
import { Group, Select, TextInput } from "@mantine/core";
import { intervalsFor, localInputMs, periodMs, PERIODS } from "./range";

export interface RangeChoice {
  period: string;
  interval: string;
  /** `datetime-local` values of a custom period. */
  from: string;
  to: string;
}

export function RangeControls({ value, onChange, idPrefix }: {
  value: RangeChoice;
  onChange: (change: Partial<RangeChoice>) => void;
  idPrefix: string;
}) {
  const length = periodMs(value.period, localInputMs(value.from), localInputMs(value.to));
  const intervals = intervalsFor(length);
  const pickPeriod = (period: string | null) => {
    if (!period) return;
    // Keep the interval when it still fits the new period; otherwise the finest one that does.
    const fits = intervalsFor(periodMs(period, localInputMs(value.from), localInputMs(value.to)));
    const keep = fits.find((i) => i.value === value.interval && !i.disabled);
    onChange({ period, interval: keep ? value.interval : (fits.find((i) => !i.disabled)?.value ?? value.interval) });
  };
  return (
    <Group gap="sm" align="flex-end" wrap="wrap">
      <Select id={`${idPrefix}-period`} label="Period" data={PERIODS.map(({ value: v, label }) => ({ value: v, label }))}
        value={value.period} onChange={pickPeriod} allowDeselect={false} w={180} size="xs" />
      {value.period === "custom" && (
        <>
          <TextInput id={`${idPrefix}-from`} type="datetime-local" label="From" size="xs" value={value.from}
            onChange={(e) => { onChange({ from: e.currentTarget.value }); }} />
          <TextInput id={`${idPrefix}-to`} type="datetime-local" label="To" size="xs" value={value.to}
            onChange={(e) => { onChange({ to: e.currentTarget.value }); }}
            error={length === 0 && value.from && value.to ? "must be after From" : undefined} />
        </>
      )}
      <Select id={`${idPrefix}-interval`} label="Interval" data={intervals} value={value.interval}
        onChange={(interval) => { if (interval) onChange({ interval }); }} allowDeselect={false} w={110} size="xs" />
    </Group>
  );
}
