// The controls above a list: a search box (debounced, kept in the URL) and select filters, in one row.
import { CloseButton, Group, Select, TextInput } from "@mantine/core";
import { useDebouncedCallback } from "@mantine/hooks";
import { IconSearch } from "@tabler/icons-react";
import { useState, type ReactNode } from "react";
import type { UrlState } from "./urlState";

export function FilterBar({ children, label = "Filters" }: { children: ReactNode; label?: string }) {
  return (
    <Group gap="sm" mb="sm" align="flex-end" wrap="wrap" role="search" aria-label={label}>
      {children}
    </Group>
  );
}

/** A text filter bound to the URL parameter `param`: typing updates the URL after a short pause. */
export function SearchFilter({ state, param = "q", label, placeholder, width = 260 }: {
  state: UrlState;
  param?: string;
  label: string;
  placeholder?: string;
  width?: number;
}) {
  const current = state.get(param);
  const [text, setText] = useState(current);
  const [shown, setShown] = useState(current);
  if (current !== shown) {
    // The URL changed from elsewhere (a link, the back button): the box follows it.
    setShown(current);
    setText(current);
  }
  const commit = useDebouncedCallback((value: string) => { state.set({ [param]: value.trim() }); }, 250);
  return (
    <TextInput
      label={label}
      placeholder={placeholder}
      w={width}
      leftSection={<IconSearch size={16} aria-hidden />}
      value={text}
      onChange={(event) => {
        setText(event.currentTarget.value);
        commit(event.currentTarget.value);
      }}
      rightSection={text ? (
        <CloseButton aria-label={`Clear ${label}`} size="sm" onClick={() => { setText(""); state.set({ [param]: "" }); }} />
      ) : null}
    />
  );
}

/** A choice among `options` bound to the URL parameter `param` (cleared: no filter). */
export function SelectFilter({ state, param, label, options, width = 200 }: {
  state: UrlState;
  param: string;
  label: string;
  options: string[];
  width?: number;
}) {
  const value = state.get(param);
  const data = value && !options.includes(value) ? [value, ...options] : options;
  return (
    <Select
      label={label}
      placeholder="Any"
      w={width}
      data={data}
      value={value || null}
      onChange={(next) => { state.set({ [param]: next ?? "" }); }}
      clearable
      searchable
      comboboxProps={{ withinPortal: true }}
    />
  );
}
