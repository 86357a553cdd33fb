/**
 * A HOCON subset, enough for pipeline configs: objects and arrays, `=`/`:`/`{`
 * after keys, dotted keys, commas or newlines between fields, `#` and `//`
 * comments, quoted, triple-quoted and unquoted strings, numbers, booleans,
 * null, value concatenation, duplicate keys merged, `${path}` and `${?path}`
 * substitutions (falling back to environment variables) and
 * `include "file"` / `include required("file")`. Not supported: `+=`,
 * `include url(…)`/`classpath(…)`, and substitutions inside arrays that refer
 * to the array itself.
 *
 * The two npm parsers were checked first: `hocon-parser` 1.0.1 ignores
 * includes and silently turns bad syntax into values; `@pushcorn/hocon-parser`
 * 1.3.1 loads its own modules with computed `require` paths, which
 * `bun build --compile` cannot bundle (the single binary fails at start-up).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

type Value =
  | string
  | number
  | boolean
  | null
  | Value[]
  | { [key: string]: Value };

/** An unresolved piece of the tree, turned into a plain value after parsing. */
type Raw =
  | { t: "value"; v: Value }
  | { t: "object"; fields: Map<string, Raw> }
  | { t: "array"; items: Raw[] }
  | { t: "subst"; path: string[]; optional: boolean; line: number; col: number }
  | { t: "concat"; parts: Raw[]; gaps: string[] };

/** Options for {@linkcode parseHocon}. */
export interface ParseHoconOptions {
  /** The file the text came from: named in errors, base of relative includes. Default: "(text)". */
  file?: string;
  /** Environment for substitutions not found in the config. Default: `process.env`. */
  env?: Record<string, string | undefined>;
}

/**
 * Parse HOCON text into plain JSON values.
 *
 * @param text The config text.
 * @param options File name and environment.
 * @returns The root object.
 * @throws {SyntaxError} Naming the file, line and column.
 */
export function parseHocon(
  text: string,
  options: ParseHoconOptions = {},
): Record<string, Value> {
  const file = options.file ?? "(text)";
  const root = new Parser(text, file, new Set([file])).document();
  const env = options.env ?? process.env;
  const resolved = resolveRaw(root, root, env, file, []);
  return resolved as Record<string, Value>;
}

const UNQUOTED_STOP = new Set([
  "$",
  '"',
  "{",
  "}",
  "[",
  "]",
  ":",
  "=",
  ",",
  "+",
  "#",
  "`",
  "^",
  "?",
  "!",
  "@",
  "*",
  "&",
  "\\",
]);

class Parser {
  #text: string;
  #file: string;
  #pos = 0;
  #including: Set<string>;

  constructor(text: string, file: string, including: Set<string>) {
    this.#text = text.replace(/^\uFEFF/, "");
    this.#file = file;
    this.#including = including;
  }

