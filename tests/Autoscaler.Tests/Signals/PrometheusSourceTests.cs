using HybridServing.Autoscaler.Actuation;
using HybridServing.Autoscaler.Decisions;
using HybridServing.Autoscaler.Signals;
using HybridServing.MockEngine;
using HybridServing.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.Autoscaler.Tests.Signals;

/// <summary>
/// The Prometheus signal source against a real Prometheus scraping real MockEngines (and a gateway's
/// metric lines) every 200 ms, queried over its HTTP API with the default PromQL queries.
/// </summary>
public sealed class PrometheusSourceTests : IAsyncLifetime
{
    private static readonly MockEngineHostOptions DevMode = new()
    {
        Environment = new Dictionary<string, string> { [MockEngineCommandLine.ServerDevModeVariable] = "1" },
    };

    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UnixEpoch.AddDays(20_000));
    private readonly List<MockEngineHost> _engines = [];
    private KestrelApp _gateway = null!;
    private PrometheusServer _prometheus = null!;
    private double _refused = 3;

    public async Task InitializeAsync()
    {
        for (var i = 0; i < 2; i++)
            _engines.Add(await MockEngineHost.StartAsync(DevMode, "--model", TestAdapters.TinyModel, "--mock-profile", "tiny",
                "--mock-time-scale", "0.05", "--enable-sleep-mode", "--enable-lora", "--max-loras", "2"));
        _gateway = await KestrelApp.StartAsync(app => app.MapGet("/metrics", () => Results.Text(
            "# TYPE hybridserving_gateway_held_requests gauge\nhybridserving_gateway_held_requests 2\n" +
            $"# TYPE hybridserving_gateway_overflows counter\nhybridserving_gateway_overflows{{outcome=\"refused\"}} {_refused}\n" +
            "hybridserving_gateway_overflows{outcome=\"served\"} 9\n", "text/plain")));
        _prometheus = await PrometheusServer.StartAsync(
            new PrometheusServer.Job("engines", [.. _engines.Select(e => e.BaseUrl)], new Dictionary<string, string> { ["pool"] = "default" }),
            new PrometheusServer.Job("gateway", [_gateway.BaseUrl]));
    }

    public async Task DisposeAsync()
    {
        await _prometheus.DisposeAsync();
        await _gateway.DisposeAsync();
        foreach (var e in _engines) await e.DisposeAsync();
        _http.Dispose();
    }

    private PrometheusOptions Options => new() { Url = _prometheus.Url };

    private PoolSignalCollector Collector(PrometheusOptions? options = null) =>
        new(new SignalSources(_http), new PrometheusSource(_http, options ?? Options), _clock);

    /// <summary>Observes until <paramref name="until"/> holds (Prometheus answers what it scraped, up to a scrape late), or 20 s.</summary>
    private async Task<PoolSignals> ObserveUntil(PoolSignalCollector collector, PoolOptions pool, Func<PoolSignals, bool> until, string name = "default")
    {
        PoolSignals signals;
        var deadline = DateTime.UtcNow.AddSeconds(20);
        do
        {
            var shared = await collector.ReadSharedAsync(new AutoscalerOptions(), CancellationToken.None);
            var actuator = pool.Actuator == ActuatorKind.Sleep ? (IPoolActuator)new SleepActuator(pool, _http, _clock) : new NoActuator();
            signals = (await collector.ObserveAsync(name, pool, actuator, shared, CancellationToken.None)).Signals;
            if (until(signals)) return signals;
            await Task.Delay(100);
        }
        while (DateTime.UtcNow < deadline);
        Assert.Fail($"not seen in 20 s; last signals: running {signals.Running}, slots {signals.Lora.SlotsTotal}, missing [{string.Join("; ", signals.Missing)}]\n{_prometheus.Log}");
        return signals;
    }

    private PoolOptions SleepPool => new() { MaxEngines = 2, Engines = [.. _engines.Select(e => e.BaseUrl)] };

    /// <summary>A pool whose engines are read from Prometheus only (no direct /metrics read), as a Deployment pool is.</summary>
    private static PoolOptions PrometheusOnlyPool => new() { Actuator = ActuatorKind.Deployment, DeploymentNamespace = "ns", DeploymentName = "engines" };

    private Task<HttpResponseMessage> Complete(MockEngineHost engine) =>
        _http.PostAsync(new Uri(engine.BaseUrl, "v1/completions"), new StringContent(
            """{"model":"test/tiny","prompt":"x","max_tokens":1000,"ignore_eos":true}""", System.Text.Encoding.UTF8, "application/json"));

    [Fact]
    public async Task Load_lora_slots_held_requests_and_refusals_come_from_promql()
    {
        var collector = Collector();
        var idle = await ObserveUntil(collector, SleepPool, s => s.Missing.Count == 0 && s.Lora.SlotsTotal == 4);
        Assert.Equal((2, 0d, 0d, 2d), (idle.CurrentEngines, idle.Running, idle.Waiting, idle.HeldRequests));

        var load = Enumerable.Range(0, 3).Select(_ => Complete(_engines[0])).ToList();
        for (var i = 0; i < 500 && _engines[0].Inspector.Snapshot().Running < 3; i++) await Task.Delay(10);
        Assert.True(_engines[0].Inspector.Snapshot().Running == 3, $"running {_engines[0].Inspector.Snapshot().Running}; {string.Join(", ", load.Select(l => l.IsCompleted ? l.Result.StatusCode.ToString() : "open"))}");
        var busy = await ObserveUntil(collector, SleepPool, s => s.Running == 3);
        Assert.Empty(busy.Missing);
        Assert.True(busy.MaxKvCacheUsage > 0, $"kv cache usage {busy.MaxKvCacheUsage}");

        // The counter's increase since the previous tick is the refusal pressure.
        _refused = 5;
        var refusing = await ObserveUntil(collector, SleepPool, s => s.Lora.OverflowRefusals > 0);
        Assert.Equal(2, refusing.Lora.OverflowRefusals);
        Assert.True(refusing.Lora.SlotBound);

        // A sleeping engine's LoRA slots stop counting (the default LoraInfo query drops engines whose awake series is 0).
        (await _http.PostAsync(new Uri(_engines[1].BaseUrl, "sleep"), null)).EnsureSuccessStatusCode();
        var oneAwake = await ObserveUntil(collector, SleepPool, s => s.Lora.SlotsTotal == 2);
        Assert.Equal(1, oneAwake.CurrentEngines);
    }

    [Fact]
    public async Task A_target_prometheus_cannot_scrape_freezes_the_pool_instead_of_scaling_it_to_zero()
    {
        var collector = Collector();
        var pool = PrometheusOnlyPool;
        await ObserveUntil(collector, pool, s => s.Missing.Count == 0);
        await _engines[1].StopAsync();
        var frozen = await ObserveUntil(collector, pool, s => s.Missing.Count > 0);
        Assert.Contains(frozen.Missing, m => m.Contains($"target {_engines[1].BaseUrl.Authority} is down", StringComparison.Ordinal));

        var decision = new PoolScaler(new PoolOptions { MinEngines = 0, MaxEngines = 2 }.ToPolicy("default")).Decide(frozen with { CurrentEngines = 2 }, _clock.GetUtcNow());
        Assert.Equal((ScaleMode.Frozen, ScaleReasons.SignalsMissing, 2), (decision.Mode, decision.Reason, decision.Desired));
    }

    [Fact]
    public async Task Prometheus_that_stops_answering_is_named_in_missing()
    {
        var collector = Collector();
        await ObserveUntil(collector, PrometheusOnlyPool, s => s.Missing.Count == 0);
        await _prometheus.StopAsync();
        var shared = await collector.ReadSharedAsync(new AutoscalerOptions(), CancellationToken.None);
        Assert.Contains(shared.Missing, m => m.StartsWith("Prometheus query 'up{job=\"gateway\"}': ", StringComparison.Ordinal));
        var signals = (await collector.ObserveAsync("default", PrometheusOnlyPool, new NoActuator(), shared, CancellationToken.None)).Signals;
        Assert.Contains(signals.Missing, m => m.StartsWith("Prometheus query 'up{pool=\"default\"}': ", StringComparison.Ordinal));
        Assert.Contains(signals.Missing, m => m.StartsWith("Prometheus query 'sum(vllm:num_requests_running{pool=\"default\"})': ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_query_that_is_wrong_answers_nothing_or_too_much_freezes_with_the_reason()
    {
        var options = Options;
        options.Queries.Running = "sum(vllm:num_requests_running{$pool}";      // PromQL syntax error
        options.Queries.Waiting = "vllm:num_requests_waiting{$pool}";          // one series per engine, not one value
        options.Queries.KvCacheUsage = "max(vllm:no_such_metric{$pool})";      // nothing
        var signals = await ObserveUntil(Collector(options), PrometheusOnlyPool, s => s.Missing.Count == 3 && !s.Missing.Any(m => m.Contains("is down") || m.Contains("no series (is")));
        Assert.Contains(signals.Missing, m => m.StartsWith("Prometheus query 'sum(vllm:num_requests_running{pool=\"default\"}': HTTP 400 ", StringComparison.Ordinal) && m.Contains("parse error", StringComparison.Ordinal));
        Assert.Contains("Prometheus query 'vllm:num_requests_waiting{pool=\"default\"}': 2 series, expected one (aggregate it with sum or max)", signals.Missing);
        Assert.Contains("Prometheus query 'max(vllm:no_such_metric{pool=\"default\"})': no series", signals.Missing);
    }

    [Fact]
    public async Task A_pool_whose_selector_matches_no_target_is_missing()
    {
        var pool = PrometheusOnlyPool;
        pool.PrometheusSelector = "pool=\"batch\"";
        var signals = await ObserveUntil(Collector(), pool, s => s.Missing.Count > 0);
        Assert.Contains("Prometheus query 'up{pool=\"batch\"}': no series (is the target scraped?)", signals.Missing);
    }

    private sealed class NoActuator : IPoolActuator
    {
        public Task<int> CurrentEnginesAsync(IReadOnlyList<EngineReading> engines, CancellationToken ct) => Task.FromResult(2);
        public Task<string> ApplyAsync(ScaleDecision decision, IReadOnlyList<EngineReading> engines, CancellationToken ct) => throw new InvalidOperationException("not acted on");
    }
}
