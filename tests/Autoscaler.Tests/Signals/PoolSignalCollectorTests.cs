using HybridServing.Autoscaler.Actuation;
using HybridServing.Autoscaler.Signals;
using HybridServing.MockEngine;
using HybridServing.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.Autoscaler.Tests.Signals;

/// <summary>
/// Signals read over HTTP: a real MockEngine's /metrics (LoRA slots, sleep state), and a ControlPlane
/// and gateway that answer in their documented shapes (served by Kestrel: the pieces read here are
/// only their status JSON and metric lines).
/// </summary>
public sealed class PoolSignalCollectorTests
{
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UnixEpoch.AddDays(20_000));

    private static Task<KestrelApp> ControlPlane(Uri engine, Func<double> refusals) => KestrelApp.StartAsync(app =>
    {
        app.MapGet("/v1/status", () => Results.Json(new
        {
            home = "local",
            engines = new[]
            {
                new { name = "e1", engineUrl = engine.ToString(), labels = new Dictionary<string, string> { ["pool"] = "default" }, connected = true },
                new { name = "other", engineUrl = "http://127.0.0.1:1/", labels = new Dictionary<string, string> { ["pool"] = "batch" }, connected = true },
            },
            adapters = new object[]
            {
                new { name = "a", shortfall = new { reason = "NoCapacity", message = "no slot" } },
                new { name = "b", shortfall = (object?)null },
            },
        }));
        app.MapGet("/metrics", () => Results.Text(
            $"# TYPE hybridserving_gateway_held_requests gauge\nhybridserving_gateway_held_requests 2\n" +
            $"# TYPE hybridserving_gateway_overflows_total counter\nhybridserving_gateway_overflows_total{{outcome=\"refused\"}} {refusals()}\n" +
            "hybridserving_gateway_overflows_total{outcome=\"served\"} 9\n", "text/plain"));
    });

    [Fact]
    public async Task Reads_engine_load_lora_slots_shortfalls_held_requests_and_refusal_deltas()
    {
        await using var engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "3");
        double refused = 3;
        await using var refusals3 = await ControlPlane(engine.BaseUrl, () => refused);
        var options = new AutoscalerOptions { ControlPlaneUrl = refusals3.BaseUrl, GatewayUrls = [refusals3.BaseUrl] };
        var pool = new PoolOptions { Actuator = ActuatorKind.Deployment, EngineSelector = new() { ["pool"] = "default" } };
        var collector = new PoolSignalCollector(new SignalSources(_http), null, _clock);

        var shared = await collector.ReadSharedAsync(options, CancellationToken.None);
        Assert.Empty(shared.Missing);
        Assert.Equal(1, shared.ControlPlane!.AdaptersShortOfReplicas);
        Assert.Equal(2, shared.HeldRequests);
        Assert.Equal(0, shared.OverflowRefusals); // the first reading of a counter is its baseline
        Assert.Equal([engine.BaseUrl], collector.EnginesOf(pool, shared.ControlPlane));
        refused = 5;
        Assert.Equal(2, (await collector.ReadSharedAsync(options, CancellationToken.None)).OverflowRefusals);
        Assert.Equal(0, (await collector.ReadSharedAsync(options, CancellationToken.None)).OverflowRefusals);

        var observation = await collector.ObserveAsync("default", pool, new CountAwake(), shared, CancellationToken.None);
        var s = observation.Signals;
        Assert.Empty(s.Missing);
        Assert.Equal(1, s.CurrentEngines);
        Assert.Equal(3, s.Lora.SlotsTotal);
        Assert.Equal(1, s.Lora.AdaptersShortOfReplicas);
        Assert.Equal(2, s.HeldRequests);
        Assert.True(s.Lora.SlotBound);
    }

    [Fact]
    public async Task A_silent_source_is_named_in_missing()
    {
        var collector = new PoolSignalCollector(new SignalSources(_http), null, _clock);
        var dead = new Uri($"http://127.0.0.1:{Ports.GetFree()}/");
        var shared = await collector.ReadSharedAsync(new AutoscalerOptions { ControlPlaneUrl = dead, GatewayUrls = [dead] }, CancellationToken.None);
        Assert.Equal(2, shared.Missing.Count);
        Assert.StartsWith("ControlPlane /v1/status: ", shared.Missing[0], StringComparison.Ordinal);
        Assert.StartsWith($"gateway {dead} /metrics: ", shared.Missing[1], StringComparison.Ordinal);

        var observation = await collector.ObserveAsync("default", new PoolOptions { Engines = [dead] }, new CountAwake(), shared, CancellationToken.None);
        Assert.Contains(observation.Signals.Missing, m => m.StartsWith($"engine {dead} /metrics: ", StringComparison.Ordinal));
    }

    /// <summary>
    /// What SocketsHttpHandler throws when a Service proxy accepts and at once resets a connection (no ready endpoint):
    /// a bare SocketException (ENOTCONN from RemoteEndPoint), not an HttpRequestException. The cluster-shaped test saw it
    /// end the Autoscaler's host; the handler here throws it on every request, since the reset's timing cannot be forced.
    /// </summary>
    private sealed class ResetHandler(Exception failure) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => Task.FromException<HttpResponseMessage>(failure);
    }

    [Theory]
    [InlineData("socket")]
    [InlineData("io")]
    public async Task A_connection_reset_as_it_is_accepted_is_a_missing_source_not_an_exception(string kind)
    {
        Exception failure = kind == "socket" ? new System.Net.Sockets.SocketException(107) : new IOException("The response ended prematurely.");
        using var http = new HttpClient(new ResetHandler(failure));
        var collector = new PoolSignalCollector(new SignalSources(http), null, _clock);
        var url = new Uri("http://hybridserving-controlplane.hybridserving.svc.cluster.local:8081/");
        var shared = await collector.ReadSharedAsync(new AutoscalerOptions { ControlPlaneUrl = url, GatewayUrls = [url] }, CancellationToken.None);
        Assert.Equal(2, shared.Missing.Count);
        Assert.StartsWith("ControlPlane /v1/status: ", shared.Missing[0], StringComparison.Ordinal);
        var observation = await collector.ObserveAsync("default", new PoolOptions { Engines = [url] }, new CountAwake(), shared, CancellationToken.None);
        Assert.Contains(observation.Signals.Missing, m => m.StartsWith($"engine {url} /metrics: ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_sleeping_engine_does_not_count_as_serving()
    {
        await using var engine = await MockEngineHost.StartAsync(new MockEngineHostOptions
        {
            Environment = new Dictionary<string, string> { [MockEngineCommandLine.ServerDevModeVariable] = "1" },
        }, "--model", TestAdapters.TinyModel, "--enable-sleep-mode");
        (await _http.PostAsync(new Uri(engine.BaseUrl, "sleep"), null)).EnsureSuccessStatusCode();
        var collector = new PoolSignalCollector(new SignalSources(_http), null, _clock);
        var pool = new PoolOptions { Engines = [engine.BaseUrl] };
        var observation = await collector.ObserveAsync("default", pool, new SleepActuator(pool, _http, _clock), new SharedReadings(null, 0, 0, []), CancellationToken.None);
        Assert.Equal(0, observation.Signals.CurrentEngines);
        Assert.True(observation.Engines.Single().Load!.Sleeping);
    }

    private sealed class CountAwake : IPoolActuator
    {
        public Task<int> CurrentEnginesAsync(IReadOnlyList<EngineReading> engines, CancellationToken ct) => Task.FromResult(engines.Count(e => e.Ok));
        public Task<string> ApplyAsync(HybridServing.Autoscaler.Decisions.ScaleDecision decision, IReadOnlyList<EngineReading> engines, CancellationToken ct) => Task.FromResult("none");
    }
}
