using Microsoft.AspNetCore.Builder;
using HybridServing.Contracts.Engines;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Engines;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;
using Microsoft.Extensions.Logging.Abstractions;

namespace HybridServing.EngineSidecar.Tests.Engines;

public sealed class EngineClientResilienceTests
{
    private static ResilientEngineClient Client(Uri url, double timeoutSeconds = 10, int attempts = 3, string? apiKey = null) =>
        new(new VllmEngineClient(new HttpClient { BaseAddress = url }, apiKey),
            new EngineCallOptions { RequestTimeoutSeconds = timeoutSeconds, LoadTimeoutSeconds = timeoutSeconds, MaxAttempts = attempts, RetryBaseDelaySeconds = 0.01 },
            TimeProvider.System, NullLogger<ResilientEngineClient>.Instance);

    [Fact]
    public async Task Transient_5xx_is_retried_with_backoff_until_it_succeeds()
    {
        using var dir = new TempDirectory("ec-retry");
        var path = TestAdapters.Write(dir.Path, "r");
        await using var engine = await FakeEngine.StartAsync();
        engine.FailNextLoads = 2;
        var result = await Client(engine.BaseUrl).LoadAsync("r", path, inPlace: false, CancellationToken.None);
        Assert.True(result.Success, result.Message);
        Assert.Equal(3, engine.LoadCalls("r"));
    }

    [Fact]
    public async Task Persistent_5xx_gives_up_after_max_attempts_and_reports_the_status()
    {
        await using var engine = await FakeEngine.StartAsync();
        engine.FailNextLoads = 10;
        engine.FailStatus = 502;
        var result = await Client(engine.BaseUrl, attempts: 2).LoadAsync("r", "/x", false, CancellationToken.None);
        Assert.False(result.Success);
        Assert.Equal(502, result.StatusCode);
        Assert.True(ResilientEngineClient.IsTransient(result));
        Assert.Equal(2, engine.LoadCalls("r"));
    }

    [Fact]
    public async Task A_4xx_answer_is_not_retried()
    {
        await using var engine = await FakeEngine.StartAsync();
        var result = await Client(engine.BaseUrl).LoadAsync("r", "/does/not/exist", false, CancellationToken.None);
        Assert.Equal(404, result.StatusCode);
        Assert.Equal("NotFoundError", result.ErrorType);
        Assert.Contains("No adapter found for /does/not/exist", result.Message);
        Assert.Equal(1, engine.LoadCalls("r"));
    }

    [Fact]
    public async Task A_hanging_engine_times_out_per_attempt()
    {
        await using var engine = await FakeEngine.StartAsync();
        engine.HangLoads = true;
        var started = DateTime.UtcNow;
        // A generous per-attempt limit: on a loaded machine the second attempt must still reach the engine in time.
        var result = await Client(engine.BaseUrl, timeoutSeconds: 1.5, attempts: 2).LoadAsync("h", "/x", false, CancellationToken.None);
        Assert.False(result.Success);
        Assert.Equal("Timeout", result.ErrorType);
        Assert.Contains("within 1.5 s", result.Message);
        Assert.Equal(2, engine.LoadCalls("h"));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task An_unreachable_engine_is_unhealthy_and_listing_fails_clearly()
    {
        var url = new Uri($"http://127.0.0.1:{Ports.GetFree()}/");
        var client = Client(url, attempts: 2);
        Assert.False(await client.IsHealthyAsync(CancellationToken.None));
        Assert.Null(await client.GetLoadAsync(CancellationToken.None));
        var e = await Assert.ThrowsAsync<EngineUnavailableException>(() => client.ListModelsAsync(CancellationToken.None));
        Assert.Contains("/v1/models", e.Message);
    }

    [Theory]
    [InlineData(0, null, true)]
    [InlineData(503, null, true)]
    [InlineData(429, null, true)]
    [InlineData(500, null, true)]
    [InlineData(500, "BadRequestError", false)]
    [InlineData(400, "InvalidUserInput", false)]
    [InlineData(404, "NotFoundError", false)]
    public void Transient_classification(int status, string? type, bool transient) =>
        Assert.Equal(transient, ResilientEngineClient.IsTransient(new EngineCallResult(false, status, type, "")));

    [Fact]
    public async Task Sglang_client_speaks_sglangs_routes_and_reads_its_result_shape()
    {
        var calls = new List<string>();
        await using var app = await KestrelApp.StartAsync(a =>
        {
            a.MapPost("/load_lora_adapter", async (Microsoft.AspNetCore.Http.HttpContext ctx) =>
            {
                var body = await new StreamReader(ctx.Request.Body).ReadToEndAsync();
                calls.Add("load " + body);
                return body.Contains("\"bad\"")
                    ? Microsoft.AspNetCore.Http.Results.Json(new { success = false, error_message = "LoRA rank too big", loaded_adapters = new { } }, statusCode: 400)
                    : Microsoft.AspNetCore.Http.Results.Json(new { success = true, error_message = "", loaded_adapters = new { good = "/p" } });
            });
            a.MapPost("/unload_lora_adapter", async (Microsoft.AspNetCore.Http.HttpContext ctx) =>
            {
                calls.Add("unload " + await new StreamReader(ctx.Request.Body).ReadToEndAsync());
                return Microsoft.AspNetCore.Http.Results.Json(new { success = true, error_message = "", loaded_adapters = new { } });
            });
        });
        IEngineClient client = new SglangEngineClient(new HttpClient { BaseAddress = app.BaseUrl });
        Assert.True((await client.LoadAdapterAsync("good", "/p", false, pinned: true, CancellationToken.None)).Success);
        var bad = await client.LoadAdapterAsync("bad", "/p", false, CancellationToken.None);
        Assert.False(bad.Success);
        Assert.Equal(400, bad.StatusCode);
        Assert.Equal("LoRA rank too big", bad.Message);
        Assert.True((await client.LoadAdapterAsync("good", "/q", true, CancellationToken.None)).Success);
        Assert.Contains("\"pinned\":true", calls[0]);
        Assert.StartsWith("unload", calls[2]);
        Assert.StartsWith("load", calls[3]);
    }
}
