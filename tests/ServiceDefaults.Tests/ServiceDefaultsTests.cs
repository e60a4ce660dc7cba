using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;

namespace HybridServing.ServiceDefaults.Tests;

public sealed class ServiceDefaultsTests
{
    private static async Task<(WebApplication App, HttpClient Client)> StartAsync(Dictionary<string, string?> config)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        foreach (var (k, v) in config) builder.Configuration[k] = v;
        builder.AddServiceDefaults();
        var app = builder.Build();
        app.MapGet("/hello", () => "hi");
        app.MapDefaultEndpoints();
        await app.StartAsync();
        return (app, new HttpClient { BaseAddress = new Uri(app.Urls.First()) });
    }

    [Fact]
    public async Task Health_alive_and_prometheus_metrics_are_mapped()
    {
        var (app, client) = await StartAsync([]);
        await using var _ = app;
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/alive")).StatusCode);
        await client.GetStringAsync("/hello");
        var metrics = await client.GetStringAsync("/metrics");
        Assert.Contains("http_requests_received_total", metrics);
        Assert.Contains("endpoint=\"/hello\"", metrics);
    }

    [Fact]
    public async Task Traces_are_exported_over_otlp_when_the_endpoint_is_set()
    {
        // A real OTLP/HTTP receiver on loopback records what the service exports.
        var received = new ConcurrentQueue<string>();
        var collector = WebApplication.CreateBuilder();
        collector.WebHost.UseUrls("http://127.0.0.1:0");
        var collectorApp = collector.Build();
        collectorApp.MapPost("/v1/{signal}", (string signal) => { received.Enqueue(signal); return Results.Ok(); });
        await collectorApp.StartAsync();
        await using var __ = collectorApp;

        var (app, client) = await StartAsync(new()
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collectorApp.Urls.First(),
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
            ["OTEL_BLRP_SCHEDULE_DELAY"] = "100",
        });
        await using var _ = app;
        await client.GetStringAsync("/hello");

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!received.Contains("traces"))
            await Task.Delay(100, timeout.Token);
    }
}

public sealed class PrometheusBridgeTests
{
    [Theory]
    [InlineData("Microsoft.AspNetCore.Hosting", true)]
    [InlineData("Microsoft.AspNetCore.Server.Kestrel", true)]
    [InlineData("Microsoft.AspNetCore.MemoryPool", true)]
    [InlineData("System.Net.Http", true)]
    [InlineData("System.Net.NameResolution", true)]
    [InlineData("HybridServing.Gateway", false)]
    [InlineData("System.Runtime", false)]
    [InlineData("Grpc.Net.Client", false)]
    public void Only_the_per_request_framework_meters_are_left_out(string meter, bool leftOut) =>
        Assert.Equal(leftOut, ServiceDefaultsExtensions.IsPerRequestFrameworkMeter(meter));
}
