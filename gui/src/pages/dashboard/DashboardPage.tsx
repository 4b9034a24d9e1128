// The dashboard: /api/dashboard's figures at a glance, each one a link into the page that lists what it counts.
import { Anchor, Badge, Card, Group, SimpleGrid, Stack, Text, Title } from "@mantine/core";
import { lazy, Suspense, type ReactNode } from "react";
import { Link } from "react-router";
import { useDashboard } from "../../api/hooks";
import { number } from "../../components/format";
import { PageTitle } from "../../components/PageTitle";
import { Loading, QueryView } from "../../components/states";

const PublicationRateChart = lazy(() => import("./PublicationRateChart"));



function Figure({ label, value, to, detail }: { label: string; value: ReactNode; to: string; detail?: ReactNode }) {
  return (
    <Card withBorder padding="md" radius="md">
      <Text size="xs" tt="uppercase" fw={700} c="dimmed">{label}</Text>
      <Anchor component={Link} to={to} fz={28} fw={700} underline="hover" data-testid={`figure-${label}`}>
        {value}
      </Anchor>
      {detail && <Text size="sm" c="dimmed">{detail}</Text>}
    </Card>
  );
}

function KindBadges({ byKind, path }: { byKind: Record<string, number>; path: string }) {
  return (
    <Group gap={6}>
      {Object.entries(byKind).map(([kind, count]) => (
        <Badge
          key={kind}
          component={Link}
          to={`${path}?kind=${encodeURIComponent(kind)}`}
          variant="light"
          style={{ cursor: "pointer", textTransform: "none" }}
        >
          {kind} {count}
        </Badge>
      ))}
    </Group>
  );
}

export default function DashboardPage() {
  const query = useDashboard();
  return (
    <Stack>
      <PageTitle
        title="Dashboard"
        kicker={query.data ? `${query.data.clusterName} · server ${query.data.serverId} · v${query.data.version}` : "Cluster"}
      />
      <QueryView query={query} loading="Loading the dashboard…">
        {(d) => (
          <Stack>
            <SimpleGrid cols={{ base: 2, sm: 3, lg: 5 }}>
              <Figure label="Servers" value={`${d.servers.online}/${d.servers.total}`} to="/cluster" detail="online / known" />
              <Figure label="Bundles" value={`${d.bundles.online}/${d.bundles.total}`} to="/bundles" detail="online / known" />
              <Figure label="Instances" value={number.format(d.instances)} to="/cluster" detail="bundle instances online" />
              <Figure label="Components" value={number.format(d.components.total)} to="/components" />
              <Figure label="Payloads" value={number.format(d.payloads.total)} to="/payloads" />
              <Figure label="Handlers" value={number.format(d.handlers)} to="/graph" />
              <Figure label="Events" value={number.format(d.events)} to="/state-store/events" detail={`head #${d.head}`} />
              <Figure label="Aggregates" value={number.format(d.aggregates)} to="/state-store/snapshots" />
              <Figure
                label="Publication rate"
                value={`${d.publicationRate.toFixed(2)}/s`}
                to="/state-store/events"
                detail={`events over the last ${d.publicationWindowSeconds} s`}
              />
              <Figure label="Consumers" value="→" to="/consumers" detail="status, lag, dead events" />
            </SimpleGrid>
            <SimpleGrid cols={{ base: 1, md: 2 }}>
              <Card withBorder radius="md">
                <Title order={2} size="h5" mb="xs">Components by kind</Title>
                <KindBadges byKind={d.components.byKind} path="/components" />
              </Card>
              <Card withBorder radius="md">
                <Title order={2} size="h5" mb="xs">Payloads by kind</Title>
                <KindBadges byKind={d.payloads.byKind} path="/payloads" />
              </Card>
            </SimpleGrid>
            <Card withBorder radius="md">
              <Title order={2} size="h5" mb="xs">Publication rate</Title>
              <Suspense fallback={<Loading />}>
                <PublicationRateChart rate={d.publicationRate} windowSeconds={d.publicationWindowSeconds} />
              </Suspense>
            </Card>
          </Stack>
        )}
      </QueryView>
    </Stack>
  );
}
