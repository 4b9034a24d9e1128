// Query and mutation hooks, one per API route the GUI reads or acts on; query keys start with the route's area
// so a mutation invalidates exactly what it changed.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, type QueryValue } from "./client";
import type {
  AggregatePerformance,
  Aggregation,
  BundleDetail,
  BundleItem,
  ClusterView,
  ComponentDetail,
  ComponentItem,
  ComponentPerformance,
  ConsumerItem,
  ConsumerStatus,
  Dashboard,
  DeadEvent,
  DeadQueueConsumed,
  HandlerItem,
  Page,
  PayloadDetail,
  PayloadItem,
  PublicationRate,
  ResetAccepted,
  Snapshot,
  StoredEvent,
} from "./types";

/** The largest page the API serves: lists it cannot filter are read whole (catalogs are small) and filtered here. */
export const ALL = 500;

type Params = Record<string, QueryValue>;

const enc = encodeURIComponent;

export function useDashboard() {
  return useQuery({
    queryKey: ["dashboard"],
    queryFn: ({ signal }) => api<Dashboard>("/dashboard", { signal }),
    refetchInterval: 5000,
  });
}

export function useClusterView() {
  return useQuery({
    queryKey: ["cluster", "view"],
    queryFn: ({ signal }) => api<ClusterView>("/cluster-status/view", { signal }),
  });
}

export function usePayloads(params: Params) {
  return useQuery({
    queryKey: ["catalog", "payloads", params],
    queryFn: ({ signal }) => api<Page<PayloadItem>>("/catalog/payload/", { query: params, signal }),
    placeholderData: keepPreviousData,
  });
}

export function usePayload(name: string) {
  return useQuery({
    queryKey: ["catalog", "payload", name],
    queryFn: ({ signal }) => api<PayloadDetail>(`/catalog/payload/${enc(name)}`, { signal }),
  });
}

export function useComponents(params: Params) {
  return useQuery({
    queryKey: ["catalog", "components", params],
    queryFn: ({ signal }) => api<Page<ComponentItem>>("/catalog/component/", { query: params, signal }),
    placeholderData: keepPreviousData,
  });
}

export function useComponent(name: string, bundleId?: string | null) {
  return useQuery({
    queryKey: ["catalog", "component", name, bundleId ?? null],
    queryFn: ({ signal }) =>
      api<ComponentDetail>(`/catalog/component/${enc(name)}`, { query: { bundleId }, signal }),
  });
}

export function useHandlers(params: Params) {
  return useQuery({
    queryKey: ["catalog", "handlers", params],
    queryFn: ({ signal }) => api<Page<HandlerItem>>("/handler/", { query: params, signal }),
  });
}

export function useBundles() {
  return useQuery({
    queryKey: ["bundles"],
    queryFn: ({ signal }) => api<Page<BundleItem>>("/bundle/", { query: { size: ALL }, signal }),
    refetchInterval: 10_000,
  });
}

export function useBundle(bundleId: string) {
  return useQuery({
    queryKey: ["bundles", bundleId],
    queryFn: ({ signal }) => api<BundleDetail>(`/bundle/${enc(bundleId)}`, { signal }),
  });
}

export function useDeleteBundle() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (bundleId: string) => api<undefined>(`/bundle/${enc(bundleId)}`, { method: "DELETE" }),
    onSuccess: () => client.invalidateQueries({ queryKey: ["bundles"] }),
  });
}

export function useConsumers() {
  return useQuery({
    queryKey: ["consumers"],
    queryFn: ({ signal }) => api<Page<ConsumerItem>>("/consumer/", { query: { size: ALL }, signal }),
    refetchInterval: 10_000,
  });
}

/** A consumer's live status, re-read every `every` ms (faster while a reset replays). */
export function useConsumerStatus(consumerId: string, every: number) {
  return useQuery({
    queryKey: ["consumers", consumerId, "status"],
    queryFn: ({ signal }) => api<ConsumerStatus>(`/consumer/${enc(consumerId)}`, { signal }),
    refetchInterval: every,
    retry: false,
  });
}

export function useDeadEvents(consumerId: string, page: number, size: number) {
  return useQuery({
    queryKey: ["consumers", consumerId, "dead", page, size],
    queryFn: ({ signal }) =>
      api<Page<DeadEvent>>(`/consumer/${enc(consumerId)}/event`, { query: { page, size }, signal }),
    refetchInterval: 5000,
    placeholderData: keepPreviousData,
    retry: false,
  });
}

