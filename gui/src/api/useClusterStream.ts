// The cluster's membership, live: GET /api/cluster-status/stream sends the whole view first, then each change
// (instances joining, leaving, enabled, disabled; servers up and down), applied here to the view in hand.
import { useEffect, useState } from "react";
import { followStream, type StreamState } from "./sse";
import type { ClusterView, InstanceView, ServerView } from "./types";

export interface ClusterChange {
  at: number;
  event: string;
  subject: string;
}

export interface ClusterStream {
  view: ClusterView | null;
  state: StreamState;
  error: string | null;
  changes: ClusterChange[];
}

const instanceKey = (i: InstanceView) => `${i.bundleId}/${i.instanceId}/${i.serverId}`;

export function applyChange(view: ClusterView, event: string, data: unknown): ClusterView {
  switch (event) {
    case "join":
    case "enable":
    case "disable": {
      const instance = data as InstanceView;
      const others = view.instances.filter((i) => instanceKey(i) !== instanceKey(instance));
      return { ...view, instances: [...others, instance].sort((a, b) => instanceKey(a).localeCompare(instanceKey(b))) };
    }
    case "leave": {
      const instance = data as InstanceView;
      return { ...view, instances: view.instances.filter((i) => instanceKey(i) !== instanceKey(instance)) };
    }
    case "server-up":
    case "server-down": {
      const server = data as ServerView;
      const others = view.servers.filter((s) => s.serverId !== server.serverId);
      return { ...view, servers: [...others, server].sort((a, b) => a.serverId.localeCompare(b.serverId)) };
    }
    default:
      return view;
  }
}

function subjectOf(event: string, data: unknown): string {
  if (event.startsWith("server")) return (data as ServerView).serverId;
  const instance = data as InstanceView;
  return `${instance.bundleId}/${instance.instanceId}`;
}

/** Follow the cluster's membership while mounted. */
export function useClusterStream(): ClusterStream {
  const [stream, setStream] = useState<ClusterStream>({ view: null, state: "connecting", error: null, changes: [] });
  useEffect(() => {
    const controller = new AbortController();
    void followStream(
      "/cluster-status/stream",
      {
        onState: (state, error) => { setStream((s) => ({ ...s, state, error: error ?? (state === "live" ? null : s.error) })); },
        onEvent: (message) => {
          const data: unknown = JSON.parse(message.data);
          const event = message.event ?? "message";
          setStream((s) => {
            if (event === "view") return { ...s, view: data as ClusterView };
            if (!s.view) return s;
            const change = { at: Date.now(), event, subject: subjectOf(event, data) };
            return { ...s, view: applyChange(s.view, event, data), changes: [change, ...s.changes].slice(0, 50) };
          });
        },
      },
      controller.signal,
    );
    return () => { controller.abort(); };
  }, []);
  return stream;
}
