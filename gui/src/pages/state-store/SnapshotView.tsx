// An aggregate's latest snapshot: version, the event it was taken at, its state; "no snapshot" is a plain
// empty state (the API's 404), not an error.
import { Stack } from "@mantine/core";
import { ApiError } from "../../api/client";
import { useSnapshot } from "../../api/hooks";
import { JsonView } from "../../components/JsonView";
import { AppLink } from "../../components/links";
import { paths } from "../../components/paths";
import { Facts } from "../../components/Section";
import { Empty, ErrorState, Loading } from "../../components/states";
import { Time } from "../../components/Time";

export function SnapshotView({ aggregateId }: { aggregateId: string }) {
  const snapshot = useSnapshot(aggregateId);
  if (snapshot.isPending) return <Loading label="Looking for a snapshot…" />;
  if (snapshot.isError) {
    if (snapshot.error instanceof ApiError && snapshot.error.status === 404) return <Empty>{snapshot.error.detail}</Empty>;
    return <ErrorState error={snapshot.error} />;
  }
  const s = snapshot.data;
  return (
    <Stack data-testid="snapshot">
      <Facts items={[
        ["Version", s.aggregateVersion],
        ["At event", <AppLink key="e" to={paths.event(s.sequenceNumber)}>{s.sequenceNumber}</AppLink>],
        ["Updated", <Time key="u" value={s.updatedAt} />],
        ["Deleted", s.deleted ? "yes" : "no"],
      ]} />
      <JsonView value={s.state} label="Snapshot state" />
    </Stack>
  );
}

