// One bundle: what it declared (description, version, repository), when it was seen, its online instances and
// its components; an admin may forget it once it is offline. When the server runs the bundle, its deployment and
// the supervisor's decisions show too (even before any instance ever joined), and an admin may spawn, kill and
// change its bounds.
import { Anchor, Button, Group, SimpleGrid, Stack, Text } from "@mantine/core";
import { IconGitBranch, IconTrash } from "@tabler/icons-react";
import { useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useEffect } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useDeployment } from "../../api/deployment";
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
import { DeploymentSection } from "../cluster/DeploymentSection";
import { KillInstanceButton } from "../cluster/KillInstanceButton";

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
  const deployment = useDeployment(bundleId);
  const deployed = deployment.isSuccess;
  // The deployment is re-read every few seconds: when its count of online instances moves (an instance joined or
  // left), the bundle's own list of instances is read again.
  const client = useQueryClient();
  const online = deployment.data?.online;
  useEffect(() => {
    if (online !== undefined) void client.invalidateQueries({ queryKey: ["bundles", bundleId] });
  }, [online, bundleId, client]);
  const instanceActions: Column<InstanceItem>[] = isAdmin && deployed ? [{
    key: "kill",
    header: <span className="sr-only">Actions</span>,
    cell: (i) => <KillInstanceButton bundleId={bundleId} instanceId={i.instanceId} />,
  }] : [];
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
      <DeploymentSection bundleId={bundleId} />
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
              <DataTable caption="Online instances" columns={[...instanceColumns, ...instanceActions]} rows={b.instances}
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
