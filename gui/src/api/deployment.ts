// Running bundles (issue 12): a bundle's deployment (bounds, instances wanted and online, the supervisor's
// decisions) and the admin's actions on it — change min/max/autorun, spawn one more, kill one instance. In a
// file of its own so the deployment's query keys and invalidation live together; each action refreshes the
// deployment, the bundle and the cluster view, which all show its effect.
import { useMutation, useQueries, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api } from "./client";
import type { components } from "./schema";

type Schemas = components["schemas"];

export type DeploymentView = Schemas["DeploymentView"];
export type DeploymentUpdate = Schemas["DeploymentUpdate"];
export type DecisionItem = Schemas["DecisionItem"];

const enc = encodeURIComponent;

/** The supervisor acts at its next round (a second or so): the deployment is re-read this often while shown. */
const DEPLOYMENT_REFRESH_MS = 2000;

/** A 404 (not deployed) or 409 (this server runs no bundles) is an answer, not a failure: nothing to retry. */
function notDeployed(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 404 || error.status === 409);
}

function deploymentQuery(bundleId: string) {
  return {
    queryKey: ["deployment", bundleId],
    queryFn: ({ signal }: { signal: AbortSignal }) =>
      api<DeploymentView>(`/bundle/${enc(bundleId)}/deployment`, { signal }),
    refetchInterval: (query: { state: { error: unknown } }) =>
      notDeployed(query.state.error) ? false : DEPLOYMENT_REFRESH_MS,
    retry: (count: number, error: unknown) => !notDeployed(error) && count < 2,
  };
}

/** The bundle's deployment; `isNotDeployed` when the server does not run it (then the page offers nothing). */
export function useDeployment(bundleId: string) {
  const query = useQuery(deploymentQuery(bundleId));
  return { ...query, isNotDeployed: query.isError && notDeployed(query.error) };
}

/** Which of `bundleIds` the server runs (the cluster page offers Kill on their instances only); read only when
 * `enabled` (an admin's page). */
export function useDeployedBundles(bundleIds: string[], enabled: boolean): Set<string> {
  const results = useQueries({
    queries: bundleIds.map((bundleId) => ({ ...deploymentQuery(bundleId), enabled })),
  });
  return new Set(bundleIds.filter((_, index) => results[index]?.isSuccess));
}

/** The admin's actions on a deployed bundle; each refreshes what shows its effect. */
export function useDeploymentActions(bundleId: string) {
  const client = useQueryClient();
  const base = `/bundle/${enc(bundleId)}`;
  const settle = async (view?: DeploymentView) => {
    if (view) client.setQueryData(["deployment", bundleId], view);
    await Promise.all([
      client.invalidateQueries({ queryKey: ["deployment", bundleId] }),
      client.invalidateQueries({ queryKey: ["bundles"] }),
      client.invalidateQueries({ queryKey: ["cluster"] }),
    ]);
  };
  return {
    update: useMutation({
      mutationFn: (update: DeploymentUpdate) => api<DeploymentView>(base, { method: "PUT", body: update }),
      onSuccess: settle,
    }),
    spawn: useMutation({
      mutationFn: () => api<DeploymentView>(`${base}/spawn`, { method: "POST" }),
      onSuccess: settle,
    }),
    kill: useMutation({
      mutationFn: (instanceId: string) =>
        api<DeploymentView>(`${base}/instance/${enc(instanceId)}/kill`, { method: "POST" }),
      onSuccess: settle,
    }),
  };
}
