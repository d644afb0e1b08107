// The Vercel AI SDK's default OpenAI provider (`createOpenAI({baseURL, apiKey})(model)`, which speaks the
// Responses API in ai 6) against relaygate's /v1/responses, for tests/compat/test_responses_ai_sdk.py.
// Env: RG_URL (the gateway), RG_KEY (a key), RG_MODELS (JSON: deployment name -> model group).
// Runs every case once per deployment and prints one JSON object {"<case>:<deployment>": result}; each case's
// prompt is in its result, so the tests find what reached the provider for it.
import { APICallError, generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import { createOpenAI } from "@ai-sdk/openai";

const openai = createOpenAI({ baseURL: `${process.env.RG_URL}/v1`, apiKey: process.env.RG_KEY });
const models = JSON.parse(process.env.RG_MODELS);

const failure = (e) => ({
  class: e?.constructor?.name ?? typeof e, apiCallError: APICallError.isInstance(e),
  status: e?.statusCode ?? null, message: String(e?.message ?? e), body: e?.responseBody ?? null,
});

const executed = [];
const weather = tool({
  description: "The weather in a city",
  inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" } }, required: ["city"],
                            additionalProperties: false }),
  execute: async ({ city }) => {
    executed.push(city);
    return `20C and sunny in ${city}`;
  },
});

const stepOf = (s) => ({
  text: s.text, finishReason: s.finishReason, usage: s.usage,
  toolCalls: s.toolCalls.map((c) => ({ toolCallId: c.toolCallId, toolName: c.toolName, input: c.input })),
  toolResults: s.toolResults.map((r) => ({ toolCallId: r.toolCallId, output: r.output })),
  responseId: s.response.id, modelId: s.response.modelId,
});

const cases = {
  async generate(model, prompt) {
    const r = await generateText({ model: openai(model), system: "be brief", prompt, maxOutputTokens: 200,
                                   temperature: 0.25, maxRetries: 0 });
    return { text: r.text, finishReason: r.finishReason, usage: r.usage, responseId: r.response.id,
             modelId: r.response.modelId, providerMetadata: r.providerMetadata ?? null };
  },
  async stream(model, prompt) {
    const errors = [];
    const r = streamText({ model: openai(model), system: "be brief", prompt, maxOutputTokens: 120,
                           temperature: 0.5, maxRetries: 0, onError: ({ error }) => errors.push(failure(error)) });
    const deltas = [];
    const parts = [];
    for await (const part of r.fullStream) {
      parts.push(part.type);
      if (part.type === "text-delta") deltas.push(part.text);
    }
    if (errors.length) return { error: errors[0] };
    const response = await r.response;
    return { deltas, parts, text: await r.text, finishReason: await r.finishReason, usage: await r.usage,
             responseId: response.id, modelId: response.modelId };
  },
  async tools(model, prompt) {
    executed.length = 0;
    const r = await generateText({ model: openai(model), prompt, tools: { get_weather: weather },
                                   stopWhen: stepCountIs(3), maxRetries: 0 });
    return { text: r.text, finishReason: r.finishReason, executed: [...executed], steps: r.steps.map(stepOf),
             totalUsage: r.totalUsage };
  },
  async tools_stream(model, prompt) {
    executed.length = 0;
    const errors = [];
    const r = streamText({ model: openai(model), prompt, tools: { get_weather: weather }, stopWhen: stepCountIs(3),
                           maxRetries: 0, onError: ({ error }) => errors.push(failure(error)) });
    const parts = [];
    for await (const part of r.fullStream) parts.push(part.type);
    if (errors.length) return { error: errors[0] };
    return { text: await r.text, finishReason: await r.finishReason, executed: [...executed], parts,
             steps: (await r.steps).map(stepOf), totalUsage: await r.totalUsage };
  },
  async parallel_stream(model, prompt) {
    // two calls in one step, both executed, both outputs sent back in the next
    return cases.tools_stream(model, prompt);
  },
  async reasoning(model, prompt) {
    // a gateway's model id is not one the SDK knows reasons: forceReasoning makes it send `reasoning`
    const providerOptions = { openai: { forceReasoning: true, reasoningEffort: "low", reasoningSummary: "auto" } };
    const r = await generateText({ model: openai(model), prompt, maxRetries: 0, providerOptions });
    const s = streamText({ model: openai(model), prompt: `${prompt} (streamed)`, maxRetries: 0, providerOptions });
    const parts = [];
    let reasoning = "";
    for await (const part of s.fullStream) {
      parts.push(part.type);
      if (part.type === "reasoning-delta") reasoning += part.text;
    }
    return { text: r.text, reasoningText: r.reasoningText ?? null, usage: r.usage,
             streamed: { text: await s.text, reasoning, parts, reasoningText: (await s.reasoningText) ?? null } };
  },
  async overloaded(model, prompt) {
    // the provider fails after the first words: streamText reports it as an `error` part
    const r = streamText({ model: openai(model), prompt, maxRetries: 0, onError: () => {} });
    let text = "";
    const streamErrors = [];
    for await (const part of r.fullStream) {
      if (part.type === "text-delta") text += part.text;
      else if (part.type === "error") streamErrors.push(failure(part.error));
    }
    return { text, streamErrors, finishReason: await r.finishReason };
  },
  async tools_preamble(model, prompt) {
    // the model writes a line before its tool call: with `store` left on (the SDK's default), the next step
    // refers to that text by its item id (`item_reference`) instead of repeating it
    executed.length = 0;
    const r = await generateText({ model: openai(model), prompt, tools: { get_weather: weather },
                                   stopWhen: stepCountIs(3), maxRetries: 0 });
    return { text: r.text, finishReason: r.finishReason, executed: [...executed], steps: r.steps.map(stepOf),
             totalUsage: r.totalUsage };
  },
  async conversation(model, prompt) {
    // three turns chained by providerOptions.openai.previousResponseId (the conversation held by the gateway)
    const turns = [];
    let previousResponseId;
    for (const n of [1, 2, 3]) {
      const r = await generateText({ model: openai(model), prompt: `${prompt} #${n}`, maxRetries: 0,
                                     providerOptions: { openai: { previousResponseId } } });
      previousResponseId = r.providerMetadata.openai.responseId;
      turns.push({ text: r.text, responseId: previousResponseId, usage: r.usage });
    }
    return { turns };
  },
};

const PROMPTS = {
  generate: "say hello from the ai sdk",
  stream: "stream words to the ai sdk",
  tools: "What is the weather in Paris? (ai sdk tools)",
  tools_stream: "What is the weather in Paris? (ai sdk streamed tools)",
  parallel_stream: "What is the weather in Paris and in Rome? (ai sdk parallel calls)",
  reasoning: "think before you answer the ai sdk",
  overloaded: "a long story for the ai sdk [overloaded]",
  tools_preamble: "Explain the weather in Paris? (ai sdk tools with a preamble)",
  conversation: "a chat of three turns with the ai sdk",
};

const out = {};
for (const [deployment, model] of Object.entries(models)) {
  for (const [name, run] of Object.entries(cases)) {
    const prompt = `${PROMPTS[name]} [${deployment}]`;
    try {
      out[`${name}:${deployment}`] = { prompt, ...(await run(model, prompt)) };
    } catch (e) {
      out[`${name}:${deployment}`] = { prompt, unexpected: failure(e) };
    }
  }
}
process.stdout.write(JSON.stringify(out));
