// The cluster, live: its servers and the bundle instances connected to them, from the server-sent events of
// /api/cluster-status/stream (a badge says whether the stream is live), with the latest changes as they come.
// An admin may kill an instance of a bundle the server runs (its bundle's page spawns and sets the bounds).
import { Badge, Group, SimpleGrid, Stack, Text, Timeline } from "@mantine/core";
import { useDeployedBundles } from "../../api/deployment";
import { useAuth } from "../../api/useAuth";
import { useClusterStream } from "../../api/useClusterStream";
import type { InstanceView, ServerView } from "../../api/types";
import { OnlineBadge } from "../../components/Badges";
import { DataTable, type Column } from "../../components/DataTable";
import { FilterBar, SearchFilter } from "../../components/Filters";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { paths } from "../../components/paths";
import { Section } from "../../components/Section";
import { ErrorState, Empty, Loading } from "../../components/states";
import { Time } from "../../components/Time";
import { useUrlState } from "../../components/urlState";
import { KillInstanceButton } from "./KillInstanceButton";

const serverColumns: Column<ServerView>[] = [
  { key: "id", header: "Server", cell: (s) => <Text size="sm" fw={500}>{s.serverId}</Text> },
  { key: "state", header: "State", cell: (s) => <OnlineBadge online={s.online} /> },
  { key: "url", header: "HTTP", cell: (s) => s.httpUrl ?? "—" },
  { key: "started", header: "Started", cell: (s) => <Time value={s.startedAt} /> },
  { key: "seen", header: "Last heartbeat", cell: (s) => <Time value={s.lastSeenAt} /> },
];

const instanceColumns: Column<InstanceView>[] = [
  { key: "bundle", header: "Bundle", cell: (i) => <AppLink to={paths.bundle(i.bundleId)}>{i.bundleId}</AppLink> },
  { key: "instance", header: "Instance", cell: (i) => <Text size="sm" ff="monospace">{i.instanceId}</Text> },
  { key: "version", header: "Version", cell: (i) => i.bundleVersion },
  { key: "server", header: "Server", cell: (i) => i.serverId },
  { key: "enabled", header: "Status", cell: (i) => <OnlineBadge online={i.enabled} onLabel="available" offLabel="disabled" /> },
  { key: "joined", header: "Joined", cell: (i) => <Time value={i.joinedAt} /> },
];

const STATE_COLOR = { live: "green", connecting: "gray", reconnecting: "orange" } as const;

export default function ClusterPage() {
  const { view, state, error, changes } = useClusterStream();
  const url = useUrlState();
  const q = url.get("q").toLowerCase();
  const instances = (view?.instances ?? []).filter((i) =>
    !q || i.bundleId.toLowerCase().includes(q) || i.instanceId.toLowerCase().includes(q) || i.serverId.toLowerCase().includes(q));
  const bundles = new Set(instances.map((i) => i.bundleId));
  const { isAdmin } = useAuth();
  const deployed = useDeployedBundles([...new Set((view?.instances ?? []).map((i) => i.bundleId))].sort(), isAdmin);
  const columns: Column<InstanceView>[] = isAdmin ? [...instanceColumns, {
    key: "kill",
    header: <span className="sr-only">Actions</span>,
    cell: (i) => deployed.has(i.bundleId) ? <KillInstanceButton bundleId={i.bundleId} instanceId={i.instanceId} /> : null,
  }] : instanceColumns;
  return (
    <Stack>
      <PageTitle title="Cluster" kicker="Overview" description="Servers and bundle instances, as they join and leave">
        <Badge color={STATE_COLOR[state]} variant="dot" size="lg" data-testid="stream-state">{state}</Badge>
      </PageTitle>
      {error && state !== "live" && <ErrorState title="The live stream was interrupted" error={new Error(error)} />}
      {!view ? <Loading label="Connecting to the cluster…" /> : (
        <Stack>
          <Section title={`Servers (${view.servers.length})`} testId="servers">
            <DataTable caption="Servers" columns={serverColumns} rows={view.servers} rowKey={(s) => s.serverId} empty="No server" />
          </Section>
          <Section title={`Bundle instances (${instances.length} of ${bundles.size} bundles)`} testId="instances">
            <FilterBar>
              <SearchFilter state={url} label="Search instances" placeholder="Bundle, instance or server" />
            </FilterBar>
            <DataTable caption="Bundle instances" columns={columns} rows={instances}
              rowKey={(i) => `${i.bundleId}/${i.instanceId}/${i.serverId}`} empty="No instance online" />
          </Section>
          <SimpleGrid cols={{ base: 1, md: 2 }}>
            <Section title="Latest changes">
              {changes.length === 0 ? <Empty>No change since this page opened</Empty> : (
                <Timeline bulletSize={14} lineWidth={2}>
                  {changes.slice(0, 10).map((c) => (
                    <Timeline.Item key={`${c.at}-${c.event}-${c.subject}`} title={`${c.event} ${c.subject}`}>
                      <Text size="xs" c="dimmed">{new Date(c.at).toLocaleTimeString()}</Text>
                    </Timeline.Item>
                  ))}
                </Timeline>
              )}
            </Section>
            <Section title="Consumers">
              <Group><Text size="sm">Each consumer's status, lag and dead events: <AppLink to="/consumers">Consumers</AppLink></Text></Group>
            </Section>
          </SimpleGrid>
        </Stack>
      )}
    </Stack>
  );
}
