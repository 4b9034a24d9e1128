// A bundle the server runs (issue 12): its bounds, the instances wanted and online, its last failure to start and
// the supervisor's recent decisions (spawns, joins, kills, scaling) for everyone; for admins a Spawn button and an
// editor of min, max and autorun. Nothing shows for a bundle the server does not run.
import { Alert, Badge, Button, Group, NumberInput, Stack, Switch, Text, Title } from "@mantine/core";
import { IconPlayerPlay } from "@tabler/icons-react";
import { useState, type ReactNode } from "react";
import { errorDetail } from "../../api/client";
import {
  useDeployment,
  useDeploymentActions,
  type DecisionItem,
  type DeploymentView,
} from "../../api/deployment";
import { useAuth } from "../../api/useAuth";
import { DataTable, type Column } from "../../components/DataTable";
import { Facts, Section } from "../../components/Section";
import { ErrorState } from "../../components/states";
import { Time } from "../../components/Time";

const ACTION_COLOR: Record<string, string> = {
  spawn: "blue",
  joined: "green",
  "scale-up": "blue",
  kill: "orange",
  killed: "red",
  lost: "red",
  "spawn-failed": "red",
  deploy: "gray",
  publish: "gray",
};

const decisionColumns: Column<DecisionItem>[] = [
  { key: "at", header: "When", cell: (d) => <Time value={d.at} /> },
  { key: "action", header: "Decision", cell: (d) => (
    // The page's text colour on the tint, as the kind badges (a tint's own dark shade misses 4.5:1 for some hues).
    <Badge variant="light" color={ACTION_COLOR[d.action] ?? "gray"} c="var(--mantine-color-text)"
      style={{ textTransform: "none" }} miw="max-content">{d.action}</Badge>
  ) },
  { key: "instance", header: "Instance", cell: (d) => <Text size="sm" ff="monospace">{d.instanceId ?? "—"}</Text> },
  { key: "reason", header: "Why", cell: (d) => <Text size="sm">{d.reason}</Text> },
  { key: "server", header: "Server", cell: (d) => d.serverId },
];

interface Notice { ok: boolean; text: string }

export function DeploymentSection({ bundleId }: { bundleId: string }) {
  const deployment = useDeployment(bundleId);
  const { isAdmin } = useAuth();
  const actions = useDeploymentActions(bundleId);
  const [notice, setNotice] = useState<Notice | null>(null);
  if (deployment.isPending || deployment.isNotDeployed) return null;
  if (deployment.isError) return <ErrorState title="Could not read the bundle's deployment" error={deployment.error} />;
  const d = deployment.data;
  const run = async (action: () => Promise<string>) => {
    try {
      setNotice({ ok: true, text: await action() });
    } catch (failure) {
      setNotice({ ok: false, text: errorDetail(failure) });
    }
  };
  const spawn = isAdmin && (
    <Button variant="light" leftSection={<IconPlayerPlay size={16} aria-hidden />} loading={actions.spawn.isPending}
      onClick={() => void run(async () => {
        const after = await actions.spawn.mutateAsync();
        return `One more instance wanted: ${after.wanted}`;
      })}>
      Spawn
    </Button>
  );
  return (
    <Section title="Deployment" actions={spawn} testId="deployment">
      <Stack>
        {notice && (
          <Alert color={notice.ok ? "green" : "red"} variant="light" withCloseButton closeButtonLabel="Dismiss"
            onClose={() => { setNotice(null); }} role={notice.ok ? "status" : "alert"} data-testid="deployment-notice">
            {notice.text}
          </Alert>
        )}
        <Facts items={[
          ["Instances", <Text key="i" size="sm" span data-testid="deployment-instances">{d.online} online of {d.wanted} wanted</Text>],
          ["Bounds", <Text key="b" size="sm" span data-testid="deployment-bounds">{d.minInstances}–{d.maxInstances}</Text>],
          ["Autorun", d.autorun ? "yes: started with the server" : "no"],
          ["Version", d.version],
          ["Entry point", <Text key="e" size="sm" span ff="monospace">{d.entryPoint}</Text>],
          ...(d.lastError ? [["Last error", <Text key="l" size="sm" span c="red.8">{d.lastError}</Text>] as [string, ReactNode]] : []),
        ]} />
        {isAdmin && (
          // Keyed by the server's values: a change made elsewhere resets the form, the admin's typing does not.
          <BoundsEditor key={`${d.minInstances}/${d.maxInstances}/${d.autorun}`} deployment={d}
            saving={actions.update.isPending}
            onSave={(update) => void run(async () => {
              const after = await actions.update.mutateAsync(update);
              return `Saved: ${after.minInstances} to ${after.maxInstances} instances, autorun ${after.autorun ? "on" : "off"}`;
            })} />
        )}
        <Title order={3} size="h5">Recent decisions</Title>
        <DataTable caption="Recent decisions of the supervisor" columns={decisionColumns} rows={d.decisions}
          rowKey={(x) => `${x.at}/${x.action}/${x.instanceId ?? ""}/${x.serverId}`} empty="No decision yet"
          testId="decisions" />
      </Stack>
    </Section>
  );
}

function BoundsEditor({ deployment, saving, onSave }: {
  deployment: DeploymentView;
  saving: boolean;
  onSave: (update: { minInstances: number; maxInstances: number; autorun: boolean }) => void;
}) {
  const [min, setMin] = useState<number | string>(deployment.minInstances);
  const [max, setMax] = useState<number | string>(deployment.maxInstances);
  const [autorun, setAutorun] = useState(deployment.autorun);
  const valid = typeof min === "number" && typeof max === "number";
  return (
    <Group align="flex-end" data-testid="deployment-editor">
      <NumberInput label="Min instances" min={0} max={1000} allowDecimal={false} allowNegative={false} w={140}
        value={min} onChange={setMin} />
      <NumberInput label="Max instances" min={1} max={1000} allowDecimal={false} allowNegative={false} w={140}
        value={max} onChange={setMax} />
      <Switch label="Autorun" checked={autorun} onChange={(e) => { setAutorun(e.currentTarget.checked); }} mb={8} />
      <Button variant="default" loading={saving} disabled={!valid}
        onClick={() => { if (valid) onSave({ minInstances: min, maxInstances: max, autorun }); }}>
        Save bounds
      </Button>
    </Group>
  );
}
