using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
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

public sealed class TraceSamplerTests
{
    private static OpenTelemetry.Trace.SamplingDecision Decide(Dictionary<string, string?> config, bool sampledParent = false)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(config).Build();
        var parent = sampledParent
            ? new System.Diagnostics.ActivityContext(System.Diagnostics.ActivityTraceId.CreateRandom(), System.Diagnostics.ActivitySpanId.CreateRandom(), System.Diagnostics.ActivityTraceFlags.Recorded, isRemote: true)
            : default;
        var parameters = new OpenTelemetry.Trace.SamplingParameters(parent, System.Diagnostics.ActivityTraceId.CreateRandom(), "req", System.Diagnostics.ActivityKind.Server);
        return ServiceDefaultsExtensions.TraceSampler(configuration).ShouldSample(parameters).Decision;
    }

    private const string Endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT";

    [Fact]
    public void Without_an_exporter_no_span_is_recorded() =>
        Assert.Equal(OpenTelemetry.Trace.SamplingDecision.Drop, Decide([], sampledParent: true));

    [Fact]
    public void With_an_exporter_every_request_is_recorded_by_default() =>
        Assert.Equal(OpenTelemetry.Trace.SamplingDecision.RecordAndSample, Decide(new() { [Endpoint] = "http://127.0.0.1:4318" }));

    [Fact]
    public void A_ratio_applies_to_new_traces_and_a_sampled_parent_is_always_followed()
    {
        var config = new Dictionary<string, string?> { [Endpoint] = "http://127.0.0.1:4318", ["OTEL_TRACES_SAMPLER_ARG"] = "0" };
        Assert.Equal(OpenTelemetry.Trace.SamplingDecision.Drop, Decide(config));
        Assert.Equal(OpenTelemetry.Trace.SamplingDecision.RecordAndSample, Decide(config, sampledParent: true));
    }

    [Theory]
    [InlineData("1.5")]
    [InlineData("half")]
    [InlineData("-0.1")]
    public void A_bad_ratio_stops_start_up_naming_the_variable(string ratio)
    {
        var e = Assert.Throws<InvalidOperationException>(() => Decide(new() { [Endpoint] = "http://127.0.0.1:4318", ["OTEL_TRACES_SAMPLER_ARG"] = ratio }));
        Assert.Contains("OTEL_TRACES_SAMPLER_ARG", e.Message);
        Assert.Contains(ratio, e.Message);
    }
}
