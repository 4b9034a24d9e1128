// A moment as the API gives it (ISO 8601, UTC) shown in the browser's time zone, with the exact value on hover.
import { formatTime } from "./format";

export function Time({ value }: { value: string | null | undefined }) {
  if (!value) return <>—</>;
  return <time dateTime={value} title={value} style={{ whiteSpace: "nowrap" }}>{formatTime(value)}</time>;
}
