// Every entity of the GUI has a URL: these build them in one place.
const enc = encodeURIComponent;

export const paths = {
  payload: (name: string) => `/payloads/${enc(name)}`,
  component: (name: string, bundleId?: string | null) =>
    `/components/${enc(name)}${bundleId ? `?bundleId=${enc(bundleId)}` : ""}`,
  bundle: (bundleId: string) => `/bundles/${enc(bundleId)}`,
  consumer: (consumerId: string) => `/consumers/${enc(consumerId)}`,
  event: (seq: number) => `/state-store/events/${seq}`,
  aggregate: (aggregateId: string) => `/state-store/aggregates/${enc(aggregateId)}`,
  flowsOfPayload: (name: string) => `/flows?payload=${enc(name)}`,
  flowsOfComponent: (name: string) => `/flows?component=${enc(name)}`,
  flowsOfBundle: (bundleId: string) => `/flows?bundle=${enc(bundleId)}`,
  flowsOfHandler: (handlerId: string) => `/flows?handler=${enc(handlerId)}`,
};

/** The URL of a source line in a bundle's repository: `repositoryUrl` + file + `linePrefix` + line. */
export function sourceUrl(
  repositoryUrl: string | null | undefined,
  linePrefix: string | null | undefined,
  file: string | null | undefined,
  line: number | null | undefined,
): string | null {
  if (!repositoryUrl || !file) return null;
  const base = repositoryUrl.endsWith("/") ? repositoryUrl : `${repositoryUrl}/`;
  const suffix = line ? `${linePrefix ?? "#L"}${line}` : "";
  return `${base}${file.replace(/^\/+/, "")}${suffix}`;
}
