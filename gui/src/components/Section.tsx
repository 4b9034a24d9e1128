// A titled card grouping one part of an entity's page (its handlers, its instances…).
import { Card, Group, Title } from "@mantine/core";
import type { ReactNode } from "react";

export function Section({ title, actions, children, testId }: {
  title: string;
  actions?: ReactNode;
  children: ReactNode;
  testId?: string;
}) {
  return (
    <Card withBorder radius="md" padding="md" component="section" aria-label={title} data-testid={testId}>
      <Group justify="space-between" mb="sm">
        <Title order={2} size="h4">{title}</Title>
        {actions}
      </Group>
      {children}
    </Card>
  );
}

/** Label/value pairs in two columns. */
export function Facts({ items }: { items: [string, ReactNode][] }) {
  return (
    <dl style={{ display: "grid", gridTemplateColumns: "max-content 1fr", columnGap: 24, rowGap: 6, margin: 0 }}>
      {items.map(([label, value]) => (
        <div key={label} style={{ display: "contents" }}>
          <dt style={{ color: "var(--mantine-color-dimmed)", fontSize: "var(--mantine-font-size-sm)" }}>{label}</dt>
          <dd style={{ margin: 0, fontSize: "var(--mantine-font-size-sm)", minWidth: 0, overflowWrap: "anywhere" }}>
            {value}
          </dd>
        </div>
      ))}
    </dl>
  );
}
