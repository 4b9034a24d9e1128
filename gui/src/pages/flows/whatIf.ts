// What-if values of the flows page and the request that evaluates a selection with them: only the values the
// user changed are sent, so everything else keeps its measured value.
import type { EvaluateRequest, Selection } from "./api";

export interface WhatIf {
  /** Milliseconds between two requests of every source not set in `sources` (null: the server's default). */
  interArrivalMs: number | null;
  /** Source key → milliseconds between two requests. */
  sources: Record<string, number>;
  /** Handler id → mean service time (ms), for every copy of the handler. */
  serviceTimes: Record<string, number>;
  /** Handler id → sent payload → requests per handling. */
  probabilities: Record<string, Record<string, number>>;
  /** Bundle id → instance count. */
  instances: Record<string, number>;
}

export const NO_WHAT_IF: WhatIf = { interArrivalMs: null, sources: {}, serviceTimes: {}, probabilities: {}, instances: {} };

/** How many values differ from the measured ones. */
export function changes(whatIf: WhatIf): number {
  return (
    (whatIf.interArrivalMs === null ? 0 : 1) +
    Object.keys(whatIf.sources).length +
    Object.keys(whatIf.serviceTimes).length +
    Object.values(whatIf.probabilities).reduce((n, sent) => n + Object.keys(sent).length, 0) +
    Object.keys(whatIf.instances).length
  );
}

/** The body of `POST /api/flows/evaluate` for `selection` with these values. */
export function evaluateRequest(selection: Selection, whatIf: WhatIf): EvaluateRequest {
  const request: EvaluateRequest = {
    selection: { kind: selection.kind, value: selection.value },
    interArrivalMs: whatIf.interArrivalMs ?? 1000,
    sourceInterArrivalMs: whatIf.sources,
    serviceTimesMs: whatIf.serviceTimes,
    invocationProbabilities: whatIf.probabilities,
    instances: whatIf.instances,
  };
  return request;
}

/** `record` with `key` set to `value`, or without it when `value` is null. */
export function withValue<T>(record: Record<string, T>, key: string, value: T | null): Record<string, T> {
  const next = { ...record };
  if (value === null) {
    // A what-if left empty goes back to the measured value.
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete
    delete next[key];
  } else {
    next[key] = value;
  }
  return next;
}

/** The probability `sender` sends `sent` with, if set. */
export function probability(whatIf: WhatIf, sender: string, sent: string): number | null {
  return whatIf.probabilities[sender]?.[sent] ?? null;
}

export function withProbability(whatIf: WhatIf, sender: string, sent: string, value: number | null): WhatIf {
  const sentBy = withValue(whatIf.probabilities[sender] ?? {}, sent, value);
  const probabilities =
    Object.keys(sentBy).length === 0 ? withValue(whatIf.probabilities, sender, null) : { ...whatIf.probabilities, [sender]: sentBy };
  return { ...whatIf, probabilities };
}
