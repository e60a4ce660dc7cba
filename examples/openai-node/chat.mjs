// The official OpenAI SDK, unchanged, against the HybridServing gateway. The SDK reads OPENAI_BASE_URL and
// OPENAI_API_KEY; the defaults here are the local stack's (dotnet run --project AppHost).
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.OPENAI_BASE_URL ?? "http://127.0.0.1:8080/v1",
  apiKey: process.env.OPENAI_API_KEY ?? "dev-key",
});
const model = process.env.MODEL ?? "support-en";
const messages = [{ role: "user", content: "My order is late" }];

// A chat completion; withResponse() also gives the HTTP response, whose header names the engine that served it.
const { data: completion, response } = await client.chat.completions
  .create({ model, messages, max_tokens: 16 })
  .withResponse();
console.log(`chat: ${completion.choices[0].message.content}`);
console.log(`engine: ${response.headers.get("x-hybridserving-engine")}`);
console.log(`usage: ${completion.usage.prompt_tokens} prompt + ${completion.usage.completion_tokens} completion tokens`);

// The same, streamed: the gateway passes the engine's server-sent events through as they come.
const stream = await client.chat.completions.create({ model, messages, max_tokens: 16, stream: true });
let chunks = 0;
process.stdout.write("stream: ");
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
  chunks++;
}
console.log(`\nstreamed ${chunks} chunks`);
