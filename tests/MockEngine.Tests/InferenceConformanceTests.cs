using System.Net;
using System.Text.Json;
using HybridServing.Contracts.Metrics;
using HybridServing.TestKit;

namespace HybridServing.MockEngine.Tests;

/// <summary>Inference, models, auth, health and metrics as the protocol document says, over real HTTP.</summary>
public sealed class InferenceConformanceTests : IDisposable
{
    private readonly TempDirectory _dir = new("me-inf");

    public void Dispose() => _dir.Dispose();

    private static Task<MockEngineHost> Engine(params string[] extra) =>
        MockEngineHost.StartAsync(["--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "2", "--mock-profile", "tiny", .. extra]);

    [Fact]
    public async Task Health_is_200_with_an_empty_body()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        using var response = await http.GetAsync("health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Base_card_has_vllms_shape()
    {
        await using var engine = await Engine("--served-model-name", "tiny");
        using var http = Http.Client(engine.BaseUrl);
        using var doc = JsonDocument.Parse(await http.GetStringAsync("v1/models"));
        Assert.Equal("list", doc.RootElement.GetProperty("object").GetString());
        var card = Assert.Single(doc.RootElement.GetProperty("data").EnumerateArray());
        Assert.Equal(["id", "object", "created", "owned_by", "root", "parent", "max_model_len", "permission"],
            card.EnumerateObject().Select(p => p.Name));
        Assert.Equal("tiny", card.GetProperty("id").GetString());
        Assert.Equal(TestAdapters.TinyModel, card.GetProperty("root").GetString());
        Assert.Equal(JsonValueKind.Null, card.GetProperty("parent").ValueKind);
        Assert.Equal(2048, card.GetProperty("max_model_len").GetInt32());
        Assert.True(card.GetProperty("created").GetInt64() > 1_600_000_000);
    }

    [Theory]
    [InlineData("v1/completions", """{"model":"nope","prompt":"x"}""")]
    [InlineData("v1/chat/completions", """{"model":"nope","messages":[{"role":"user","content":"x"}]}""")]
    public async Task Unknown_model_is_404_with_param_model(string path, string body)
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var r = await http.Send(path, body);
        r.AssertError(404, "NotFoundError", "The model `nope` does not exist.");
        Assert.Equal("model", r.Body.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Completion_echoes_the_model_counts_usage_with_the_tokenizer_and_is_deterministic()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var body = """{"model":"test/tiny","prompt":"The quick brown fox","max_tokens":7,"ignore_eos":true}""";
        var first = await http.Send("v1/completions", body);
        var second = await http.Send("v1/completions", body);
        Assert.Equal(200, first.Status);
        Assert.Equal("text_completion", first.Body.GetProperty("object").GetString());
        Assert.Equal("test/tiny", first.Body.GetProperty("model").GetString());
        var choice = first.Body.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var usage = first.Body.GetProperty("usage");
        Assert.Equal(5, usage.GetProperty("prompt_tokens").GetInt32()); // BOS + 4 cl100k tokens
        Assert.Equal(7, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(12, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal(choice.GetProperty("text").GetString(), second.Body.GetProperty("choices")[0].GetProperty("text").GetString());

        var seeded = await http.Send("v1/completions", """{"prompt":"The quick brown fox","max_tokens":7,"ignore_eos":true,"seed":42}""");
        Assert.NotEqual(choice.GetProperty("text").GetString(), seeded.Body.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Chat_completion_for_an_adapter_echoes_the_adapter()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var path = TestAdapters.Write(_dir.Path, "sql", rank: 8);
        Assert.Equal(200, (await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = "sql", lora_path = path }))).Status);
        var r = await http.Send("v1/chat/completions", """{"model":"sql","messages":[{"role":"user","content":"hello"}],"max_tokens":4}""");
        Assert.Equal(200, r.Status);
        Assert.Equal("chat.completion", r.Body.GetProperty("object").GetString());
        Assert.Equal("sql", r.Body.GetProperty("model").GetString());
        var message = r.Body.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("assistant", message.GetProperty("role").GetString());
        Assert.False(string.IsNullOrEmpty(message.GetProperty("content").GetString()));
        Assert.Equal(4, r.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        // Other components' tests ask the host which engine served what.
        Assert.Equal(1, engine.Inspector.RequestsServed("sql"));
        Assert.Equal(0, engine.Inspector.RequestsServed("test/tiny"));
        var state = engine.Inspector.Snapshot();
        Assert.Equal(["sql"], state.LoadedAdapters);
        Assert.Equal(["sql"], state.GpuAdapters);
        Assert.Equal(0, state.Running + state.Waiting);
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task Streaming_is_sse_ending_with_done_and_usage_only_when_asked(bool chat, bool includeUsage)
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var body = chat
            ? Http.Json(new { model = "test/tiny", messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 5, ignore_eos = true, stream = true, stream_options = new { include_usage = includeUsage } })
            : Http.Json(new { model = "test/tiny", prompt = "hi", max_tokens = 5, ignore_eos = true, stream = true, stream_options = new { include_usage = includeUsage } });
        using var response = await http.PostJson(chat ? "v1/chat/completions" : "v1/completions", body);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e, StringComparison.Ordinal));
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToArray();
        Assert.All(chunks, c => Assert.Equal(chat ? "chat.completion.chunk" : "text_completion", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());

        var withChoices = chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).ToArray();
        var pieces = withChoices.Select(c => chat
            ? (c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var d) ? d.GetString() : "")
            : c.GetProperty("choices")[0].GetProperty("text").GetString()).Where(p => !string.IsNullOrEmpty(p)).ToArray();
        Assert.Equal(5, pieces.Length);
        if (chat) Assert.Equal("assistant", withChoices[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.Equal("length", withChoices[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        var usageChunks = chunks.Where(c => c.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object).ToArray();
        if (includeUsage)
        {
            var usage = Assert.Single(usageChunks);
            Assert.Equal(0, usage.GetProperty("choices").GetArrayLength());
            Assert.Equal(5, usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
            Assert.Equal(chunks[^1].GetRawText(), usage.GetRawText());
        }
        else Assert.Empty(usageChunks);
    }

    [Fact]
    public async Task Context_length_is_enforced_with_vllms_message()
    {
        await using var engine = await Engine("--max-model-len", "64");
        using var http = Http.Client(engine.BaseUrl);
        (await http.Send("v1/completions", """{"prompt":"hello","max_tokens":100}""")).AssertError(400, "BadRequestError",
            "This model's maximum context length is 64 tokens. However, you requested 102 tokens (2 in the messages, 100 in the completion). Please reduce the length of the messages or completion.");
        (await http.Send("v1/completions", """{"prompt":"hello","max_tokens":0}""")).AssertError(400, "BadRequestError", "max_tokens must be at least 1, got 0.");
    }

    [Fact]
    public async Task Malformed_bodies_are_400_not_500()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        foreach (var (path, body) in new[]
        {
            ("v1/completions", "{not json"), ("v1/completions", "[]"), ("v1/completions", """{"model":"test/tiny"}"""),
            ("v1/chat/completions", """{"messages":"hi"}"""), ("v1/chat/completions", """{"messages":[{"content":"x"}]}"""),
            ("v1/completions", """{"prompt":"x","max_tokens":"many"}"""), ("v1/completions", """{"prompt":"x","stream_options":{"include_usage":true}}"""),
        })
        {
            var r = await http.Send(path, body);
            Assert.True(r.Status == 400, $"{path} {body} → {r.Status} {r.Text}");
            Assert.Equal(400, r.Body.GetProperty("error").GetProperty("code").GetInt32());
        }
    }

    [Fact]
    public async Task Unknown_routes_answer_like_fastapi()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        using var response = await http.GetAsync("v1/nothing");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("""{"detail":"Not Found"}""", await response.Content.ReadAsStringAsync());
        using var wrongMethod = await http.GetAsync("v1/completions");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
        Assert.Equal("""{"detail":"Method Not Allowed"}""", await wrongMethod.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Api_key_guards_v1_and_friends_but_not_health_or_metrics()
    {
        await using var engine = await MockEngineHost.StartAsync(
            new MockEngineHostOptions { Environment = new Dictionary<string, string> { ["VLLM_API_KEY"] = "sekret" } },
            "--model", TestAdapters.TinyModel, "--mock-profile", "tiny");
        using var anonymous = Http.Client(engine.BaseUrl);
        using var wrong = Http.Client(engine.BaseUrl, "nope");
        using var right = Http.Client(engine.BaseUrl, "sekret");

        foreach (var path in new[] { "v1/models", "v2/anything", "inference/x", "cohere/y" })
        {
            foreach (var client in new[] { anonymous, wrong })
            {
                using var denied = await client.GetAsync(path);
                Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
                Assert.Equal("""{"error":"Unauthorized"}""", await denied.Content.ReadAsStringAsync());
            }
        }
        foreach (var path in new[] { "health", "metrics", "version", "ping", "load" })
        {
            using var open = await anonymous.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, open.StatusCode);
        }
        using var allowed = await right.GetAsync("v1/models");
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        var completion = await right.Send("v1/completions", """{"prompt":"x","max_tokens":2}""");
        Assert.Equal(200, completion.Status);
    }

    [Fact]
    public async Task Metrics_use_vllm_names_labels_and_buckets()
    {
        await using var engine = await Engine("--served-model-name", "tiny");
        using var http = Http.Client(engine.BaseUrl);
        Assert.Equal(200, (await http.Send("v1/completions", """{"prompt":"hello world","max_tokens":3,"ignore_eos":true}""")).Status);
        var text = await http.GetStringAsync("metrics");
        var samples = PrometheusText.Parse(text);

        double Value(string name, string? reason = null) => samples.Single(s => s.Name == name
            && s.Label("model_name") == "tiny" && s.Label("engine") == "0" && (reason is null || s.Label("finished_reason") == reason)).Value;
        Assert.Equal(0, Value("vllm:num_requests_running"));
        Assert.Equal(0, Value("vllm:num_requests_waiting"));
        Assert.Equal(0, Value("vllm:kv_cache_usage_perc"));
        Assert.Equal(3, Value("vllm:prompt_tokens_total"));
        Assert.Equal(3, Value("vllm:generation_tokens_total"));
        Assert.Equal(1, Value("vllm:request_success_total", "length"));
        Assert.Equal(0, Value("vllm:num_preemptions_total"));
        Assert.DoesNotContain("gpu_cache_usage_perc", text, StringComparison.Ordinal);

        var ttftBounds = samples.Where(s => s.Name == "vllm:time_to_first_token_seconds_bucket").Select(s => s.Label("le")!).ToArray();
        Assert.Equal(["0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5", "5.0", "7.5", "10.0", "20.0", "40.0", "80.0", "160.0", "640.0", "2560.0", "+Inf"], ttftBounds);
        foreach (var h in new[] { "vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds" })
            Assert.Equal(1, samples.Single(s => s.Name == h + "_count").Value);
        Assert.Equal(2, samples.Single(s => s.Name == "vllm:inter_token_latency_seconds_count").Value);

        var lora = samples.Where(s => s.Name == "vllm:lora_requests_info").ToArray();
        Assert.NotEmpty(lora);
        Assert.All(lora, s =>
        {
            Assert.Null(s.Label("model_name"));
            Assert.Null(s.Label("engine"));
            Assert.Equal("2", s.Label("max_lora"));
            Assert.True(s.Value > 1_600_000_000);
        });
        var snapshot = EngineLoadSnapshot.From(samples, EngineMetricNames.Vllm);
        Assert.Equal(2, snapshot.MaxLoras);
    }

    [Fact]
    public async Task No_lora_info_without_enable_lora()
    {
        await using var engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--mock-profile", "tiny");
        using var http = Http.Client(engine.BaseUrl);
        Assert.DoesNotContain("vllm:lora_requests_info", await http.GetStringAsync("metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Zero_latency_mode_answers_and_counts()
    {
        await using var engine = await Engine("--mock-zero-latency");
        using var http = Http.Client(engine.BaseUrl);
        var r = await http.Send("v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"ignore_eos":true,"stream":true}""");
        Assert.Equal(200, r.Status);
        Assert.EndsWith("data: [DONE]\n\n", r.Text, StringComparison.Ordinal);
        var samples = PrometheusText.Parse(await http.GetStringAsync("metrics"));
        Assert.Equal(3, samples.Single(s => s.Name == "vllm:generation_tokens_total").Value);
    }

    [Fact]
    public async Task Fault_injection_fails_requests_and_crashes_after_n()
    {
        await using var engine = await Engine("--mock-crash-after", "2", "--mock-zero-latency");
        using var http = Http.Client(engine.BaseUrl);
        Assert.Equal(200, (await http.Send("v1/completions", """{"prompt":"a","max_tokens":1}""")).Status);
        Assert.Equal(200, (await http.Send("v1/completions", """{"prompt":"a","max_tokens":1}""")).Status);
        (await http.Send("v1/completions", """{"prompt":"a","max_tokens":1}""")).AssertError(500, "InternalServerError",
            "EngineCore encountered an issue. See stack trace (above) for the root cause.");
        // The host stops itself shortly after: health goes 503, then the port closes.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var health = await http.GetAsync("health");
                Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
            }
            catch (HttpRequestException) { return; }
            await Task.Delay(50);
        }
        Assert.Fail("the crashed engine kept its port open");
    }

    [Fact]
    public async Task Fail_rate_one_fails_every_request()
    {
        await using var engine = await Engine("--mock-fail-rate", "1");
        using var http = Http.Client(engine.BaseUrl);
        var r = await http.Send("v1/completions", """{"prompt":"a","max_tokens":1}""");
        Assert.Equal(500, r.Status);
        Assert.Equal("InternalServerError", r.Body.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task Restart_on_the_same_port_comes_back_empty()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var path = TestAdapters.Write(_dir.Path, "a", rank: 8);
        Assert.Equal(200, (await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = "a", lora_path = path }))).Status);
        var port = engine.Port;
        await engine.RestartAsync();
        Assert.Equal(port, engine.Port);
        using var doc = JsonDocument.Parse(await http.GetStringAsync("v1/models"));
        Assert.Equal(1, doc.RootElement.GetProperty("data").GetArrayLength());
    }
}
