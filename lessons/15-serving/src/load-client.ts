// The serving benchmark's client, run as a child process (fork) so that parsing
// the streams takes no event-loop time from the server it measures (vLLM's
// benchmark_serving is a separate process for the same reason). It sends each
// request at its arrival time and returns, per request, when each token came.

export interface LoadRequest {
  promptIds: number[];
  maxTokens: number;
  temperature: number;
  ignoreEos: boolean;
}

export interface LoadJob {
  url: string;
  model: string;
  requests: LoadRequest[];
  /** ms after the start at which each request is sent. */
  arrivalsMs: number[];
}

export interface RequestTiming {
  /** ms from the start: sent, each streamed token, done. */
  sentMs: number;
  tokenMs: number[];
  doneMs: number;
}

/** One streamed completion request; every SSE chunk with a choice is one token. */
export async function streamOne(url: string, model: string, r: LoadRequest, t0 = 0): Promise<RequestTiming> {
  const sentMs = performance.now() - t0;
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: r.promptIds, max_tokens: r.maxTokens, temperature: r.temperature, ignore_eos: r.ignoreEos, stream: true }),
  });
  if (!res.ok || !res.body) throw new Error(`the server answered ${res.status}: ${await res.text()}`);
  const tokenMs: number[] = [];
  const decoder = new TextDecoder();
  let buf = '';
  for await (const part of res.body) {
    buf += decoder.decode(part as Uint8Array, { stream: true });
    let end: number;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const chunk = JSON.parse(event.slice(6)) as { choices?: unknown[]; error?: { message: string } };
      if (chunk.error) throw new Error(`the server failed mid-stream: ${chunk.error.message}`);
      if (chunk.choices?.length) tokenMs.push(performance.now() - t0);
    }
  }
  return { sentMs, tokenMs, doneMs: performance.now() - t0 };
}

export async function runLoad(job: LoadJob): Promise<RequestTiming[]> {
  const t0 = performance.now();
  return Promise.all(
    job.requests.map(async (r, i) => {
      const wait = job.arrivalsMs[i]! - (performance.now() - t0);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      return streamOne(job.url, job.model, r, t0);
    }),
  );
}

// As a child process: one job in, its timings out, over the IPC channel.
if (process.send && process.env.AIOS_LOAD_CLIENT === '1') {
  const send = process.send.bind(process);
  process.once('message', (job: LoadJob) => {
    runLoad(job).then(
      (timings) => send({ timings }, () => process.exit(0)),
      (e: unknown) => send({ error: e instanceof Error ? e.message : String(e) }, () => process.exit(0)),
    );
  });
}
