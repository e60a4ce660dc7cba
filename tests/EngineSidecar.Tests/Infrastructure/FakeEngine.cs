using System.Collections.Concurrent;
using System.Text.Json;
using HybridServing.Contracts.Peft;
using HybridServing.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace HybridServing.EngineSidecar.Tests.Infrastructure;

/// <summary>
/// A vLLM-dialect engine double with fault switches (5xx, hangs, unhealthy), for the cases a real MockEngine
/// is not the point of: the engine client's retries and timeouts. Speaks the protocol document's routes and errors.
/// </summary>
internal sealed class FakeEngine : IAsyncDisposable
{
    private KestrelApp _app = null!;

    public ConcurrentDictionary<string, string> Adapters { get; } = new();
    public ConcurrentQueue<string> Calls { get; } = new();
    public string BaseModel { get; init; } = "test/tiny";
    public int MaxLoras { get; init; } = 2;
    public volatile int FailNextLoads;
    public volatile int FailStatus = 503;
    public volatile bool HangLoads;
    public volatile bool Healthy = true;
    public volatile bool FailUnloads;
    public volatile int Running;
    /// <summary>Null: started without sleep mode (no <c>vllm:engine_sleep_state</c>); else the state vLLM reports.</summary>
    public volatile string? SleepState;
    public Uri BaseUrl => _app.BaseUrl;

    public static async Task<FakeEngine> StartAsync(string baseModel = "test/tiny")
    {
        var engine = new FakeEngine { BaseModel = baseModel };
        engine._app = await KestrelApp.StartAsync(engine.Map);
        return engine;
    }

    private void Map(WebApplication app)
    {
        app.MapGet("/health", () => Healthy ? Results.Ok() : Results.StatusCode(503));
        app.MapGet("/metrics", () => Results.Text(
            $"vllm:num_requests_running{{model_name=\"{BaseModel}\",engine=\"0\"}} {Running}\n" +
            $"vllm:num_requests_waiting{{model_name=\"{BaseModel}\",engine=\"0\"}} 0\n" +
            $"vllm:kv_cache_usage_perc{{model_name=\"{BaseModel}\",engine=\"0\"}} 0.25\n" +
            $"vllm:lora_requests_info{{max_lora=\"{MaxLoras}\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"}} 1.7e9\n" +
            (SleepState is { } sleep
                ? $"vllm:engine_sleep_state{{engine=\"0\",model_name=\"{BaseModel}\",sleep_state=\"awake\"}} {(sleep == "awake" ? 1 : 0)}.0\n" +
                  $"vllm:engine_sleep_state{{engine=\"0\",model_name=\"{BaseModel}\",sleep_state=\"weights_offloaded\"}} {(sleep == "weights_offloaded" ? 1 : 0)}.0\n"
                : "")));
        app.MapGet("/v1/models", () =>
        {
            var data = new List<object> { new { id = BaseModel, @object = "model", root = BaseModel, parent = (string?)null, max_model_len = 2048 } };
            data.AddRange(Adapters.Select(a => (object)new { id = a.Key, @object = "model", root = a.Value, parent = BaseModel, max_model_len = (int?)null }));
            return Results.Json(new { @object = "list", data });
        });
        app.MapPost("/v1/load_lora_adapter", async (HttpContext ctx) =>
        {
            var body = await JsonDocument.ParseAsync(ctx.Request.Body);
            var name = body.RootElement.GetProperty("lora_name").GetString()!;
            var path = body.RootElement.GetProperty("lora_path").GetString()!;
            var inPlace = body.RootElement.TryGetProperty("load_inplace", out var ip) && ip.GetBoolean();
            Calls.Enqueue($"load {name} {path} inplace={inPlace}");
            if (HangLoads) await Task.Delay(Timeout.Infinite, ctx.RequestAborted);
            if (FailNextLoads > 0)
            {
                Interlocked.Decrement(ref FailNextLoads);
                return Results.Text("upstream broke", statusCode: FailStatus);
            }
            if (Adapters.ContainsKey(name) && !inPlace)
                return Error(400, "InvalidUserInput", $"The lora adapter '{name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.");
            try
            {
                var info = PeftAdapter.Read(path);
                if (info.Config.Validate(16) is { } problem)
                    return Error(400, "BadRequestError", $"Call to add_lora method failed: {problem}");
            }
            catch (PeftNotFoundException)
            {
                return Error(404, "NotFoundError", $"Call to add_lora method failed: Loading lora {name} failed: No adapter found for {path}");
            }
            Adapters[name] = path;
            return Results.Text($"Success: LoRA adapter '{name}' added successfully.");
        });
        app.MapPost("/v1/unload_lora_adapter", async (HttpContext ctx) =>
        {
            var body = await JsonDocument.ParseAsync(ctx.Request.Body);
            var name = body.RootElement.GetProperty("lora_name").GetString()!;
            Calls.Enqueue($"unload {name}");
            if (FailUnloads) return Error(500, "InternalServerError", "unload exploded");
            return Adapters.TryRemove(name, out _)
                ? Results.Text($"Success: LoRA adapter '{name}' removed successfully.")
                : Error(404, "NotFoundError", $"The lora adapter '{name}' cannot be found.");
        });
    }

    private static IResult Error(int status, string type, string message) =>
        Results.Json(new { error = new { message, type, param = (string?)null, code = status } }, statusCode: status);

    public int LoadCalls(string name) => Calls.Count(c => c.StartsWith($"load {name} ", StringComparison.Ordinal));

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}
