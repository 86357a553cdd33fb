/**
 * The components of the Orders ETL example (etl.conf): plain classes and a
 * factory, each with `run(input, ctx)`. Paths in their configs are relative
 * to this folder.
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Component, ComponentContext } from "../../lib/pipeline/mod.ts";

const HERE = dirname(fileURLToPath(import.meta.url));

/** One order line. */
export interface Order {
  orderId: string;
  day: string;
  customer: string;
  amount: number | null;
  currency: string;
}

/** Split CSV text into rows of fields (quoted fields may hold commas and doubled quotes). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === "") continue;
    const fields: string[] = [];
    let field = "";
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') {
          field += '"';
          i++;
        } else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") {
        fields.push(field);
        field = "";
      } else field += c;
    }
    fields.push(field);
    rows.push(fields);
  }
  return rows;
}

/** Reads every `PREFIX*.csv` in `dir`, one sub-step per file. */
export class Extract implements Component<undefined, Order[]> {
  #dir: string;
  #prefix: string;
  constructor(config: { dir: string; prefix?: string }) {
    this.#dir = join(HERE, config.dir);
    this.#prefix = config.prefix ?? "";
  }
  async run(_input: undefined, ctx: ComponentContext): Promise<Order[]> {
    const files = (await readdir(this.#dir))
      .filter((f) => f.startsWith(this.#prefix) && f.endsWith(".csv"))
      .sort();
    const orders: Order[] = [];
    for (const file of files) {
      // A sub-step: a resumed run reuses the files this run already parsed.
      const rows = await ctx.step(`file ${file}`, async () => {
        const [header, ...lines] = parseCsv(
          await readFile(join(this.#dir, file), "utf8"),
        );
        return lines.map((fields) =>
          Object.fromEntries(header!.map((h, i) => [h, fields[i] ?? ""]))
        );
      });
      for (const r of rows) {
        orders.push({
          orderId: r.order_id!,
          day: r.day!,
          customer: r.customer!,
          amount: r.amount === "" ? null : Number(r.amount),
          currency: r.currency!,
        });
      }
    }
    ctx.logger.info(`${orders.length} orders from ${files.length} files`);
    return orders;
  }
}

/** Drops orders without a valid amount, or under `min-amount`, and duplicates. */
export class Clean implements Component<Order[], Order[]> {
  #min: number;
  constructor(config: { "min-amount"?: number }) {
    this.#min = config["min-amount"] ?? 0;
  }
  run(orders: Order[]): Order[] {
    const seen = new Set<string>();
    return orders.filter((o) => {
      if (o.amount === null || !Number.isFinite(o.amount)) return false;
      if (o.amount < this.#min || seen.has(o.orderId)) return false;
      seen.add(o.orderId);
      return true;
    });
  }
}

/** One day's totals. */
export interface DayTotal {
  day: string;
  orders: number;
  total: number;
  currency: string;
}

/** Totals per day, converted with the rates file (a factory, not a class). */
export function Aggregate(
  config: { rates: string; currency?: string },
): Component<Order[], DayTotal[]> {
  const currency = config.currency ?? "EUR";
  return {
    name: "Aggregate",
    async run(orders) {
      const path = join(HERE, config.rates);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch {
        throw new Error(`Cannot read exchange rates "${path}": file missing`);
      }
      const rates = new Map(
        parseCsv(text).slice(1).map(([c, r]) => [c!, Number(r)]),
      );
      const days = new Map<string, DayTotal>();
      for (const o of orders) {
        const rate = rates.get(o.currency);
        if (rate === undefined) {
          throw new Error(`No exchange rate for "${o.currency}" in "${path}"`);
        }
        const d = days.get(o.day) ??
          { day: o.day, orders: 0, total: 0, currency };
        d.orders++;
        d.total = Math.round((d.total + o.amount! * rate) * 100) / 100;
        days.set(o.day, d);
      }
      return [...days.values()].sort((a, b) => a.day.localeCompare(b.day));
    },
  };
}

/** Writes the report CSV and returns the daily totals. */
export class WriteReport implements Component<DayTotal[], DayTotal[]> {
  #out: string;
  constructor(config: { out: string }) {
    this.#out = join(HERE, config.out);
  }
  async run(days: DayTotal[], ctx: ComponentContext): Promise<DayTotal[]> {
    await mkdir(dirname(this.#out), { recursive: true });
    const lines = ["day,orders,total,currency"];
    for (const d of days) {
      lines.push(`${d.day},${d.orders},${d.total.toFixed(2)},${d.currency}`);
    }
    await writeFile(this.#out, lines.join("\n") + "\n");
    ctx.logger.info(`wrote ${this.#out}`);
    return days;
  }
}
