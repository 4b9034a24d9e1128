// The snapshot browser: an aggregate's latest snapshot by its id (a deep link: ?aggregateId=), and the aggregates
// of the latest events to pick from, each with whether it has a snapshot.
import { Autocomplete, Badge, Stack, Text } from "@mantine/core";
import { useDebouncedCallback } from "@mantine/hooks";
import { useState } from "react";
import { useEvents, useSnapshot } from "../../api/hooks";
import { DataTable, Pager, type Column } from "../../components/DataTable";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { pageOf } from "../../components/paging";
import { paths } from "../../components/paths";
import { Section } from "../../components/Section";
import { QueryView } from "../../components/states";
import { Time } from "../../components/Time";
import { useUrlState } from "../../components/urlState";
import { SnapshotView } from "./SnapshotView";

interface Recent {
  aggregateId: string;
  lastEvent: string;
  lastAt: string;
  events: number;
}

function SnapshotCell({ aggregateId }: { aggregateId: string }) {
  const snapshot = useSnapshot(aggregateId);
  if (snapshot.isPending) return <Text size="sm" c="dimmed">…</Text>;
  if (snapshot.isError) return <Text size="sm" c="dimmed">none</Text>;
  return <Badge variant="light">version {snapshot.data.aggregateVersion}</Badge>;
}

export default function SnapshotsPage() {
  const state = useUrlState(10);
  const chosen = state.get("aggregateId");
  const [typed, setTyped] = useState(chosen);
  const [shown, setShown] = useState(chosen);
  if (chosen !== shown) {
    // A link chose another aggregate: the box follows the URL.
    setShown(chosen);
    setTyped(chosen);
  }
  const commit = useDebouncedCallback((value: string) => { state.set({ aggregateId: value.trim() }); }, 300);
  const recent = useEvents({ size: 500, sort: "desc" });
  const aggregates: Recent[] = [];
  const seen = new Map<string, Recent>();
  for (const event of recent.data?.items ?? []) {
    if (!event.aggregateId) continue;
    const known = seen.get(event.aggregateId);
    if (known) known.events += 1;
    else {
      const row = { aggregateId: event.aggregateId, lastEvent: event.eventName, lastAt: event.timestamp, events: 1 };
      seen.set(event.aggregateId, row);
      aggregates.push(row);
    }
  }
  const columns: Column<Recent>[] = [
    { key: "id", header: "Aggregate", cell: (r) => <AppLink to={`/state-store/snapshots?aggregateId=${encodeURIComponent(r.aggregateId)}`}>{r.aggregateId}</AppLink> },
    { key: "last", header: "Latest event", cell: (r) => r.lastEvent },
    { key: "at", header: "At", cell: (r) => <Time value={r.lastAt} /> },
    { key: "snapshot", header: "Snapshot", cell: (r) => <SnapshotCell aggregateId={r.aggregateId} /> },
    { key: "timeline", header: "Timeline", cell: (r) => <AppLink to={paths.aggregate(r.aggregateId)}>events</AppLink> },
  ];
  return (
    <Stack>
      <PageTitle title="Snapshots" kicker="System state store" description="Aggregates' latest snapshots (taken every so many events, if at all)" />
      <Autocomplete
        label="Aggregate id"
        placeholder="Type or pick an aggregate"
        w={420}
        data={aggregates.slice(0, 50).map((a) => a.aggregateId)}
        value={typed}
        onChange={(value) => { setTyped(value); commit(value); }}
      />
      {chosen && (
        <Section title={`Snapshot of ${chosen}`} testId="snapshot-section">
          <SnapshotView aggregateId={chosen} />
        </Section>
      )}
      <Section title="Aggregates of the latest events" testId="recent-aggregates">
        <QueryView query={recent} loading="Loading the latest events…">
          {() => (
            <>
              <DataTable caption="Aggregates of the latest events" columns={columns}
                rows={pageOf(aggregates, state.page, state.size)} rowKey={(r) => r.aggregateId} empty="No aggregate yet" />
              <Pager page={state.page} size={state.size} total={aggregates.length} label="aggregates"
                onChange={(p, s) => { state.set({ page: p, size: s }); }} />
            </>
          )}
        </QueryView>
      </Section>
    </Stack>
  );
}
