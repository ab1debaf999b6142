// The official JavaScript client (npm `replicate`), unchanged, against the simulator over HTTPS.
// Run by tests/test_simulator_js_client.py: node client_check.mjs BASE_URL (e.g. https://127.0.0.1:PORT)
// with NODE_EXTRA_CA_CERTS naming the simulator's certificate authority. Prints one JSON line of
// what it saw; any failed check throws (exit code 1).
import assert from "node:assert/strict";
import Replicate from "replicate";

const base = process.argv[2];
const replicate = new Replicate({ auth: "r8_js_client", baseUrl: `${base}/v1` });
const seen = {};

function isFileOutput(value) {
  return value instanceof ReadableStream && typeof value.blob === "function" && typeof value.url === "function";
}

async function magic(fileOutput) {
  const bytes = new Uint8Array(await (await fileOutput.blob()).arrayBuffer());
  return String.fromCharCode(...bytes.slice(8, 12)); // "WEBP" in a RIFF header
}

// run: FileOutput for https: URLs, one for flux-pro, a list for flux-schnell.
const single = await replicate.run("black-forest-labs/flux-pro", { input: { prompt: "a lighthouse", seed: 5 } });
assert.ok(isFileOutput(single), "run returns a FileOutput");
assert.ok(single.url().href.startsWith(`${base}/delivery/`));
assert.equal(await magic(single), "WEBP");
const several = await replicate.run("black-forest-labs/flux-schnell", { input: { prompt: "cats", num_outputs: 2 } });
assert.equal(several.length, 2);
assert.ok(several.every(isFileOutput));
seen.run = { single: single.url().href, several: several.length };

// create, then wait (polling), then cancel another.
let prediction = await replicate.predictions.create({
  model: "black-forest-labs/flux-dev",
  input: { prompt: "rain" },
});
assert.equal(prediction.status, "starting");
prediction = await replicate.wait(prediction, { interval: 50 });
assert.equal(prediction.status, "succeeded");
assert.ok(prediction.logs.includes("Using seed:"));
const toCancel = await replicate.predictions.create({ model: "black-forest-labs/flux-dev", input: { prompt: "x" } });
assert.equal((await replicate.predictions.cancel(toCancel.id)).status, "canceled");
seen.create = prediction.id;

// Pinned versions: the client sends a bare 64-hex id.
const model = await replicate.models.get("black-forest-labs", "flux-schnell");
const version = model.latest_version.id;
assert.match(version, /^[0-9a-f]{64}$/);
assert.ok("prompt" in model.latest_version.openapi_schema.components.schemas.Input.properties);
const fetched = await replicate.models.versions.get("black-forest-labs", "flux-schnell", version);
assert.equal(fetched.id, version);
assert.deepEqual((await replicate.models.versions.list("black-forest-labs", "flux-schnell")).results, [fetched]);
const pinned = await replicate.run(`black-forest-labs/flux-schnell:${version}`, { input: { prompt: "a kite" } });
assert.ok(isFileOutput(pinned[0]));
const byVersion = await replicate.predictions.create({ version, input: { prompt: "a kite" } });
assert.equal(byVersion.version, version);
seen.version = version;

// paginate: every page of the list (the test created more than two pages' worth first).
const ids = [];
let pages = 0;
for await (const page of replicate.paginate(replicate.predictions.list)) {
  pages += 1;
  ids.push(...page.map((p) => p.id));
}
assert.ok(pages >= 3, `paginate saw ${pages} pages`);
assert.equal(new Set(ids).size, ids.length);
seen.paginate = { pages, predictions: ids.length };

// files: create from a Buffer and from a Blob with metadata (sent as a Blob part), get, list, delete.
const png = Buffer.from(process.env.PNG_BASE64, "base64");
const fromBuffer = await replicate.files.create(png);
assert.equal(fromBuffer.size, png.length);
const fromBlob = await replicate.files.create(new Blob([png], { type: "image/png" }), { job: 7 });
assert.deepEqual(fromBlob.metadata, { job: 7 });
assert.equal(fromBlob.content_type, "image/png");
assert.equal((await replicate.files.get(fromBlob.id)).id, fromBlob.id);
assert.ok((await replicate.files.list()).results.some((f) => f.id === fromBuffer.id));
assert.equal(await replicate.files.delete(fromBuffer.id), true);
await assert.rejects(replicate.files.get(fromBuffer.id), (err) => err.response.status === 404);
seen.files = { buffer: fromBuffer.id, blob: fromBlob.id };

// A Blob as an image input: the client uploads it and passes urls.get; kontext keeps the input's size.
const edited = await replicate.run("black-forest-labs/flux-kontext-pro", {
  input: { prompt: "make it blue", input_image: new Blob([png], { type: "image/png" }) },
});
assert.ok(isFileOutput(edited));
const editedBytes = new Uint8Array(await (await edited.blob()).arrayBuffer());
const view = new DataView(editedBytes.buffer);
seen.kontext = { width: view.getUint32(16), height: view.getUint32(20) }; // the PNG's IHDR

// stream: server-sent events from urls.stream, outputs then done.
const events = [];
for await (const event of replicate.stream("black-forest-labs/flux-schnell", { input: { prompt: "fog" } })) {
  events.push(event.event);
}
assert.deepEqual(events.slice(-2), ["output", "done"]);
seen.stream = events;

// errors: a 422 problem reaches the caller as an ApiError with the response.
await assert.rejects(
  replicate.run("black-forest-labs/flux-pro", { input: { prompt: "x", guidance: 99 } }),
  (err) => err.response.status === 422 && err.message.includes("guidance"),
);
seen.errors = true;

console.log(JSON.stringify(seen));