/** The admin actions on a consumer; each refreshes its status and dead queue. */
export function useConsumerActions(consumerId: string) {
  const client = useQueryClient();
  const base = `/consumer/${enc(consumerId)}`;
  const refresh = () => client.invalidateQueries({ queryKey: ["consumers", consumerId] });
  return {
    setRetry: useMutation({
      mutationFn: ({ sequenceNumber, retry }: { sequenceNumber: number; retry: boolean }) =>
        api<undefined>(`${base}/event/${sequenceNumber}`, { method: "PUT", query: { retry } }),
      onSettled: refresh,
    }),
    deleteDead: useMutation({
      mutationFn: (sequenceNumber: number) => api<undefined>(`${base}/event/${sequenceNumber}`, { method: "DELETE" }),
      onSettled: refresh,
    }),
    consumeDeadQueue: useMutation({
      mutationFn: () => api<DeadQueueConsumed>(`${base}/consume-dead-queue`, { method: "POST" }),
      onSettled: refresh,
    }),
    reset: useMutation({
      mutationFn: (fromSequenceNumber: number) =>
        api<ResetAccepted>(`${base}/reset`, { method: "POST", body: { fromSequenceNumber } }),
      onSettled: refresh,
    }),
    setEnabled: useMutation({
      mutationFn: (enabled: boolean) =>
        api<ConsumerStatus>(`${base}/${enabled ? "enable" : "disable"}`, { method: "POST" }),
      onSettled: refresh,
    }),
  };
}

export function useEvents(params: Params, options: { enabled?: boolean } = {}) {
  return useQuery({
    queryKey: ["events", params],
    queryFn: ({ signal }) => api<Page<StoredEvent>>("/system-state-store/event", { query: params, signal }),
    placeholderData: keepPreviousData,
    enabled: options.enabled ?? true,
  });
}

export function useEvent(seq: number) {
  return useQuery({
    queryKey: ["events", "one", seq],
    queryFn: ({ signal }) => api<StoredEvent>(`/system-state-store/event/${seq}`, { signal }),
  });
}

export function useSnapshot(aggregateId: string) {
  return useQuery({
    queryKey: ["snapshot", aggregateId],
    queryFn: ({ signal }) => api<Snapshot>("/system-state-store/snapshot", { query: { aggregateId }, signal }),
    enabled: aggregateId !== "",
    retry: false,
  });
}

/** A time range of charts in buckets of `intervalS` seconds: `periodMs` up to now, or from `fromMs` to `toMs`. */
export type TimeRange = { intervalS: number } & ({ periodMs: number } | { fromMs: number; toMs: number });

/** `from`/`to` (RFC 3339) of a range. One up to now ends at the next bucket boundary after now: buckets fall on
 * whole minutes, quarters, hours, so a refresh shifts the chart by whole buckets instead of redrawing every bar a
 * little aside. */
export function rangeParams(range: TimeRange): { from: string; to: string } {
  if ("fromMs" in range) return { from: new Date(range.fromMs).toISOString(), to: new Date(range.toMs).toISOString() };
  const step = range.intervalS * 1000;
  const to = Math.ceil(Date.now() / step) * step;
  return { from: new Date(to - range.periodMs).toISOString(), to: new Date(to).toISOString() };
}

/** Telemetry moves on every report (seconds apart): charts refresh twice a minute. */
const CHART_REFRESH_MS = 30_000;

export function usePublicationRate(range: TimeRange, options: { enabled?: boolean } = {}) {
  return useQuery({
    queryKey: ["dashboard", "publication-rate", range],
    queryFn: ({ signal }) =>
      api<PublicationRate>("/dashboard/publication-rate", {
        query: { interval: range.intervalS, ...rangeParams(range) },
        signal,
      }),
    placeholderData: keepPreviousData,
    refetchInterval: CHART_REFRESH_MS,
    enabled: options.enabled,
  });
}

export interface PerformanceParams {
  bundleId: string;
  componentId: string;
  aggregation: Aggregation;
  range: TimeRange;
}

function performanceQuery({ bundleId, componentId, aggregation, range }: PerformanceParams) {
  return { bundleId, componentId, aggregation, interval: range.intervalS, ...rangeParams(range) };
}

export function useComponentPerformance(params: PerformanceParams, options: { enabled?: boolean } = {}) {
  return useQuery({
    queryKey: ["performance", "component", params],
    queryFn: ({ signal }) =>
      api<ComponentPerformance>("/performance/component", { query: performanceQuery(params), signal }),
    placeholderData: keepPreviousData,
    refetchInterval: CHART_REFRESH_MS,
    enabled: options.enabled,
  });
}

export function useAggregatePerformance(params: PerformanceParams, options: { enabled?: boolean } = {}) {
  return useQuery({
    queryKey: ["performance", "aggregate", params],
    queryFn: ({ signal }) =>
      api<AggregatePerformance>("/performance/aggregate", { query: performanceQuery(params), signal }),
    placeholderData: keepPreviousData,
    refetchInterval: CHART_REFRESH_MS,
    enabled: options.enabled,
  });
}
