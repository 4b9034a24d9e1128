// The what-if editor of the performance evaluation: source inter-arrival times, handler service times,
// invocation probabilities and instance counts, each shown beside the value the model used; a value left
// empty keeps the measured one. "Evaluate" asks the server to evaluate the selection with them.
import { Badge, Button, Group, NumberInput, ScrollArea, Table, Tabs, Text } from "@mantine/core";
import { IconPlayerPlay, IconRestore } from "@tabler/icons-react";
import { useState, type ReactNode } from "react";
import type { FlowModel } from "./api";
import { figure, handlerLabel, handlersOf, invocationsOf, sourceTitle } from "./model";
import { changes, probability, withProbability, withValue, type WhatIf } from "./whatIf";

interface NumberProps {
  label: string;
  current: number | null;
  value: number | null;
  onChange: (value: number | null) => void;
  min: number;
  max: number;
  integer?: boolean;
  unit: string;
}

/** A what-if number: empty means "as measured" (the placeholder shows the value in use). */
export function WhatIfNumber({ label, current, value, onChange, min, max, integer, unit }: NumberProps) {
  return (
    <NumberInput
      size="xs"
      w={130}
      aria-label={label}
      placeholder={current === null ? "—" : figure(current)}
      value={value ?? ""}
      min={min}
      max={max}
      clampBehavior="blur"
      allowNegative={false}
      allowDecimal={!integer}
      decimalScale={integer ? 0 : 4}
      rightSection={<Text size="xs" c="dimmed" pr={6}>{unit}</Text>}
      rightSectionWidth={unit.length * 7 + 12}
      styles={value === null ? undefined : { input: { fontWeight: 700, borderColor: "var(--mantine-primary-color-filled)" } }}
      onChange={(input) => {
        if (input === "") onChange(null);
        else {
          const parsed = typeof input === "number" ? input : Number(input);
          if (Number.isFinite(parsed)) onChange(parsed);
        }
      }}
    />
  );
}

function Rows({ head, children }: { head: string[]; children: ReactNode }) {
  return (
    <ScrollArea.Autosize mah={300} type="auto">
      <Table striped highlightOnHover verticalSpacing={4} fz="sm" stickyHeader>
        <Table.Thead>
          <Table.Tr>{head.map((h) => <Table.Th key={h}>{h}</Table.Th>)}</Table.Tr>
        </Table.Thead>
        <Table.Tbody>{children}</Table.Tbody>
      </Table>
    </ScrollArea.Autosize>
  );
}

export interface WhatIfPanelProps {
  /** The model the values are shown against (the measured one, or the last evaluation). */
  model: FlowModel;
  whatIf: WhatIf;
  onChange: (whatIf: WhatIf) => void;
  onEvaluate: () => void;
  onReset: () => void;
  evaluating: boolean;
  /** Whether the values changed since the model was evaluated with them. */
  stale: boolean;
  focusHandler: string | null;
}

