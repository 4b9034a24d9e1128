// The flows API as the flows page reads it: a selection's flows evaluated with the measured values (GET
// /api/flows/…) and the same selection evaluated with what-if values (POST /api/flows/evaluate).
import { keepPreviousData, useMutation, useQuery } from "@tanstack/react-query";
import { api } from "../../api/client";
import type { components } from "../../api/schema";

type Schemas = components["schemas"];

export type FlowModel = Schemas["FlowModel"];
export type Station = Schemas["StationItem"];
export type Source = Schemas["SourceItem"];
export type FlowEdge = Schemas["EdgeItem"];
export type FlowItem = Schemas["FlowItem"];
export type BundleLoad = Schemas["BundleLoadItem"];
export type EvaluateRequest = Schemas["EvaluateRequest"];
export type SelectionKind = Schemas["SelectionKind"];

/** What the page shows the flows of: everything, or what one handler, payload, component or bundle starts. */
export interface Selection {
  kind: SelectionKind;
  value: string;
}

/** The kinds a selection may name in the page's URL (`/flows?payload=X`), in the order the side list offers them. */
export const SELECTION_KINDS = ["handler", "payload", "component", "bundle"] as const;

/** The page's URL for a selection, with the performance evaluation on or off. */
export function flowsUrl(selection: Selection, evaluation: boolean): string {
  const params = new URLSearchParams();
  if (selection.kind !== "all") params.set(selection.kind, selection.value);
  if (evaluation) params.set("evaluate", "1");
  const query = params.toString();
  return query ? `/flows?${query}` : "/flows";
}

const ROUTE: Record<Exclude<SelectionKind, "all">, string> = {
  handler: "handler",
  payload: "payload",
  component: "component",
  bundle: "bundle",
};

function path(selection: Selection): string {
  if (selection.kind === "all") return "/flows/";
  return `/flows/${ROUTE[selection.kind]}/${encodeURIComponent(selection.value)}`;
}

/** The selection's flows as measured (the server's default inter-arrival time for every source). */
export function useFlows(selection: Selection) {
  return useQuery({
    queryKey: ["flows", selection.kind, selection.value],
    queryFn: ({ signal }) => api<FlowModel>(path(selection), { signal }),
    placeholderData: keepPreviousData,
    // Telemetry moves slowly (aged means): a minute-old model reads the same.
    staleTime: 15_000,
  });
}

/** Evaluate a selection with what-if values (it changes nothing on the server, so a viewer may). */
export function useEvaluate() {
  return useMutation({
    mutationFn: (request: EvaluateRequest) => api<FlowModel>("/flows/evaluate", { method: "POST", body: request }),
  });
}
