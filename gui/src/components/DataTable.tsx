// The lists' table and pager: a caption for screen readers, a sticky header, an empty state, and pages counted
// from 0 as in the API (shown from 1).
import { Group, Pagination, Select, Table, Text } from "@mantine/core";
import type { ReactNode } from "react";
import { Empty } from "./states";

export interface Column<T> {
  key: string;
  header: ReactNode;
  cell: (row: T) => ReactNode;
  width?: number | string;
}

export function DataTable<T>({ columns, rows, rowKey, caption, empty = "Nothing here", testId }: {
  columns: Column<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  caption: string;
  empty?: ReactNode;
  testId?: string;
}) {
  return (
    <Table.ScrollContainer minWidth={640}>
      <Table striped highlightOnHover verticalSpacing="xs" data-testid={testId}>
        <Table.Caption style={{ captionSide: "top", textAlign: "left" }} className="sr-only">
          {caption}
        </Table.Caption>
        <Table.Thead>
          <Table.Tr>
            {columns.map((column) => (
              <Table.Th key={column.key} style={{ width: column.width }} scope="col">{column.header}</Table.Th>
            ))}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rows.map((row) => (
            <Table.Tr key={rowKey(row)}>
              {columns.map((column) => <Table.Td key={column.key}>{column.cell(row)}</Table.Td>)}
            </Table.Tr>
          ))}
          {rows.length === 0 && (
            <Table.Tr>
              <Table.Td colSpan={columns.length}><Empty>{empty}</Empty></Table.Td>
            </Table.Tr>
          )}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

const SIZES = ["10", "25", "50", "100"];

export function Pager({ page, size, total, onChange, label = "items" }: {
  page: number;
  size: number;
  total: number;
  onChange: (page: number, size: number) => void;
  label?: string;
}) {
  const pages = Math.max(1, Math.ceil(total / size));
  const first = total === 0 ? 0 : page * size + 1;
  const last = Math.min(total, (page + 1) * size);
  return (
    <Group justify="space-between" mt="sm" wrap="wrap">
      <Text size="sm" c="dimmed" aria-live="polite">
        {total === 0 ? `No ${label}` : `${first}–${last} of ${total} ${label}`}
      </Text>
      <Group gap="sm">
        <Select
          aria-label="Rows per page"
          size="xs"
          w={80}
          data={SIZES.includes(String(size)) ? SIZES : [...SIZES, String(size)]}
          value={String(size)}
          onChange={(value) => { if (value) onChange(0, Number(value)); }}
          allowDeselect={false}
        />
        <Pagination
          size="sm"
          total={pages}
          value={Math.min(page + 1, pages)}
          onChange={(value) => { onChange(value - 1, size); }}
          getControlProps={(control) => ({ "aria-label": `${control} page` })}
          getItemProps={(item) => ({ "aria-label": `Page ${item}` })}
        />
      </Group>
    </Group>
  );
}