export function WhatIfPanel({ model, whatIf, onChange, onEvaluate, onReset, evaluating, stale, focusHandler }: WhatIfPanelProps) {
  const handlers = handlersOf(model);
  const invocations = invocationsOf(model);
  const changed = changes(whatIf);
  const [tab, setTab] = useState<string | null>(focusHandler ? "service" : "sources");
  const [focused, setFocused] = useState(focusHandler);
  if (focused !== focusHandler) {
    // A station was picked in the drawing: show its handler's service time.
    setFocused(focusHandler);
    if (focusHandler) setTab("service");
  }
  return (
    <form
      aria-label="What-if values"
      onSubmit={(event) => {
        event.preventDefault();
        onEvaluate();
      }}
    >
      <Group justify="space-between" mb="xs">
        <Group gap="xs">
          <Text fw={600}>What-if</Text>
          <Badge variant="light" color={changed ? "indigo" : "gray"} data-testid="what-if-changes">
            {changed} changed
          </Badge>
          {stale && <Text size="xs" c="dimmed">evaluate to see the effect</Text>}
        </Group>
        <Group gap="xs">
          <Button size="xs" variant="default" leftSection={<IconRestore size={14} aria-hidden />} onClick={onReset}
            disabled={changed === 0 && !stale}>
            Back to measured
          </Button>
          <Button size="xs" type="submit" loading={evaluating} leftSection={<IconPlayerPlay size={14} aria-hidden />}>
            Evaluate
          </Button>
        </Group>
      </Group>
      <Tabs value={tab} onChange={setTab} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="sources">Sources ({model.sources.length})</Tabs.Tab>
          <Tabs.Tab value="service">Service times ({handlers.length})</Tabs.Tab>
          <Tabs.Tab value="invocations">Invocations ({invocations.length})</Tabs.Tab>
          <Tabs.Tab value="instances">Instances ({model.bundles.length})</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="sources" pt="xs">
          <Group gap="xs" mb="xs">
            <Text size="sm">Every source, unless set below: one request every</Text>
            <WhatIfNumber label="Inter-arrival time of every source (ms)" current={1000} value={whatIf.interArrivalMs}
              min={0.001} max={1e9} unit="ms" onChange={(v) => { onChange({ ...whatIf, interArrivalMs: v }); }} />
          </Group>
          <Rows head={["Source", "Rate in use", "Inter-arrival"]}>
            {model.sources.map((s) => (
              <Table.Tr key={s.key}>
                <Table.Td><Text size="sm">{sourceTitle(s)}</Text><Text size="xs" c="dimmed">{s.payload}</Text></Table.Td>
                <Table.Td>{figure(s.ratePerS)} r/s</Table.Td>
                <Table.Td>
                  <WhatIfNumber label={`Inter-arrival time of ${s.key} (ms)`} current={s.interArrivalMs}
                    value={whatIf.sources[s.key] ?? null} min={0.001} max={1e9} unit="ms"
                    onChange={(v) => { onChange({ ...whatIf, sources: withValue(whatIf.sources, s.key, v) }); }} />
                </Table.Td>
              </Table.Tr>
            ))}
          </Rows>
        </Tabs.Panel>
        <Tabs.Panel value="service" pt="xs">
          <Rows head={["Handler", "In use", "Service time"]}>
            {handlers.map(({ handlerId, station }) => (
              <Table.Tr key={handlerId} bg={handlerId === focusHandler ? "var(--mantine-primary-color-light)" : undefined}>
                <Table.Td>
                  <Text size="sm">{handlerLabel(handlerId)}</Text>
                  <Text size="xs" c="dimmed">{station.bundleId}</Text>
                </Table.Td>
                <Table.Td>
                  {figure(station.serviceTimeMs)} ms <Text span size="xs" c="dimmed">{station.serviceTimeProvenance}</Text>
                </Table.Td>
                <Table.Td>
                  <WhatIfNumber label={`Service time of ${handlerId} (ms)`} current={station.serviceTimeMs}
                    value={whatIf.serviceTimes[handlerId] ?? null} min={0} max={1e7} unit="ms"
                    onChange={(v) => { onChange({ ...whatIf, serviceTimes: withValue(whatIf.serviceTimes, handlerId, v) }); }} />
                </Table.Td>
              </Table.Tr>
            ))}
          </Rows>
        </Tabs.Panel>
        <Tabs.Panel value="invocations" pt="xs">
          {invocations.length === 0 ? (
            <Text size="sm" c="dimmed">No handler of these flows sends a command or query.</Text>
          ) : (
            <Rows head={["Sender → sent", "In use", "Per handling"]}>
              {invocations.map(({ sender, sent, edge }) => (
                <Table.Tr key={`${sender} ${sent}`}>
                  <Table.Td><Text size="sm">{handlerLabel(sender)}</Text><Text size="xs" c="dimmed">→ {sent}</Text></Table.Td>
                  <Table.Td>
                    {figure(edge.probability)} <Text span size="xs" c="dimmed">{edge.probabilityProvenance}</Text>
                  </Table.Td>
                  <Table.Td>
                    <WhatIfNumber label={`Invocation probability of ${sent} by ${sender}`} current={edge.probability}
                      value={probability(whatIf, sender, sent)} min={0} max={1000} unit="×"
                      onChange={(v) => { onChange(withProbability(whatIf, sender, sent, v)); }} />
                  </Table.Td>
                </Table.Tr>
              ))}
            </Rows>
          )}
        </Tabs.Panel>
        <Tabs.Panel value="instances" pt="xs">
          <Rows head={["Bundle", "In use", "Instances"]}>
            {model.bundles.map((b) => (
              <Table.Tr key={b.bundleId}>
                <Table.Td>{b.bundleId}</Table.Td>
                <Table.Td>{b.instances}</Table.Td>
                <Table.Td>
                  <WhatIfNumber label={`Instances of ${b.bundleId}`} current={b.instances} integer
                    value={whatIf.instances[b.bundleId] ?? null} min={1} max={10000} unit="×"
                    onChange={(v) => { onChange({ ...whatIf, instances: withValue(whatIf.instances, b.bundleId, v) }); }} />
                </Table.Td>
              </Table.Tr>
            ))}
          </Rows>
          <Text size="xs" c="dimmed" mt={4}>
            Instances divide a bundle&apos;s concurrency; a projector or saga keeps one active consumer whatever their number.
          </Text>
        </Tabs.Panel>
      </Tabs>
    </form>
  );
}
