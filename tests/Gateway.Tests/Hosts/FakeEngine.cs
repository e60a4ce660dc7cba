using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HybridServing.Gateway.Tests.Hosts;

/// <summary>What the engine received.</summary>
internal sealed record ReceivedRequest(string Path, byte[] Body, string? Authorization, string Model);

/// <summary>
/// A tiny vLLM-shaped engine on 127.0.0.1 for gateway tests: serves the models it is told it holds,
/// echoes its own name in every answer, streams SSE, exposes settable <c>/metrics</c>, and records
/// what arrived and whether the client went away.
/// </summary>
internal sealed class FakeEngine : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakeEngine(string name, WebApplication app)
    {
        Name = name;
        _app = app;
    }

    public string Name { get; }
    public Uri Url { get; private set; } = null!;
    public ConcurrentQueue<ReceivedRequest> Received { get; } = new();
    public HashSet<string> Models { get; } = new(StringComparer.Ordinal) { Tables.Base };
    public volatile string MetricsText = "";
    public int StreamTokens { get; set; } = 5;
    public TimeSpan TokenDelay { get; set; } = TimeSpan.Zero;
    /// <summary>When set, streaming responses send the first token and then wait on it.</summary>
    public TaskCompletionSource? HoldAfterFirstToken { get; set; }
    /// <summary>Simulates a crash: the connection is torn down right after the first token.</summary>
    public bool AbortAfterFirstToken { get; set; }
    public TaskCompletionSource ClientGone { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>Status to answer with instead of serving (e.g. 503), with optional Retry-After seconds; a negative status drops the connection.</summary>
    public (int Status, int? RetryAfter)? Fail { get; set; }

    public static async Task<FakeEngine> StartAsync(string name, params string[] adapters)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var engine = new FakeEngine(name, app);
        foreach (var a in adapters) engine.Models.Add(a);
        app.MapPost("/v1/chat/completions", ctx => engine.ServeAsync(ctx, chat: true));
        app.MapPost("/v1/completions", ctx => engine.ServeAsync(ctx, chat: false));
        app.MapGet("/metrics", () => Results.Text(engine.MetricsText, "text/plain; version=0.0.4"));
        app.MapGet("/health", () => Results.Ok());
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        engine.Url = new Uri(address.Replace("localhost", "127.0.0.1"));
        return engine;
    }

    /// <summary>vLLM-style load gauges and the lora_requests_info series.</summary>
    public void SetLoad(double running, double waiting, double kv, int maxLora = 2, string runningAdapters = "", string waitingAdapters = "") =>
        MetricsText = $$"""
            # TYPE vllm:num_requests_running gauge
            vllm:num_requests_running{model_name="{{Tables.Base}}",engine="0"} {{running}}
            vllm:num_requests_waiting{model_name="{{Tables.Base}}",engine="0"} {{waiting}}
            vllm:kv_cache_usage_perc{model_name="{{Tables.Base}}",engine="0"} {{kv}}
            vllm:lora_requests_info{max_lora="{{maxLora}}",running_lora_adapters="{{runningAdapters}}",waiting_lora_adapters="{{waitingAdapters}}"} 1.7e9
            """;

    private async Task ServeAsync(HttpContext ctx, bool chat)
    {
        using var ms = new MemoryStream();
        await ctx.Request.Body.CopyToAsync(ms);
        var body = ms.ToArray();
        var json = JsonNode.Parse(body)!;
        var model = json["model"]!.GetValue<string>();
        Received.Enqueue(new ReceivedRequest(ctx.Request.Path, body, ctx.Request.Headers.Authorization.ToString() is { Length: > 0 } a ? a : null, model));
        if (Fail is { Status: < 0 })
        {
            ctx.Abort();
            return;
        }
        if (Fail is { } fail)
        {
            ctx.Response.StatusCode = fail.Status;
            if (fail.RetryAfter is { } ra) ctx.Response.Headers.RetryAfter = ra.ToString();
            return;
        }
        if (!Models.Contains(model))
        {
            ctx.Response.StatusCode = 404;
            await ctx.Response.WriteAsJsonAsync(new { error = new { message = $"The model `{model}` does not exist.", type = "NotFoundError", param = "model", code = 404 } });
            return;
        }
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (json["stream"]?.GetValue<bool>() == true)
        {
            ctx.Response.ContentType = "text/event-stream";
            await ctx.Response.StartAsync();
            await ctx.Response.Body.FlushAsync();
            try
            {
                for (var i = 0; i < StreamTokens; i++)
                {
                    if (i == 1 && HoldAfterFirstToken is { } hold) await hold.Task.WaitAsync(ctx.RequestAborted);
                    if (i == 1 && AbortAfterFirstToken)
                    {
                        // Let the first token reach the client before the crash.
                        await Task.Delay(200);
                        ctx.Abort();
                        return;
                    }
                    if (TokenDelay > TimeSpan.Zero) await Task.Delay(TokenDelay, ctx.RequestAborted);
                    await WriteEventAsync(ctx, Chunk(chat, model, created, $"tok{i} ", null));
                }
                await WriteEventAsync(ctx, Chunk(chat, model, created, "", "stop"));
                await ctx.Response.WriteAsync("data: [DONE]\n\n");
            }
            catch (OperationCanceledException)
            {
                ClientGone.TrySetResult();
            }
            return;
        }
        var text = $"hello from {Name}";
        object response = chat
            ? new
            {
                id = "chatcmpl-" + Guid.NewGuid().ToString("N"), @object = "chat.completion", created, model,
                choices = new[] { new { index = 0, message = new { role = "assistant", content = text }, finish_reason = "stop" } },
                usage = new { prompt_tokens = 3, completion_tokens = 4, total_tokens = 7 },
            }
            : new
            {
                id = "cmpl-" + Guid.NewGuid().ToString("N"), @object = "text_completion", created, model,
                choices = new[] { new { index = 0, text, finish_reason = "stop" } },
                usage = new { prompt_tokens = 3, completion_tokens = 4, total_tokens = 7 },
            };
        if (AbortAfterFirstToken)
        {
            // Half a JSON body, then the crash.
            var bytes = JsonSerializer.SerializeToUtf8Bytes(response);
            ctx.Response.ContentType = "application/json";
            ctx.Response.ContentLength = bytes.Length;
            await ctx.Response.Body.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
            await ctx.Response.Body.FlushAsync();
            await Task.Delay(200);
            ctx.Abort();
            return;
        }
        await ctx.Response.WriteAsJsonAsync(response);
    }

    private static object Chunk(bool chat, string model, long created, string content, string? finish) => chat
        ? new { id = "chatcmpl-1", @object = "chat.completion.chunk", created, model, choices = new[] { new { index = 0, delta = new { content }, finish_reason = finish } } }
        : new { id = "cmpl-1", @object = "text_completion", created, model, choices = new[] { new { index = 0, text = content, finish_reason = finish } } };

    private static async Task WriteEventAsync(HttpContext ctx, object chunk)
    {
        await ctx.Response.WriteAsync("data: " + JsonSerializer.Serialize(chunk) + "\n\n", Encoding.UTF8, ctx.RequestAborted);
        await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
