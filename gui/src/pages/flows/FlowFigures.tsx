// The performance evaluation's figures beside the drawing: per flow its workload, its maximum throughput (the
// throughput at its main bottleneck, coloured by throughput ÷ workload) and the source rate it sustains; per
// bundle its concurrent requests (Σ customers) and per instance.
import { Box, Group, Stack, Table, Text, UnstyledButton } from "@mantine/core";
import type { FlowModel } from "./api";
import { figure, sourceTitle, STATUS_COLOR, stationTitle, status } from "./model";

export function FlowFigures({ model, onSelect }: { model: FlowModel; onSelect: (id: number) => void }) {
  const stations = new Map(model.stations.map((s) => [s.id, s]));
  const sources = new Map(model.sources.map((s) => [s.id, s]));
  return (
    <Stack gap="md">
      <Stack gap={4}>
        <Text fw={600} id="flow-throughput">Maximum throughput per flow</Text>
        <Table fz="sm" verticalSpacing={4} aria-labelledby="flow-throughput" data-testid="flow-throughput">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Flow</Table.Th>
              <Table.Th ta="right">Workload</Table.Th>
              <Table.Th ta="right">Max throughput</Table.Th>
              <Table.Th>Main bottleneck</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {model.flows.map((flow) => {
              const source = sources.get(flow.sourceId);
              const bottleneck = flow.mainBottleneck === null ? undefined : stations.get(flow.mainBottleneck);
              const throughput = flow.maxThroughputPerS ?? flow.workloadPerS;
              const state = status(throughput, flow.workloadPerS);
              return (
                <Table.Tr key={flow.sourceId} data-source-key={flow.source}>
                  <Table.Td>
                    <Text size="sm">{source ? sourceTitle(source) : flow.source}</Text>
                    <Text size="xs" c="dimmed">{source?.payload}</Text>
                  </Table.Td>
                  <Table.Td ta="right">{figure(flow.workloadPerS)} r/s</Table.Td>
                  <Table.Td ta="right">
                    <Group gap={6} justify="flex-end" wrap="nowrap">
                      <Box w={10} h={10} bg={`${STATUS_COLOR[state]}.6`} style={{ borderRadius: "50%" }} aria-hidden />
                      <Text size="sm" fw={600} data-testid="flow-max-throughput" data-status={state}>
                        {flow.maxThroughputPerS === null ? "no limit" : `${figure(flow.maxThroughputPerS)} r/s`}
                      </Text>
                    </Group>
                  </Table.Td>
                  <Table.Td>
                    {bottleneck ? (
                      <UnstyledButton onClick={() => { onSelect(bottleneck.id); }} data-testid="flow-main-bottleneck">
                        <Text size="sm" c="red" fw={600}>{stationTitle(bottleneck)}</Text>
                        <Text size="xs" c="dimmed">{bottleneck.payload}</Text>
                      </UnstyledButton>
                    ) : (
                      <Text size="sm" c="dimmed">none</Text>
                    )}
                  </Table.Td>
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      </Stack>
      <Stack gap={4}>
        <Text fw={600} id="bundle-concurrency">Concurrent requests per bundle</Text>
        <Table fz="sm" verticalSpacing={4} aria-labelledby="bundle-concurrency" data-testid="bundle-concurrency">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Bundle</Table.Th>
              <Table.Th ta="right">Concurrent</Table.Th>
              <Table.Th ta="right">Instances</Table.Th>
              <Table.Th ta="right">Per instance</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {model.bundles.map((b) => (
              <Table.Tr key={b.bundleId}>
                <Table.Td>{b.bundleId}</Table.Td>
                <Table.Td ta="right">{figure(b.customers)}</Table.Td>
                <Table.Td ta="right">{b.instances}</Table.Td>
                <Table.Td ta="right">{figure(b.customersPerInstance)}</Table.Td>
              </Table.Tr>
            ))}
            <Table.Tr>
              <Table.Td><Text size="sm" c="dimmed">server (gateways, event store)</Text></Table.Td>
              <Table.Td ta="right">{figure(model.serverCustomers)}</Table.Td>
              <Table.Td />
              <Table.Td />
            </Table.Tr>
          </Table.Tbody>
        </Table>
        <Group gap="xs">
          <Text size="xs" c="dimmed">
            {model.converged ? `Converged in ${model.iterations} passes.` : `Stopped after ${model.iterations} passes without converging.`}
          </Text>
        </Group>
      </Stack>
    </Stack>
  );
}
