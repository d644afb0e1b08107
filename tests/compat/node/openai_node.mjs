// openai-node (the `openai` npm package) against relaygate: runs every case once and prints one JSON object
// {case: result} for tests/compat/test_node_clients.py. Each case's prompt is its own name, so the Python
// side finds what reached the recording upstream for it. Env: RG_URL (the gateway), RG_KEY (a key).
import OpenAI from "openai";

const client = new OpenAI({ baseURL: `${process.env.RG_URL}/v1`, apiKey: process.env.RG_KEY, maxRetries: 0 });
const msgs = (name) => [{ role: "user", content: name }];
// the gateway's x-litellm-* headers and the upstream's, passed through as llm_provider-*
const LITELLM = (headers) => Object.fromEntries([...headers].filter(([k]) => k.startsWith("x-litellm-") || k.startsWith("llm_provider-")));
const TOOLS = [{ type: "function", function: { name: "get_weather", description: "the weather in a city",
  parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] } } }];

const failure = (e) => ({
  error: { class: e.constructor.name, status: e.status ?? null, message: String(e.message ?? e),
           apiError: e instanceof OpenAI.APIError, type: e.error?.type ?? null },
});

const cases = {
  // LiteLLM control fields in the body (openai-node sends unknown params as they are)
  async chat_controls() {
    const { data, response } = await client.chat.completions.create({
      model: "gpt-4o", messages: msgs("chat_controls"), temperature: 0.2,
      metadata: { team: "node", n: "1" }, tags: ["node"], num_retries: 1, fallbacks: ["gpt-4o-mini"],
      api_base: "http://evil.invalid/v1", api_key: "sk-client", litellm_trace_id: "t-node",
    }).withResponse();
    return { model: data.model, content: data.choices[0].message.content, usage: data.usage,
             headers: LITELLM(response.headers) };
  },
  async stream_usage() {
    const stream = await client.chat.completions.create({
      model: "gpt-4o", messages: msgs("stream_usage"), stream: true, stream_options: { include_usage: true },
      metadata: { team: "node" },
    });
    const models = new Set();
    let text = "";
    let usage = null;
    for await (const chunk of stream) {
      models.add(chunk.model);
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    return { models: [...models], text, usage };
  },
  async tools() {
    const r = await client.chat.completions.create({ model: "tools", messages: msgs("tools"), tools: TOOLS });
    return { model: r.model, finish: r.choices[0].finish_reason, calls: r.choices[0].message.tool_calls };
  },
  async tools_stream() {
    // the SDK's stream helper accumulates tool-call deltas into a final completion
    const runner = client.chat.completions.stream({ model: "tools", messages: msgs("tools_stream"), tools: TOOLS,
                                                     stream_options: { include_usage: true } });
    const done = await runner.finalChatCompletion();
    return { model: done.model, finish: done.choices[0].finish_reason, calls: done.choices[0].message.tool_calls,
             usage: done.usage };
  },
  async completions() {
    const r = await client.completions.create({ model: "gpt-4o", prompt: "completions", max_tokens: 5 });
    const stream = await client.completions.create({ model: "gpt-4o", prompt: "completions_stream", stream: true });
    let text = "";
    const models = new Set();
    for await (const c of stream) {
      text += c.choices[0]?.text ?? "";
      models.add(c.model);
    }
    return { object: r.object, model: r.model, text: r.choices[0].text, streamed: text, stream_models: [...models] };
  },
  async mock_response() {
    const r = await client.chat.completions.create({ model: "gpt-4o", messages: msgs("mock_response"),
                                                     mock_response: "canned by node" });
    return { model: r.model, content: r.choices[0].message.content };
  },
  async fallbacks() {
    const { data, response } = await client.chat.completions.create({
      model: "flaky", messages: msgs("fallbacks"), fallbacks: ["gpt-4o"], num_retries: 0,
    }).withResponse();
    return { content: data.choices[0].message.content, headers: LITELLM(response.headers) };
  },
  async num_retries() {
    return client.chat.completions.create({ model: "flaky", messages: msgs("num_retries"), num_retries: 1 })
      .then(() => ({ error: null }), failure);
  },
  async error_auth() {
    const bad = new OpenAI({ baseURL: `${process.env.RG_URL}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
    return bad.chat.completions.create({ model: "gpt-4o", messages: msgs("error_auth") }).then(() => ({}), failure);
  },
  async error_model() {
    return client.chat.completions.create({ model: "no-such-model", messages: msgs("error_model") })
      .then(() => ({}), failure);
  },
  async error_rate_limit() {
    return client.chat.completions.create({ model: "limited", messages: msgs("error_rate_limit"), num_retries: 0 })
      .then(() => ({}), failure);
  },
  async error_mock_rate_limit() {
    return client.chat.completions.create({ model: "gpt-4o", messages: msgs("error_mock_rate_limit"),
                                            mock_testing_rate_limit_error: true }).then(() => ({}), failure);
  },
  async error_upstream_500_stream() {
    try {
      const stream = await client.chat.completions.create({ model: "flaky", messages: msgs("error_500_stream"),
                                                            stream: true, num_retries: 0 });
      for await (const _ of stream) { /* drain */ }
      return {};
    } catch (e) {
      return failure(e);
    }
  },
};

const out = {};
const only = process.env.RG_CASES ? process.env.RG_CASES.split(",") : null;  // to run a few while debugging
for (const [name, run] of Object.entries(cases)) {
  if (only && !only.includes(name)) continue;
  try {
    out[name] = await run();
  } catch (e) {
    out[name] = { unexpected: failure(e).error };
  }
}
process.stdout.write(JSON.stringify(out));
