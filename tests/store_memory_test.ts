import { createMemoryStore, type MemoryStore } from "../store/memory.ts";
import { flipInRecord, testStoreConformance } from "./store_conformance.ts";

testStoreConformance("memory", {
  create: () => Promise.resolve(createMemoryStore()),
  corruptChunk(store, hash) {
    const entry = (store as MemoryStore).chunkBytes.get(hash)!;
    entry.bytes[0]! ^= 0xff;
    return Promise.resolve();
  },
  ageChunk(store, hash, ms) {
    (store as MemoryStore).chunkBytes.get(hash)!.mtimeMs = Date.now() - ms;
    return Promise.resolve();
  },
  damageLog(store, job, run, seq) {
    const logs = (store as MemoryStore).logBytes;
    logs.set(`${job}/${run}`, flipInRecord(logs.get(`${job}/${run}`)!, seq));
    return Promise.resolve();
  },
});