  #where(pos = this.#pos): { line: number; col: number } {
    const before = this.#text.slice(0, pos);
    const line = before.split("\n").length;
    return { line, col: pos - before.lastIndexOf("\n") };
  }

  #fail(message: string, pos = this.#pos): never {
    const { line, col } = this.#where(pos);
    throw new SyntaxError(
      `Cannot parse "${this.#file}": line ${line}, column ${col}: ${message}`,
    );
  }

  #found(): string {
    const c = this.#text[this.#pos];
    if (c === undefined) return "the end of the file";
    if (c === "\n") return "a line break";
    return `"${c}"`;
  }

  /** Skip spaces and comments; with `newlines`, line breaks too. Returns whether a line break was skipped. */
  #skip(newlines: boolean): boolean {
    let sawNewline = false;
    for (;;) {
      const c = this.#text[this.#pos];
      if (c === undefined) return sawNewline;
      if (c === "\n") {
        if (!newlines) return sawNewline;
        sawNewline = true;
        this.#pos++;
      } else if (c === " " || c === "\t" || c === "\r" || c === "\uFEFF") {
        this.#pos++;
      } else if (c === "#" || this.#text.startsWith("//", this.#pos)) {
        while (
          this.#pos < this.#text.length && this.#text[this.#pos] !== "\n"
        ) this.#pos++;
      } else return sawNewline;
    }
  }

  document(): Raw {
    this.#skip(true);
    let body: Raw;
    if (this.#text[this.#pos] === "{") {
      this.#pos++;
      body = this.#objectBody("}");
    } else if (this.#text[this.#pos] === "[") {
      this.#fail("the root of a config must be an object, found an array");
    } else body = this.#objectBody(undefined);
    this.#skip(true);
    if (this.#pos < this.#text.length) {
      this.#fail(`expected the end of the file, found ${this.#found()}`);
    }
    return body;
  }

  #objectBody(close: string | undefined): Raw {
    const fields = new Map<string, Raw>();
    const object: Raw = { t: "object", fields };
    for (;;) {
      this.#skip(true);
      const c = this.#text[this.#pos];
      if (c === undefined) {
        if (close !== undefined) {
          this.#fail(
            `expected "${close}" to close an object, found the end of the file`,
          );
        }
        return object;
      }
      if (c === close) {
        this.#pos++;
        return object;
      }
      if (c === ",") this.#fail('expected a key, found ","');
      if (this.#startsInclude()) {
        const included = this.#include();
        if (included !== undefined) mergeInto(object, included);
      } else {
        const path = this.#key();
        this.#skip(false);
        let value: Raw;
        const next = this.#text[this.#pos];
        if (next === "{") {
          value = this.#value();
        } else if (next === "=" || next === ":") {
          this.#pos++;
          this.#skip(true);
          value = this.#value();
        } else if (next === "+" && this.#text[this.#pos + 1] === "=") {
          this.#fail('"+=" is not supported; write the whole array');
        } else {
          this.#fail(
            `expected "=", ":" or "{" after key "${
              path.join(".")
            }", found ${this.#found()}`,
          );
        }
        setPath(object, path, value);
      }
      const newline = this.#skip(false);
      const after = this.#text[this.#pos];
      if (after === ",") this.#pos++;
      else if (after === close) continue;
      else if (after === undefined) continue;
      else if (after === "\n" || newline) continue;
      else {
        this.#fail(
          `expected ",", a line break or "${
            close ?? "end of file"
          }" after a field, found ${this.#found()}`,
        );
      }
    }
  }

  #startsInclude(): boolean {
    return /^include\s+["a-z]/.test(
      this.#text.slice(this.#pos, this.#pos + 12),
    );
  }

  #include(): Raw | undefined {
    this.#pos += "include".length;
    this.#skip(false);
    let required = false;
    if (this.#text.startsWith("required(", this.#pos)) {
      required = true;
      this.#pos += "required(".length;
    }
    if (this.#text.startsWith("file(", this.#pos)) {
      this.#pos += "file(".length;
    } else if (/^(url|classpath)\(/.test(this.#text.slice(this.#pos))) {
      this.#fail("only file includes are supported");
    }
    const start = this.#pos;
    if (this.#text[this.#pos] !== '"') {
      this.#fail(
        `expected a quoted file name after include, found ${this.#found()}`,
      );
    }
    const name = this.#quoted();
    while (this.#text[this.#pos] === ")") this.#pos++;
    const path = resolve(dirname(this.#file), name);
    if (this.#including.has(path)) {
      this.#fail(`include "${name}" includes itself`, start);
    }
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      if (!required && (error as NodeJS.ErrnoException).code === "ENOENT") {
        return undefined; // HOCON: a missing plain include is ignored
      }
      this.#fail(
        `cannot read included file "${path}": ${(error as Error).message}`,
        start,
      );
    }
    return new Parser(text, path, new Set([...this.#including, path]))
      .document();
  }

  #key(): string[] {
    const path: string[] = [];
    let segment = "";
    let any = false;
    const start = this.#pos;
    for (;;) {
      const c = this.#text[this.#pos];
      if (c === '"') {
        segment += this.#quoted();
        any = true;
      } else if (c === ".") {
        if (!any) this.#fail("empty key segment", start);
        path.push(segment);
        segment = "";
        any = false;
        this.#pos++;
      } else if (
        c === undefined || c === " " || c === "\t" || c === "\n" ||
        c === "\r" || UNQUOTED_STOP.has(c) ||
        this.#text.startsWith("//", this.#pos)
      ) break;
      else {
        segment += c;
        any = true;
        this.#pos++;
      }
    }
    if (!any) this.#fail(`expected a key, found ${this.#found()}`, start);
    path.push(segment.trim());
    return path;
  }

  #quoted(): string {
    if (this.#text.startsWith('"""', this.#pos)) {
      const end = this.#text.indexOf('"""', this.#pos + 3);
      if (end < 0) this.#fail('unterminated """ string');
      let stop = end + 3;
      while (this.#text[stop] === '"') stop++; // extra quotes belong to the string
      const value = this.#text.slice(this.#pos + 3, stop - 3);
      this.#pos = stop;
      return value;
    }
    const start = this.#pos;
    this.#pos++;
    let raw = '"';
    for (;;) {
      const c = this.#text[this.#pos];
      if (c === undefined || c === "\n") {
        this.#fail("unterminated string", start);
      }
      raw += c;
      this.#pos++;
      if (c === "\\") {
        raw += this.#text[this.#pos] ?? "";
        this.#pos++;
      } else if (c === '"') break;
    }
    try {
      return JSON.parse(raw) as string;
    } catch {
      this.#fail("invalid escape in string", start);
    }
  }

  /** A value: one or more simple values on one line, concatenated. */
  #value(): Raw {
    const parts: Raw[] = [];
    const gaps: string[] = [];
    for (;;) {
      const start = this.#pos;
      parts.push(this.#simple());
      const before = this.#pos;
      this.#skip(false);
      const c = this.#text[this.#pos];
      if (
        c === undefined || c === "\n" || c === "," || c === "}" || c === "]" ||
        this.#text.startsWith("//", this.#pos) || c === "#"
      ) break;
      if (this.#pos === start) this.#fail(`unexpected ${this.#found()}`);
      gaps.push(this.#text.slice(before, this.#pos));
    }
    return parts.length === 1 ? parts[0]! : { t: "concat", parts, gaps };
  }

  #simple(): Raw {
    const c = this.#text[this.#pos];
    if (c === "{") {
      this.#pos++;
      return this.#objectBody("}");
    }
    if (c === "[") {
      this.#pos++;
      return this.#array();
    }
    if (c === '"') return { t: "value", v: this.#quoted() };
    if (c === "$" && this.#text[this.#pos + 1] === "{") {
      const { line, col } = this.#where();
      this.#pos += 2;
      const optional = this.#text[this.#pos] === "?";
      if (optional) this.#pos++;
      const close = this.#text.indexOf("}", this.#pos);
      if (close < 0) this.#fail('unterminated substitution, expected "}"');
      const inner = this.#text.slice(this.#pos, close).trim();
      if (inner === "") this.#fail("empty substitution");
      this.#pos = close + 1;
      const path = inner.split(".").map((s) =>
        s.startsWith('"') ? JSON.parse(s) as string : s
      );
      return { t: "subst", path, optional, line, col };
    }
    const start = this.#pos;
    while (this.#pos < this.#text.length) {
      const ch = this.#text[this.#pos]!;
      if (
        ch === "\n" || ch === " " || ch === "\t" || ch === "\r" ||
        UNQUOTED_STOP.has(ch) || this.#text.startsWith("//", this.#pos)
      ) break;
      this.#pos++;
    }
    const word = this.#text.slice(start, this.#pos);
    if (word === "") this.#fail(`expected a value, found ${this.#found()}`);
    if (word === "true") return { t: "value", v: true };
    if (word === "false") return { t: "value", v: false };
    if (word === "null") return { t: "value", v: null };
    if (/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(word)) {
      return { t: "value", v: Number(word) };
    }
    return { t: "value", v: word };
  }

  #array(): Raw {
    const items: Raw[] = [];
    for (;;) {
      this.#skip(true);
      const c = this.#text[this.#pos];
      if (c === undefined) {
        this.#fail('expected "]" to close an array, found the end of the file');
      }
      if (c === "]") {
        this.#pos++;
        return { t: "array", items };
      }
      if (c === ",") this.#fail('expected a value, found ","');
      items.push(this.#value());
      const newline = this.#skip(false);
      const after = this.#text[this.#pos];
      if (after === ",") this.#pos++;
      else if (after === "]" || after === "\n" || newline) continue;
      else {
        this.#fail(
          `expected ",", a line break or "]" in an array, found ${this.#found()}`,
        );
      }
    }
  }
}

function setPath(object: Raw & { t: "object" }, path: string[], value: Raw) {
  let target = object;
  for (const segment of path.slice(0, -1)) {
    let next = target.fields.get(segment);
    if (next === undefined || next.t !== "object") {
      next = { t: "object", fields: new Map() };
      target.fields.set(segment, next);
    }
    target = next;
  }
  const last = path.at(-1)!;
  const existing = target.fields.get(last);
  if (existing?.t === "object" && value.t === "object") {
    mergeInto(existing, value);
  } else target.fields.set(last, value);
}

function mergeInto(target: Raw, source: Raw): void {
  if (target.t !== "object" || source.t !== "object") return;
  for (const [key, value] of source.fields) setPath(target, [key], value);
}

function lookup(root: Raw, path: string[]): Raw | undefined {
  let node: Raw | undefined = root;
  for (const segment of path) {
    if (node?.t !== "object") return undefined;
    node = node.fields.get(segment);
  }
  return node;
}

/** Resolve substitutions; `undefined` stands for a missing optional one. */
function resolveRaw(
  node: Raw,
  root: Raw,
  env: Record<string, string | undefined>,
  file: string,
  stack: string[],
): Value | undefined {
  switch (node.t) {
    case "value":
      return node.v;
    case "object": {
      const out: Record<string, Value> = {};
      for (const [key, value] of node.fields) {
        const v = resolveRaw(value, root, env, file, stack);
        if (v !== undefined) out[key] = v;
      }
      return out;
    }
    case "array": {
      const out: Value[] = [];
      for (const item of node.items) {
        const v = resolveRaw(item, root, env, file, stack);
        if (v !== undefined) out.push(v);
      }
      return out;
    }
    case "subst": {
      const name = node.path.join(".");
      if (stack.includes(name)) {
        throw new SyntaxError(
          `Cannot parse "${file}": line ${node.line}, column ${node.col}: substitution \${${name}} refers to itself`,
        );
      }
      const target = lookup(root, node.path);
      if (target !== undefined) {
        return resolveRaw(target, root, env, file, [...stack, name]);
      }
      const fromEnv = env[name];
      if (fromEnv !== undefined) return fromEnv;
      if (node.optional) return undefined;
      throw new SyntaxError(
        `Cannot parse "${file}": line ${node.line}, column ${node.col}: substitution \${${name}} is not set in the config or the environment; use \${?${name}} to make it optional`,
      );
    }
    case "concat": {
      const values = node.parts.map((p) =>
        resolveRaw(p, root, env, file, stack)
      );
      const present = values.filter((v) => v !== undefined) as Value[];
      if (
        present.length > 0 &&
        present.every((v) => typeof v === "object" && v !== null)
      ) {
        if (present.every(Array.isArray)) return present.flat();
        if (present.every((v) => !Array.isArray(v))) {
          return Object.assign({}, ...present) as Value;
        }
      }
      let text = "";
      values.forEach((v, i) => {
        if (i > 0) text += node.gaps[i - 1] ?? "";
        if (v === undefined) return;
        if (typeof v === "object" && v !== null) {
          throw new SyntaxError(
            `Cannot parse "${file}": cannot concatenate an object or array with a string`,
          );
        }
        text += String(v);
      });
      return text;
    }
  }
}
