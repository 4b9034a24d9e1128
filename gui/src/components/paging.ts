// Paging of lists the browser filters itself (the API pages the others).
/** The rows of page `page` (0-based) of `size` out of a list filtered in the browser. */
export function pageOf<T>(rows: T[], page: number, size: number): T[] {
  return rows.slice(page * size, (page + 1) * size);
}
