using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using HybridServing.MockEngine.Faults;
using HybridServing.MockEngine.Lora;
using HybridServing.MockEngine.Onnx;
using HybridServing.MockEngine.Performance;
using Microsoft.AspNetCore.Http;

namespace HybridServing.MockEngine.Serving;

/// <summary>Counters for the zero-latency path, which bypasses the performance model.</summary>
internal sealed class ZeroLatencyCounters
{
    public long InFlight;
    public long PromptTokens;
    public long GenerationTokens;
    public long Length;
    public long Stop;
}

/// <summary>
/// <c>/v1/models</c>, <c>/v1/completions</c> and <c>/v1/chat/completions</c>. Each inference request
/// is validated as vLLM does, gets a deterministic answer, and then either goes through the
/// performance model (tokens come out when the model's steps complete) or, in zero-latency
/// mode, is answered at once. On the ONNX backend the text is not decided up front: the tiny
/// transformer computes each token in the model's steps, with the request's adapter and sampling.
/// </summary>
internal sealed class InferenceEndpoints(
    MockEngineOptions options,
    LoraAdapterRegistry adapters,
    RealTimeEngineDriver driver,
    FaultInjector faults,
    TokenCounter tokens,
    ZeroLatencyCounters zeroLatency,
    MockEngineInspector inspector,
    TimeProvider time,
    OnnxBackend? onnx = null)
{
    private const long MaxBodyBytes = 32 << 20;
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    public IResult Models()
    {
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        var body = JsonBody.Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            foreach (var name in options.BaseNames)
            {
                w.WriteStartObject();
                w.WriteString("id", name);
                w.WriteString("object", "model");
                w.WriteNumber("created", now);
                w.WriteString("owned_by", "vllm");
                w.WriteString("root", options.Model);
                w.WriteNull("parent");
                w.WriteNumber("max_model_len", options.EffectiveMaxModelLen);
                JsonBody.Permission(w, now);
                w.WriteEndObject();
            }
            foreach (var adapter in adapters.List())
            {
                w.WriteStartObject();
                w.WriteString("id", adapter.Name);
                w.WriteString("object", "model");
                w.WriteNumber("created", adapter.CreatedUnix);
                w.WriteString("owned_by", "vllm");
                w.WriteString("root", adapter.Path);
                w.WriteString("parent", adapter.BaseModelName ?? options.PrimaryName);
                w.WriteNull("max_model_len");
                JsonBody.Permission(w, adapter.CreatedUnix);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
        return Results.Bytes(body, "application/json");
    }

    public Task<IResult> CompletionsAsync(HttpContext context) => HandleAsync(context, chat: false);

    public Task<IResult> ChatCompletionsAsync(HttpContext context) => HandleAsync(context, chat: true);

    private async Task<IResult> HandleAsync(HttpContext context, bool chat)
    {
        using var span = new LlmRequestSpan();
        try
        {
            var result = await HandleCoreAsync(context, chat, span);
            var failed = result is IStatusCodeHttpResult { StatusCode: >= 400 };
            if (failed) span.Failed(((IStatusCodeHttpResult)result).StatusCode ?? 500);
            MockEngineTelemetry.Requests.Add(1, new KeyValuePair<string, object?>("outcome", failed ? "error" : "ok"));
            return result;
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nobody is left to answer.
            return Results.Empty;
        }
    }

    private async Task<IResult> HandleCoreAsync(HttpContext context, bool chat, LlmRequestSpan span)
    {
        var cancellationToken = context.RequestAborted;
        JsonDocument document;
        try
        {
            if (context.Request.ContentLength > MaxBodyBytes) return EngineErrors.Validation($"Request body exceeds {MaxBodyBytes} bytes.");
            document = await JsonDocument.ParseAsync(context.Request.Body, default, cancellationToken);
        }
        catch (JsonException e)
        {
            return EngineErrors.Validation($"JSON decode error: {e.Message}");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return EngineErrors.Validation("Input should be a valid dictionary or object to extract fields from");

            if (!TryParse(root, chat, out var request, out var error)) return error!;

            switch (faults.OnRequest(out var spike))
            {
                case FaultDecision.Dead:
                    return EngineErrors.OpenAi(500, "InternalServerError", "EngineCore encountered an issue. See stack trace (above) for the root cause.");
                case FaultDecision.Fail:
                    return EngineErrors.OpenAi(500, "InternalServerError", "Injected fault: the MockEngine was told to fail this request (--mock-fail-rate).");
            }
            if (spike > TimeSpan.Zero) await Task.Delay(spike, time, cancellationToken);

            var maxLen = options.EffectiveMaxModelLen;
            if (request.PromptTokens >= maxLen && request.MaxTokens is null)
                return EngineErrors.OpenAi(400, "BadRequestError",
                    $"This model's maximum context length is {maxLen} tokens. However, your request has {request.PromptTokens} input tokens. Please reduce the length of the input messages.");
            var maxTokens = request.MaxTokens ?? maxLen - request.PromptTokens;
            if (request.PromptTokens + maxTokens > maxLen)
                return EngineErrors.OpenAi(400, "BadRequestError",
                    $"This model's maximum context length is {maxLen} tokens. However, you requested {request.PromptTokens + maxTokens} tokens ({request.PromptTokens} in the messages, {maxTokens} in the completion). Please reduce the length of the messages or completion.");

            if (onnx is not null)
            {
                var computed = new Answer(request, [], "length", 0, (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N"), time.GetUtcNow().ToUnixTimeSeconds());
                span.Request(computed.Id, request.Model, request.PromptTokens, request.MaxTokens, request.Sampling.Temperature, request.Sampling.TopP);
                return await AnswerThroughModelAsync(context, computed, chat, span, maxTokens);
            }

            var seed = TextGenerator.SeedFor(options.Seed, request.Seed, request.Model, request.PromptText);
            var natural = request.IgnoreEos ? maxTokens : Math.Max(TextGenerator.NaturalLength(seed), request.MinTokens);
            var count = Math.Min(natural, maxTokens);
            var finishReason = natural > maxTokens || (request.IgnoreEos && count == maxTokens) ? "length" : "stop";
            var pieces = TextGenerator.Pieces(seed, count);
            var answer = new Answer(request, pieces, finishReason, tokens.Count(string.Concat(pieces)),
                (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N"), time.GetUtcNow().ToUnixTimeSeconds());

            span.Request(answer.Id, request.Model, request.PromptTokens, request.MaxTokens, null, null);
            if (options.ZeroLatency) return await AnswerAtOnceAsync(context, answer, chat, span);

            var fits = driver.Read(m => m.CanEverFit(request.PromptTokens, count));
            if (!fits)
                return EngineErrors.OpenAi(400, "BadRequestError",
                    $"The request needs {request.PromptTokens + count} tokens of KV cache, more than the engine's {driver.Read(m => m.TotalBlocks) * options.BlockSize}.");
            return await AnswerThroughModelAsync(context, answer, chat, span);
        }
    }

    private async Task<IResult> AnswerAtOnceAsync(HttpContext context, Answer answer, bool chat, LlmRequestSpan span)
    {
        Interlocked.Increment(ref zeroLatency.InFlight);
        try
        {
            Interlocked.Add(ref zeroLatency.PromptTokens, answer.Request.PromptTokens);
            Interlocked.Add(ref zeroLatency.GenerationTokens, answer.Pieces.Length);
            if (answer.FinishReason == "length") Interlocked.Increment(ref zeroLatency.Length); else Interlocked.Increment(ref zeroLatency.Stop);
            if (!answer.Request.Stream)
            {
                span.TokenSent();
                span.Finished(answer.CompletionTokens);
                inspector.RecordServed(answer.Request.Model);
                return Results.Bytes(FullBody(answer, chat), "application/json");
            }
            StartStream(context);
            for (var i = 0; i < answer.Pieces.Length; i++)
            {
                await WriteChunkAsync(context, answer, chat, i == 0, Emitted.Of(answer, i), context.RequestAborted);
                span.TokenSent();
            }
            await FinishStreamAsync(context, answer, chat, context.RequestAborted);
            span.Finished(answer.CompletionTokens);
            inspector.RecordServed(answer.Request.Model);
            return Results.Empty;
        }
        finally
        {
            Interlocked.Decrement(ref zeroLatency.InFlight);
        }
    }

    /// <summary>
    /// Runs the request through the scheduler. With <paramref name="computeUpTo"/> (the ONNX backend) the
    /// answer is empty and every token is computed in its step, up to that many; otherwise its pieces are known.
    /// </summary>
    private async Task<IResult> AnswerThroughModelAsync(HttpContext context, Answer answer, bool chat, LlmRequestSpan span, int? computeUpTo = null)
    {
        var cancellationToken = context.RequestAborted;
        var emitted = Channel.CreateUnbounded<Emitted>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var generation = computeUpTo is null ? null
            : onnx!.Start(answer.Request.PromptIds!, answer.Request.AdapterWeights, answer.Request.Sampling);
        var modelRequest = new ModelRequest(answer.Id, answer.Request.Adapter, answer.Request.PromptTokens, computeUpTo ?? answer.Pieces.Length)
        {
            FinishReason = answer.FinishReason,
            ExecutorState = generation,
            TokenEmitted = generation is null
                ? (r, _) => emitted.Writer.TryWrite(Emitted.Of(answer, r.GeneratedTokens - 1))
                : (r, _) =>
                {
                    var last = r.EndRequested || r.GeneratedTokens >= r.OutputTokens;
                    emitted.Writer.TryWrite(new Emitted(generation.LastPiece, last ? r.FinishReason : null, last ? generation.StopReason : null));
                },
            Finished = _ => emitted.Writer.TryComplete(),
        };
        try
        {
            driver.Submit(modelRequest);
        }
        catch (InvalidOperationException)
        {
            // The adapter was unloaded between validation and submission.
            return EngineErrors.UnknownModel(answer.Request.Model);
        }

        try
        {
            var pieces = new List<string>();
            Emitted? final = null;
            if (!answer.Request.Stream)
            {
                await foreach (var e in emitted.Reader.ReadAllAsync(cancellationToken))
                {
                    pieces.Add(e.Piece);
                    final = e;
                    span.TokenSent();
                }
                answer = Completed(answer, pieces, final, generation is not null);
                span.Finished(answer.CompletionTokens);
                inspector.RecordServed(answer.Request.Model);
                return Results.Bytes(FullBody(answer, chat), "application/json");
            }
            StartStream(context);
            await foreach (var e in emitted.Reader.ReadAllAsync(cancellationToken))
            {
                await WriteChunkAsync(context, answer, chat, pieces.Count == 0, e, cancellationToken);
                pieces.Add(e.Piece);
                final = e;
                span.TokenSent();
            }
            answer = Completed(answer, pieces, final, generation is not null);
            await FinishStreamAsync(context, answer, chat, cancellationToken);
            span.Finished(answer.CompletionTokens);
            inspector.RecordServed(answer.Request.Model);
            return Results.Empty;
        }
        finally
        {
            // Client gone (or we failed): free the request's slot and KV blocks.
            if (modelRequest.State is RequestState.Waiting or RequestState.Running) driver.Abort(modelRequest);
        }
    }

    /// <summary>A computed answer's text, length and reasons are known once its last token is out.</summary>
    private static Answer Completed(Answer answer, List<string> pieces, Emitted? last, bool computed) => !computed ? answer : answer with
    {
        Pieces = [.. pieces],
        CompletionTokens = pieces.Count,
        FinishReason = last?.FinishReason ?? answer.FinishReason,
        StopReason = last?.StopReason,
    };

    private static void StartStream(HttpContext context)
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream; charset=utf-8";
        context.Response.Headers.CacheControl = "no-cache";
    }

    private static async Task WriteEventAsync(HttpContext context, byte[] json, CancellationToken cancellationToken)
    {
        await context.Response.Body.WriteAsync(DataPrefix, cancellationToken);
        await context.Response.Body.WriteAsync(json, cancellationToken);
        await context.Response.Body.WriteAsync(EventEnd, cancellationToken);
        await context.Response.Body.FlushAsync(cancellationToken);
    }

    private static async Task WriteChunkAsync(HttpContext context, Answer answer, bool chat, bool first, Emitted token, CancellationToken cancellationToken)
    {
        if (chat && first)
        {
            // vLLM opens a chat stream with the role.
            await WriteEventAsync(context, JsonBody.Write(w =>
            {
                ChunkHeader(w, answer, chat);
                w.WriteStartArray("choices");
                w.WriteStartObject();
                w.WriteNumber("index", 0);
                w.WriteStartObject("delta");
                w.WriteString("role", "assistant");
                w.WriteString("content", "");
                w.WriteEndObject();
                w.WriteNull("logprobs");
                w.WriteNull("finish_reason");
                w.WriteEndObject();
                w.WriteEndArray();
                w.WriteEndObject();
            }), cancellationToken);
        }
        await WriteEventAsync(context, JsonBody.Write(w =>
        {
            ChunkHeader(w, answer, chat);
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            if (chat)
            {
                w.WriteStartObject("delta");
                w.WriteString("content", token.Piece);
                w.WriteEndObject();
            }
            else
            {
                w.WriteString("text", token.Piece);
            }
            w.WriteNull("logprobs");
            if (token.FinishReason is { } reason) w.WriteString("finish_reason", reason); else w.WriteNull("finish_reason");
            if (token.StopReason is { } stop) w.WriteString("stop_reason", stop); else w.WriteNull("stop_reason");
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
        }), cancellationToken);
    }

    private static async Task FinishStreamAsync(HttpContext context, Answer answer, bool chat, CancellationToken cancellationToken)
    {
        if (answer.Request.IncludeUsage)
        {
            await WriteEventAsync(context, JsonBody.Write(w =>
            {
                ChunkHeader(w, answer, chat);
                w.WriteStartArray("choices");
                w.WriteEndArray();
                JsonBody.Usage(w, answer.Request.PromptTokens, answer.CompletionTokens);
                w.WriteEndObject();
            }), cancellationToken);
        }
        await context.Response.Body.WriteAsync(Done, cancellationToken);
        await context.Response.Body.FlushAsync(cancellationToken);
    }

    private static void ChunkHeader(Utf8JsonWriter w, Answer answer, bool chat)
    {
        w.WriteStartObject();
        w.WriteString("id", answer.Id);
        w.WriteString("object", chat ? "chat.completion.chunk" : "text_completion");
        w.WriteNumber("created", answer.Created);
        w.WriteString("model", answer.Request.Model);
    }

    private static byte[] FullBody(Answer answer, bool chat) => JsonBody.Write(w =>
    {
        var text = string.Concat(answer.Pieces);
        w.WriteStartObject();
        w.WriteString("id", answer.Id);
        w.WriteString("object", chat ? "chat.completion" : "text_completion");
        w.WriteNumber("created", answer.Created);
        w.WriteString("model", answer.Request.Model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (chat)
        {
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", text);
            w.WriteNull("reasoning_content");
            w.WriteStartArray("tool_calls");
            w.WriteEndArray();
            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", text);
        }
        w.WriteNull("logprobs");
        w.WriteString("finish_reason", answer.FinishReason);
        if (answer.StopReason is { } stop) w.WriteString("stop_reason", stop); else w.WriteNull("stop_reason");
        w.WriteEndObject();
        w.WriteEndArray();
        JsonBody.Usage(w, answer.Request.PromptTokens, answer.CompletionTokens);
        w.WriteNull("prompt_logprobs");
        w.WriteEndObject();
    });

    private sealed record Answer(ParsedRequest Request, string[] Pieces, string FinishReason, int CompletionTokens, string Id, long Created)
    {
        public string? StopReason { get; init; }
    }

    /// <summary>One token out of the model: its text, and on the last one the finish and stop reasons.</summary>
    private sealed record Emitted(string Piece, string? FinishReason, string? StopReason)
    {
        public static Emitted Of(Answer answer, int index) =>
            new(answer.Pieces[index], index == answer.Pieces.Length - 1 ? answer.FinishReason : null, null);
    }

    /// <remarks><see cref="PromptIds"/> and <see cref="AdapterWeights"/> are the ONNX backend's (null otherwise).</remarks>
    private sealed record ParsedRequest(
        string Model, string? Adapter, string PromptText, int PromptTokens, int? MaxTokens, int MinTokens,
        bool IgnoreEos, bool Stream, bool IncludeUsage, long? Seed, SamplingParameters Sampling,
        List<int>? PromptIds = null, AdapterWeights? AdapterWeights = null);

    private bool TryParse(JsonElement root, bool chat, out ParsedRequest request, out IResult? error)
    {
        request = null!;
        error = null;

        var model = options.PrimaryName;
        if (root.TryGetProperty("model", out var m) && m.ValueKind != JsonValueKind.Null)
        {
            if (m.ValueKind != JsonValueKind.String) { error = EngineErrors.Validation("model: Input should be a valid string"); return false; }
            model = m.GetString()!;
        }

        string promptText;
        int promptTokens;
        List<int>? promptIds = null;
        var vocabulary = onnx?.Vocabulary;
        if (chat)
        {
            if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
            { error = EngineErrors.Validation("messages: Field required (a list of {role, content} objects)"); return false; }
            var list = new List<(string Role, string Content)>();
            foreach (var message in messages.EnumerateArray())
            {
                if (message.ValueKind != JsonValueKind.Object || !message.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                { error = EngineErrors.Validation($"messages[{list.Count}].role: Field required"); return false; }
                if (!TryContent(message, out var content))
                { error = EngineErrors.Validation($"messages[{list.Count}].content: Input should be a string or a list of text parts"); return false; }
                list.Add((role.GetString()!, content));
            }
            if (list.Count == 0) { error = EngineErrors.OpenAi(400, "BadRequestError", "messages: List should have at least 1 item"); return false; }
            promptText = string.Join("\n", list.Select(x => x.Role + ": " + x.Content));
            promptTokens = tokens.CountChat(list);
            promptIds = vocabulary?.Chat(list);
        }
        else
        {
            if (!root.TryGetProperty("prompt", out var prompt)) { error = EngineErrors.Validation("prompt: Field required"); return false; }
            switch (prompt.ValueKind)
            {
                case JsonValueKind.String:
                    promptText = prompt.GetString()!;
                    promptTokens = 1 + tokens.Count(promptText); // + BOS, as Llama's tokenizer adds it
                    promptIds = vocabulary?.Prompt(promptText);
                    break;
                case JsonValueKind.Array when prompt.GetArrayLength() > 0 && prompt.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number):
                    promptText = prompt.GetRawText();
                    promptTokens = prompt.GetArrayLength();
                    promptIds = vocabulary?.Prompt(prompt.EnumerateArray().Select(e => e.TryGetInt64(out var id) ? id : 0));
                    break;
                case JsonValueKind.Array when prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String:
                    promptText = prompt[0].GetString()!;
                    promptTokens = 1 + tokens.Count(promptText);
                    promptIds = vocabulary?.Prompt(promptText);
                    break;
                case JsonValueKind.Array when prompt.GetArrayLength() > 1:
                    error = EngineErrors.OpenAi(400, "BadRequestError", "The MockEngine answers one prompt per request; send batched prompts as separate requests.");
                    return false;
                default:
                    error = EngineErrors.Validation("prompt: Input should be a string, a list of strings or a list of token ids (non-empty)");
                    return false;
            }
        }
        // The ONNX backend counts what its model reads.
        if (promptIds is not null) promptTokens = promptIds.Count;
        if (promptTokens < 1) promptTokens = 1;

        int? maxTokens = null;
        foreach (var key in chat ? new[] { "max_completion_tokens", "max_tokens" } : ["max_tokens"])
        {
            if (!root.TryGetProperty(key, out var mt) || mt.ValueKind == JsonValueKind.Null) continue;
            if (mt.ValueKind != JsonValueKind.Number || !mt.TryGetInt32(out var value))
            { error = EngineErrors.Validation($"{key}: Input should be a valid integer"); return false; }
            if (value < 1) { error = EngineErrors.OpenAi(400, "BadRequestError", $"max_tokens must be at least 1, got {value}."); return false; }
            maxTokens = value;
            break;
        }
        var minTokens = 0;
        if (root.TryGetProperty("min_tokens", out var mn) && mn.ValueKind == JsonValueKind.Number && mn.TryGetInt32(out var mnv)) minTokens = Math.Max(0, mnv);

        if (root.TryGetProperty("n", out var n) && n.ValueKind == JsonValueKind.Number && (!n.TryGetInt32(out var nv) || nv != 1))
        { error = EngineErrors.OpenAi(400, "BadRequestError", "The MockEngine generates one choice per request (n must be 1)."); return false; }

        var stream = Bool(root, "stream");
        var includeUsage = root.TryGetProperty("stream_options", out var so) && so.ValueKind == JsonValueKind.Object && Bool(so, "include_usage");
        if (includeUsage && !stream) { error = EngineErrors.OpenAi(400, "BadRequestError", "Stream options can only be defined when `stream=True`."); return false; }

        if (!TryParseSampling(root, out var sampling, out error)) return false;

        // vLLM validates the body's shape first, then checks the model.
        string? adapter = null;
        AdapterWeights? adapterWeights = null;
        if (!options.BaseNames.Contains(model, StringComparer.Ordinal))
        {
            if (!adapters.TryGet(model, out var loaded)) { error = EngineErrors.UnknownModel(model); return false; }
            adapter = model;
            adapterWeights = loaded.Weights;
        }

        long? seed = root.TryGetProperty("seed", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out var sv) ? sv : null;
        sampling = sampling with { Seed = seed, IgnoreEos = Bool(root, "ignore_eos"), MinTokens = minTokens };
        request = new ParsedRequest(model, adapter, promptText, promptTokens, maxTokens, minTokens, Bool(root, "ignore_eos"), stream, includeUsage, seed,
            sampling, promptIds ?? (vocabulary is null ? null : [TinyVocabulary.BeginOfText]), adapterWeights);
        return true;
    }

    /// <summary>temperature, top_p, top_k and stop, checked as vLLM's SamplingParams checks them.</summary>
    private static bool TryParseSampling(JsonElement root, out SamplingParameters sampling, out IResult? error)
    {
        sampling = new SamplingParameters();
        error = null;
        if (!TryNumber(root, "temperature", out var temperature, ref error)) return false;
        if (temperature is { } t)
        {
            if (t < 0) { error = EngineErrors.OpenAi(400, "BadRequestError", $"temperature must be non-negative, got {Format(t)}."); return false; }
            sampling = sampling with { Temperature = t };
        }
        if (!TryNumber(root, "top_p", out var topP, ref error)) return false;
        if (topP is { } p)
        {
            if (p is <= 0 or > 1) { error = EngineErrors.OpenAi(400, "BadRequestError", $"top_p must be in (0, 1], got {Format(p)}."); return false; }
            sampling = sampling with { TopP = p };
        }
        if (root.TryGetProperty("top_k", out var k) && k.ValueKind != JsonValueKind.Null)
        {
            if (k.ValueKind != JsonValueKind.Number || !k.TryGetInt32(out var topK)) { error = EngineErrors.Validation("top_k: Input should be a valid integer"); return false; }
            if (topK < -1) { error = EngineErrors.OpenAi(400, "BadRequestError", $"top_k must be 0 (disable), or at least 1, got {topK}."); return false; }
            sampling = sampling with { TopK = topK };
        }
        if (root.TryGetProperty("stop", out var stop) && stop.ValueKind != JsonValueKind.Null)
        {
            string[] stops;
            if (stop.ValueKind == JsonValueKind.String) stops = [stop.GetString()!];
            else if (stop.ValueKind == JsonValueKind.Array && stop.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String))
                stops = [.. stop.EnumerateArray().Select(e => e.GetString()!)];
            else { error = EngineErrors.Validation("stop: Input should be a valid string or a list of strings"); return false; }
            if (stops.Any(x => x.Length == 0)) { error = EngineErrors.OpenAi(400, "BadRequestError", "stop cannot contain an empty string."); return false; }
            sampling = sampling with { Stop = stops };
        }
        return true;

        static string Format(double v) => v.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static bool TryNumber(JsonElement root, string name, out double? value, ref IResult? error)
    {
        value = null;
        if (!root.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return true;
        if (e.ValueKind != JsonValueKind.Number) { error = EngineErrors.Validation($"{name}: Input should be a valid number"); return false; }
        value = e.GetDouble();
        return true;
    }

    private static bool Bool(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;

    private static bool TryContent(JsonElement message, out string content)
    {
        content = "";
        if (!message.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null) return true;
        if (c.ValueKind == JsonValueKind.String) { content = c.GetString()!; return true; }
        if (c.ValueKind != JsonValueKind.Array) return false;
        var text = new StringBuilder();
        foreach (var part in c.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object) return false;
            if (part.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String) text.Append(t.GetString());
        }
        content = text.ToString();
        return true;
    }
}
