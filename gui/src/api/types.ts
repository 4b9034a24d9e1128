// The API's bodies as the GUI uses them, named after the OpenAPI document's schemas (schema.d.ts is generated
// from it by `npm run api-types`, so a change of the API shows up here as a type error).
import type { components } from "./schema";

type Schemas = components["schemas"];

export type Problem = Schemas["Problem"];
export type LoginResponse = Schemas["LoginResponse"];
export type Me = Schemas["Me"];
export type Dashboard = Schemas["Dashboard"];
export type ClusterView = Schemas["ClusterView"];
export type ServerView = Schemas["ServerView"];
export type InstanceView = Schemas["InstanceView"];
export type BundleItem = Schemas["BundleItem"];
export type BundleDetail = Schemas["BundleDetail"];
export type InstanceItem = Schemas["InstanceItem"];
export type PayloadItem = Schemas["PayloadItem"];
export type PayloadDetail = Schemas["PayloadDetail"];
export type ComponentItem = Schemas["ComponentItem"];
export type ComponentDetail = Schemas["ComponentDetail"];
export type HandlerItem = Schemas["HandlerItem"];
export type Invocation = Schemas["Invocation"];
export type ConsumerItem = Schemas["ConsumerItem"];
export type ConsumerStatus = Schemas["ConsumerStatus"];
export type DeadEvent = Schemas["DeadEvent"];
export type DeadQueueConsumed = Schemas["DeadQueueConsumed"];
export type ResetAccepted = Schemas["ResetAccepted"];
export type StoredEvent = Schemas["StoredEventView"];
export type Snapshot = Schemas["SnapshotView"];
export type Aggregation = Schemas["Aggregation"];
export type ComponentPerformance = Schemas["ComponentPerformance"];
export type HandlerPerformance = Schemas["HandlerPerformance"];
export type AggregatePerformance = Schemas["AggregatePerformance"];
export type CommandPhases = Schemas["CommandPhases"];
export type PhaseTimes = Schemas["PhaseTimes"];
export type PublicationRate = Schemas["PublicationRate"];

/** One page of a list: `items` from position `page * size` of `total` (page is 0-based, as in the API). */
export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  size: number;
}
