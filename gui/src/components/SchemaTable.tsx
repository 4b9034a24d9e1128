// A payload's JSON Schema as a table of its fields (nested fields indented under their parent), with the raw
// schema one click away.
import { Badge, Code, Group, Stack, Table, Tabs, Text } from "@mantine/core";
import { JsonView } from "./JsonView";
import { schemaRows } from "./schema";
import { Empty } from "./states";

export function SchemaTable({ schema }: { schema: Record<string, unknown> }) {
  const rows = schemaRows(schema);
  return (
    <Tabs defaultValue="fields" keepMounted={false}>
      <Tabs.List>
        <Tabs.Tab value="fields">Fields</Tabs.Tab>
        <Tabs.Tab value="json">JSON Schema</Tabs.Tab>
      </Tabs.List>
      <Tabs.Panel value="fields" pt="sm">
        {rows.length === 0 ? <Empty>No fields</Empty> : (
          <Table.ScrollContainer minWidth={560}>
            <Table verticalSpacing={6} data-testid="schema-fields">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th scope="col">Field</Table.Th>
                  <Table.Th scope="col">Type</Table.Th>
                  <Table.Th scope="col">Description and constraints</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((row) => (
                  <Table.Tr key={row.path}>
                    <Table.Td style={{ paddingLeft: 12 + row.depth * 18 }}>
                      <Group gap={6} wrap="nowrap">
                        <Code>{row.path.split(".").pop()}</Code>
                        {row.required && !row.nullable && <Badge size="xs" variant="outline" color="gray">required</Badge>}
                      </Group>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" ff="monospace">{row.type}{row.nullable ? " | null" : ""}</Text>
                    </Table.Td>
                    <Table.Td>
                      <Stack gap={2}>
                        {row.description && <Text size="sm">{row.description}</Text>}
                        {row.constraints.map((c) => <Text key={c} size="xs" c="dimmed">{c}</Text>)}
                      </Stack>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </Tabs.Panel>
      <Tabs.Panel value="json" pt="sm">
        <JsonView value={schema} label="JSON Schema" />
      </Tabs.Panel>
    </Tabs>
  );
}
