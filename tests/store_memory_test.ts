import { createMemoryStore, type MemoryStore } from "../store/memory.ts";
import { testStoreConformance } from "./store_conformance.ts";

testStoreConformance("memory", {
  create: () => Promise.resolve(createMemoryStore()),
  corruptChunk(store, hash) {
    const entry = (store as MemoryStore).chunkBytes.get(hash)!;
    entry.bytes[0]! ^= 0xff;
    return Promise.resolve();
  },
});
