// A page's heading, its kicker (what kind of entity) and actions; sets the document title too, so tabs and
// history read well.
import { Group, Stack, Text, Title } from "@mantine/core";
import { useDocumentTitle } from "@mantine/hooks";
import type { ReactNode } from "react";

export function PageTitle({ title, kicker, children, description }: {
  title: string;
  kicker?: string;
  description?: ReactNode;
  children?: ReactNode;
}) {
  useDocumentTitle(`${title} · Evento`);
  return (
    <Group justify="space-between" align="flex-start" mb="md" wrap="nowrap">
      <Stack gap={2} style={{ minWidth: 0 }}>
        {kicker && <Text size="xs" tt="uppercase" fw={700} c="dimmed">{kicker}</Text>}
        <Title order={1} size="h2" style={{ wordBreak: "break-word" }}>{title}</Title>
        {description && <Text c="dimmed" size="sm">{description}</Text>}
      </Stack>
      {children && <Group gap="xs" wrap="nowrap">{children}</Group>}
    </Group>
  );
}
