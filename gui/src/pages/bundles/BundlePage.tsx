// One bundle: what it declared (description, version, repository), when it was seen, its online instances and
// its components; an admin may forget it once it is offline.
import { Anchor, Button, Group, SimpleGrid, Stack, Text } from "@mantine/core";
import { IconGitBranch, IconTrash } from "@tabler/icons-react";
import { lazy, Suspense } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useBundle, useDeleteBundle } from "../../api/hooks";
import type { ComponentItem, InstanceItem } from "../../api/types";
import { useAuth } from "../../api/useAuth";
import { KindBadge, OnlineBadge } from "../../components/Badges";
import { ConfirmButton } from "../../components/Confirm";
import { DataTable, type Column } from "../../components/DataTable";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { paths } from "../../components/paths";
import { Facts, Section } from "../../components/Section";
import { Loading, QueryView } from "../../components/states";
import { Time } from "../../components/Time";

const BundleGraph = lazy(() => import("./BundleGraph"));

const instanceColumns: Column<InstanceItem>[] = [
  { key: "id", header: "Instance", cell: (i) => <Text size="sm" ff="monospace">{i.instanceId}</Text> },
  { key: "server", header: "Server", cell: (i) => i.serverId },
  { key: "version", header: "Version", cell: (i) => i.bundleVersion },
  { key: "enabled", header: "Enabled", cell: (i) => <OnlineBadge online={i.enabled} onLabel="enabled" offLabel="disabled" /> },
  { key: "joined", header: "Joined", cell: (i) => <Time value={i.joinedAt} /> },
];

const componentColumns: Column<ComponentItem>[] = [
  { key: "name", header: "Component", cell: (c) => <AppLink to={paths.component(c.name, c.bundleId)}>{c.name}</AppLink> },
  { key: "kind", header: "Kind", cell: (c) => <KindBadge kind={c.kind} /> },
  { key: "domain", header: "Domain", cell: (c) => c.domain ?? "—" },
  { key: "description", header: "Description", cell: (c) => <Text size="sm" lineClamp={2}>{c.description ?? ""}</Text> },
];

export default function BundlePage() {
  const bundleId = useParams().bundleId ?? "";
  const query = useBundle(bundleId);
  const { isAdmin } = useAuth();
  const remove = useDeleteBundle();
  const navigate = useNavigate();
  return (
    <Stack>
      <PageTitle title={bundleId} kicker="Bundle">
        <Button component={Link} to={paths.flowsOfBundle(bundleId)} variant="light" leftSection={<IconGitBranch size={16} aria-hidden />}>
          Flows
        </Button>
        {isAdmin && query.data && !query.data.online && (
          <ConfirmButton
            label="Forget"
            leftSection={<IconTrash size={16} aria-hidden />}
            title={`Forget ${bundleId}?`}
            message="The bundle and everything it declared leave the catalog; it comes back if it connects again."
            confirmLabel="Forget the bundle"
            onConfirm={async () => { await remove.mutateAsync(bundleId); await navigate("/bundles"); }}
          />
        )}
      </PageTitle>
      <QueryView query={query} loading="Loading the bundle…">
        {(b) => (
          <Stack>
            <SimpleGrid cols={{ base: 1, md: 2 }}>
              <Section title="About">
                <Stack gap="sm">
                  {b.description && <Text>{b.description}</Text>}
                  {b.detail && <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>{b.detail}</Text>}
                  <Facts items={[
                    ["State", <OnlineBadge key="s" online={b.online} onLabel={`${b.instances.length} online`} />],
                    ["Version", b.version],
                    ["Repository", b.repositoryUrl ? <Anchor key="r" href={b.repositoryUrl} target="_blank" rel="noreferrer">{b.repositoryUrl}</Anchor> : "—"],
                    ["First seen", <Time key="f" value={b.firstSeenAt} />],
                    ["Last seen", <Time key="l" value={b.lastSeenAt} />],
                    ["Handlers", b.handlers.length],
                  ]} />
                </Stack>
              </Section>
              <Section title="Component graph">
                <Suspense fallback={<Loading />}><BundleGraph bundle={b} /></Suspense>
              </Section>
            </SimpleGrid>
            <Section title={`Online instances (${b.instances.length})`} testId="instances">
              <DataTable caption="Online instances" columns={instanceColumns} rows={b.instances}
                rowKey={(i) => `${i.serverId}/${i.instanceId}`} empty="No instance is online" />
            </Section>
            <Section title={`Components (${b.components.length})`} testId="components">
              <Group mb="xs"><Text size="sm" c="dimmed">Each component's page lists its handlers.</Text></Group>
              <DataTable caption="Components of this bundle" columns={componentColumns} rows={b.components}
                rowKey={(c) => c.name} empty="No component" />
            </Section>
          </Stack>
        )}
      </QueryView>
    </Stack>
  );
}
