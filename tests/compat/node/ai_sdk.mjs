// The Vercel AI SDK (`ai`) against relaygate, through both of its OpenAI-shaped providers. Runs every case once
// and prints one JSON object {case: result} for tests/compat/test_node_clients.py; each case's prompt is its own
// name. Env: RG_URL (the gateway), RG_KEY (a key).
//
// The cases here use `.chat(model)` / `.completion(model)` of `@ai-sdk/openai`, and `@ai-sdk/openai-compatible` (what
// the AI SDK's docs point LiteLLM users to), which speak Chat Completions; `createOpenAI(...)(model)`, OpenAI's
// Responses API (`/v1/responses`), has its own script: responses_ai_sdk.mjs (tests/compat/test_responses_ai_sdk.py).
import { APICallError, generateText, jsonSchema, streamText, tool } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";

const baseURL = `${process.env.RG_URL}/v1`;
const apiKey = process.env.RG_KEY;
// providerOptions.relaygate.* go into the request body as they are: how an AI SDK user sends LiteLLM's fields
const compat = createOpenAICompatible({ name: "relaygate", baseURL, apiKey, includeUsage: true });
const openai = createOpenAI({ baseURL, apiKey });

// the gateway's x-litellm-* headers and the upstream's, passed through as llm_provider-*
const LITELLM = (headers) => Object.fromEntries(Object.entries(headers ?? {}).filter(([k]) => k.startsWith("x-litellm-") || k.startsWith("llm_provider-")));
const weather = tool({
  description: "the weather in a city",
  inputSchema: jsonSchema({ type: "object", properties: { location: { type: "string" } }, required: ["location"] }),
});

const failure = (e) => ({
  error: { class: e?.constructor?.name ?? typeof e, apiCallError: APICallError.isInstance(e),
           status: e?.statusCode ?? null, message: String(e?.message ?? e), body: e?.responseBody ?? null },
});

// streamText reports a stream's error to onError (default: console.error) and as an `error` part
const quiet = (options) => streamText({ ...options, onError: () => {} });

async function drain(result) {
  let text = "";
  const calls = [];
  let error = null;
  for await (const part of result.fullStream) {
    if (part.type === "text-delta") text += part.text;
    else if (part.type === "tool-call") calls.push({ toolName: part.toolName, input: part.input });
    else if (part.type === "error") error = failure(part.error).error;
  }
  if (error) return { error };
  const response = await result.response;
  return { text, calls, modelId: response.modelId, usage: await result.usage, finish: await result.finishReason,
           headers: LITELLM(response.headers) };
}

const cases = {
  async compat_generate() {
    const r = await generateText({
      model: compat.chatModel("gpt-4o"), prompt: "compat_generate", temperature: 0.2, maxRetries: 0,
      providerOptions: { relaygate: { metadata: { team: "ai", n: 1 }, tags: ["ai"], num_retries: 1,
                                      fallbacks: ["gpt-4o-mini"], api_key: "sk-client", litellm_session_id: "s-1" } },
    });
    return { text: r.text, modelId: r.response.modelId, usage: r.usage, headers: LITELLM(r.response.headers) };
  },
  async compat_stream() {
    return drain(quiet({ model: compat.chatModel("gpt-4o"), prompt: "compat_stream", maxRetries: 0,
                              providerOptions: { relaygate: { tags: ["ai"] } } }));
  },
  async compat_tools() {
    const r = await generateText({ model: compat.chatModel("tools"), prompt: "compat_tools", maxRetries: 0,
                                   tools: { get_weather: weather } });
    return { finish: r.finishReason, modelId: r.response.modelId,
             calls: r.toolCalls.map((c) => ({ toolName: c.toolName, input: c.input })) };
  },
  async compat_tools_stream() {
    return drain(quiet({ model: compat.chatModel("tools"), prompt: "compat_tools_stream", maxRetries: 0,
                              tools: { get_weather: weather } }));
  },
  async compat_completion() {
    const r = await generateText({ model: compat.completionModel("gpt-4o"), prompt: "compat_completion",
                                   maxRetries: 0 });
    const s = await drain(quiet({ model: compat.completionModel("gpt-4o"), prompt: "compat_completion_stream",
                                       maxRetries: 0 }));
    return { text: r.text, modelId: r.response.modelId, streamed: s };
  },
  async compat_mock() {
    const r = await generateText({ model: compat.chatModel("gpt-4o"), prompt: "compat_mock", maxRetries: 0,
                                   providerOptions: { relaygate: { mock_response: "canned by the AI SDK" } } });
    return { text: r.text, modelId: r.response.modelId };
  },
  async openai_chat() {
    // OpenAI's own `metadata` (string values) and `user`, as @ai-sdk/openai sends them
    const r = await generateText({ model: openai.chat("gpt-4o"), prompt: "openai_chat", maxRetries: 0,
                                   providerOptions: { openai: { metadata: { team: "ai" }, user: "u-ai" } } });
    return { text: r.text, modelId: r.response.modelId, usage: r.usage, headers: LITELLM(r.response.headers) };
  },
  async openai_stream() {
    return drain(quiet({ model: openai.chat("gpt-4o"), prompt: "openai_stream", maxRetries: 0 }));
  },
  async openai_tools_stream() {
    return drain(quiet({ model: openai.chat("tools"), prompt: "openai_tools_stream", maxRetries: 0,
                              tools: { get_weather: weather } }));
  },
  async openai_completion() {
    const r = await generateText({ model: openai.completion("gpt-4o"), prompt: "openai_completion", maxRetries: 0 });
    return { text: r.text, modelId: r.response.modelId };
  },
  async error_auth() {
    const bad = createOpenAICompatible({ name: "relaygate", baseURL, apiKey: "sk-wrong" });
    return generateText({ model: bad.chatModel("gpt-4o"), prompt: "ai_error_auth", maxRetries: 0 })
      .then(() => ({}), failure);
  },
  async error_model() {
    return generateText({ model: compat.chatModel("no-such-model"), prompt: "ai_error_model", maxRetries: 0 })
      .then(() => ({}), failure);
  },
  async error_rate_limit() {
    return generateText({ model: openai.chat("limited"), prompt: "ai_error_rate_limit", maxRetries: 0 })
      .then(() => ({}), failure);
  },
  async error_stream_500() {
    return drain(quiet({ model: compat.chatModel("flaky"), prompt: "ai_error_stream_500", maxRetries: 0,
                              providerOptions: { relaygate: { num_retries: 0 } } }));
  },
};

const out = {};
for (const [name, run] of Object.entries(cases)) {
  try {
    out[name] = await run();
  } catch (e) {
    out[name] = { unexpected: failure(e).error };
  }
}
process.stdout.write(JSON.stringify(out));
