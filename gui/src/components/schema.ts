// A JSON Schema (as msgspec writes a payload's: `$ref` into `$defs`) flattened into rows a person reads: one
// per field, nested objects and arrays of objects as dotted paths (`todos[].content`), recursion cut at a type
// already being expanded.

export interface FieldRow {
  path: string;
  depth: number;
  type: string;
  required: boolean;
  nullable: boolean;
  description: string;
  constraints: string[];
}

type Schema = Record<string, unknown>;

function isSchema(value: unknown): value is Schema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function refName(ref: string): string {
  return ref.split("/").pop() ?? ref;
}

function resolve(schema: Schema, root: Schema): { schema: Schema; name: string | null } {
  const ref = schema.$ref;
  if (typeof ref !== "string" || !ref.startsWith("#/")) return { schema, name: null };
  let node: unknown = root;
  for (const part of ref.slice(2).split("/")) {
    node = isSchema(node) ? node[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
  }
  return isSchema(node) ? { schema: node, name: refName(ref) } : { schema: {}, name: refName(ref) };
}

/** Alternatives of an `anyOf`/`oneOf`, without the `null` one (which makes the field nullable). */
function alternatives(schema: Schema): { options: Schema[]; nullable: boolean } {
  const list = schema.anyOf ?? schema.oneOf;
  if (!Array.isArray(list)) return { options: [schema], nullable: schema.type === "null" };
  const options = list.filter(isSchema);
  const nonNull = options.filter((option) => option.type !== "null");
  return { options: nonNull, nullable: nonNull.length < options.length };
}

/** A short type name: `string`, `integer`, `TodoView`, `TodoView[]`, `string | integer`, `enum`. */
export function typeLabel(schema: Schema, root: Schema): string {
  const { options } = alternatives(schema);
  if (options.length !== 1 || options[0] !== schema) {
    return options.map((option) => typeLabel(option, root)).join(" | ") || "null";
  }
  if (typeof schema.$ref === "string") return refName(schema.$ref);
  if (Array.isArray(schema.enum)) return "enum";
  if ("const" in schema) return "const";
  const type = schema.type;
  if (type === "array") {
    const items = isSchema(schema.items) ? typeLabel(schema.items, root) : "any";
    return `${items}[]`;
  }
  if (Array.isArray(type)) return type.join(" | ");
  if (typeof type === "string") return typeof schema.format === "string" ? `${type} (${schema.format})` : type;
  return "any";
}

function constraintsOf(schema: Schema): string[] {
  const found: string[] = [];
  if (Array.isArray(schema.enum)) found.push(`one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`);
  if ("const" in schema) found.push(`= ${JSON.stringify(schema.const)}`);
  const bounds: [string, string][] = [
    ["minimum", "≥"], ["exclusiveMinimum", ">"], ["maximum", "≤"], ["exclusiveMaximum", "<"],
    ["minLength", "length ≥"], ["maxLength", "length ≤"], ["minItems", "items ≥"], ["maxItems", "items ≤"],
  ];
  for (const [key, sign] of bounds) {
    const value = schema[key];
    if (typeof value === "number") found.push(`${sign} ${value}`);
  }
  if (typeof schema.pattern === "string") found.push(`matches ${schema.pattern}`);
  if ("default" in schema) found.push(`default ${JSON.stringify(schema.default)}`);
  return found;
}

/** The object a field's value holds, when it is one (directly, through a ref, or as an array's items). */
function objectOf(schema: Schema, root: Schema): { schema: Schema; name: string | null; array: boolean } | null {
  const { options } = alternatives(schema);
  if (options.length !== 1 || !options[0]) return null;
  let node = options[0];
  let array = false;
  if (node.type === "array" && isSchema(node.items)) {
    node = node.items;
    array = true;
  }
  const resolved = resolve(node, root);
  const alts = alternatives(resolved.schema);
  const target = alts.options.length === 1 && alts.options[0] ? resolve(alts.options[0], root) : resolved;
  return isSchema(target.schema.properties) ? { schema: target.schema, name: target.name ?? resolved.name, array } : null;
}

/** The rows of `schema`'s fields (the payload's own object first resolved). */
export function schemaRows(schema: Schema): FieldRow[] {
  const rows: FieldRow[] = [];
  const top = resolve(schema, schema);
  const walk = (node: Schema, prefix: string, depth: number, expanding: Set<string>) => {
    const properties = isSchema(node.properties) ? node.properties : {};
    const required = new Set(Array.isArray(node.required) ? node.required.map(String) : []);
    for (const [name, value] of Object.entries(properties)) {
      if (!isSchema(value)) continue;
      const field = value;
      const { nullable, options } = alternatives(field);
      const shown = options.length === 1 && options[0] ? options[0] : field;
      const resolved = resolve(shown, schema).schema;
      rows.push({
        path: `${prefix}${name}`,
        depth,
        type: typeLabel(field, schema),
        required: required.has(name),
        nullable,
        description: text(field.description) || text(resolved.description) || text(field.title),
        constraints: constraintsOf({ ...resolved, ...shown }),
      });
      const inner = objectOf(field, schema);
      if (inner && depth < 6 && !(inner.name && expanding.has(inner.name))) {
        const next = new Set(expanding);
        if (inner.name) next.add(inner.name);
        walk(inner.schema, `${prefix}${name}${inner.array ? "[]" : ""}.`, depth + 1, next);
      }
    }
  };
  walk(top.schema, "", 0, new Set(top.name ? [top.name] : []));
  return rows;
}
