// A list's state (page, search, filters) lives in the URL's query string, so every view of a list is a link
// that survives a reload and the back button.
import { useCallback } from "react";
import { useSearchParams } from "react-router";

export interface UrlState {
  get: (key: string) => string;
  /** Set some parameters (empty values remove them); any change but the page's goes back to the first page. */
  set: (changes: Record<string, string | number | null | undefined>) => void;
  page: number;
  size: number;
}

export function useUrlState(defaultSize = 25): UrlState {
  const [params, setParams] = useSearchParams();
  const get = useCallback((key: string) => params.get(key) ?? "", [params]);
  const set = useCallback(
    (changes: Record<string, string | number | null | undefined>) => {
      setParams(
        (current) => {
          const next = new URLSearchParams(current);
          for (const [key, value] of Object.entries(changes)) {
            if (value === null || value === undefined || value === "") next.delete(key);
            else next.set(key, String(value));
          }
          if (!("page" in changes)) next.delete("page");
          return next;
        },
        { replace: true },
      );
    },
    [setParams],
  );
  const page = Math.max(0, Number.parseInt(params.get("page") ?? "0", 10) || 0);
  const size = Math.min(500, Math.max(1, Number.parseInt(params.get("size") ?? String(defaultSize), 10) || defaultSize));
  return { get, set, page, size };
}
