// What one picked node of the drawing is: its handler, component and payload (links to their pages), and with
// the evaluation on, its figures (service time and where it comes from, λ in, X out, capacity, customers).
import { Badge, CloseButton, Group, Paper, SimpleGrid, Stack, Text } from "@mantine/core";
import type { ReactNode } from "react";
import { AppLink } from "../../components/links";
import { paths } from "../../components/paths";
import type { FlowModel } from "./api";
import { customersLabel, figure, sourceTitle, stationKindLabel, stationTitle } from "./model";

function Figure({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed">{label}</Text>
      <Text size="sm">{children}</Text>
    </div>
  );
}

export function StationDetails({ model, id, evaluation, onClose }: {
  model: FlowModel;
  id: number;
  evaluation: boolean;
  onClose: () => void;
}) {
  const station = model.stations.find((s) => s.id === id);
  const source = model.sources.find((s) => s.id === id);
  if (!station && !source) return null;
  return (
    <Paper withBorder p="sm" data-testid="station-details" aria-label="Picked station">
      <Group justify="space-between" align="flex-start" wrap="nowrap">
        <Stack gap={2}>
          <Text size="xs" c="dimmed">{station ? stationKindLabel(station) : "Source"}</Text>
          <Text fw={600}>{station ? stationTitle(station) : source ? sourceTitle(source) : ""}</Text>
        </Stack>
        <CloseButton aria-label="Close the station's details" onClick={onClose} />
      </Group>
      <Group gap="md" mt={4}>
        {(station?.payload ?? source?.payload) && (
          <AppLink to={paths.payload(station?.payload ?? source?.payload ?? "")}>{station?.payload ?? source?.payload}</AppLink>
        )}
        {station?.component && (
          <AppLink to={paths.component(station.component, station.bundleId)}>{station.component}</AppLink>
        )}
        {station?.handlerId && <AppLink to={paths.flowsOfHandler(station.handlerId)}>Flows from this handler</AppLink>}
        {(station?.bundleId ?? source?.bundleId) && (
          <AppLink to={paths.bundle(station?.bundleId ?? source?.bundleId ?? "")}>{station?.bundleId ?? source?.bundleId}</AppLink>
        )}
      </Group>
      {station && evaluation && (
        <SimpleGrid cols={{ base: 2, sm: 4 }} mt="sm" spacing="xs">
          <Figure label="Service time">
            {figure(station.serviceTimeMs)} ms <Badge size="xs" variant="light">{station.serviceTimeProvenance}</Badge>
          </Figure>
          <Figure label="Workload λ">{figure(station.workloadPerS)} r/s</Figure>
          <Figure label="Throughput X">{figure(station.throughputPerS)} r/s</Figure>
          <Figure label="Capacity μ">
            {station.capacityPerS === null ? "unlimited" : `${figure(station.capacityPerS)} r/s`}
          </Figure>
          <Figure label="Customers">{customersLabel(station).replace("Customers: ", "")}</Figure>
          <Figure label="Queue growth">{figure(station.queueGrowthPerS)} r/s</Figure>
          <Figure label="Servers">
            {station.servers === null ? "∞ (replicable)" : `${figure(station.servers)} (one active consumer)`}
          </Figure>
          <Figure label="Bottleneck">{station.bottleneck ? "yes" : "no"}</Figure>
        </SimpleGrid>
      )}
      {source && evaluation && (
        <Text size="sm" mt="xs">One request every {figure(source.interArrivalMs)} ms: λ {figure(source.ratePerS)} r/s.</Text>
      )}
    </Paper>
  );
}
