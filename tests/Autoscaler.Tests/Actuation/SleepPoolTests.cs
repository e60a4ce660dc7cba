using System.Diagnostics.Metrics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using HybridServing.Autoscaler.Actuation;
using HybridServing.Autoscaler.Decisions;
using HybridServing.Autoscaler.Recording;
using HybridServing.Autoscaler.Signals;
using HybridServing.MockEngine;
using HybridServing.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.Autoscaler.Tests.Actuation;

/// <summary>
/// The laptop pool end to end over HTTP: real MockEngines in sleep mode, the autoscaler's observe →
/// decide → act loop (decision time on a fake clock), engines put to sleep when idle and woken under load.
/// </summary>
public sealed class SleepPoolTests : IAsyncLifetime
{
    private static readonly MockEngineHostOptions DevMode = new()
    {
        Environment = new Dictionary<string, string> { [MockEngineCommandLine.ServerDevModeVariable] = "1" },
    };

    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly List<MockEngineHost> _engines = [];
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public async Task InitializeAsync()
    {
        for (var i = 0; i < 2; i++)
            _engines.Add(await MockEngineHost.StartAsync(DevMode,
                "--model", TestAdapters.TinyModel, "--mock-profile", "tiny", "--mock-time-scale", "0.05", "--enable-sleep-mode"));
    }

    public async Task DisposeAsync()
    {
        foreach (var e in _engines) await e.DisposeAsync();
        _http.Dispose();
    }

    private (AutoscalerLoop Loop, PoolOptions Pool, DecisionRecorder Recorder) Autoscaler(int min = 1, Uri? controlPlane = null,
        Func<IPoolActuator, IPoolActuator>? wrap = null)
    {
        var pool = new PoolOptions
        {
            MinEngines = min, MaxEngines = 2, TargetConcurrencyPerEngine = 1, Engines = [.. _engines.Select(e => e.BaseUrl)],
            StableWindow = TimeSpan.FromSeconds(6), PanicWindow = TimeSpan.FromSeconds(2), ScaleDownDelay = TimeSpan.Zero,
            ScaleDownStabilization = TimeSpan.FromSeconds(2), ScaleToZeroGrace = TimeSpan.FromSeconds(4), DrainTimeout = TimeSpan.FromSeconds(30),
        };
        var options = new AutoscalerOptions { Pools = new() { ["default"] = pool } };
        var meters = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();
        var recorder = new DecisionRecorder(meters, NullLogger<DecisionRecorder>.Instance);
        var actuators = new Dictionary<string, IPoolActuator> { ["default"] = (wrap ?? (a => a))(new SleepActuator(pool, _http, TimeProvider.System, controlPlane)) };
        var loop = new AutoscalerLoop(Options.Create(options), new PoolSignalCollector(new SignalSources(_http), null, _clock), actuators, recorder, null, _clock);
        return (loop, pool, recorder);
    }

    private async Task<PoolStatus> Ticks(AutoscalerLoop loop, PoolOptions pool, int count)
    {
        PoolStatus? last = null;
        for (var i = 0; i < count; i++)
        {
            _clock.Advance(TimeSpan.FromSeconds(1));
            last = await loop.TickAsync("default", pool, CancellationToken.None);
        }
        return last!;
    }

    /// <summary>Ticks (a second of decision time each, real time between them for background drains) until the action starts with <paramref name="prefix"/>.</summary>
    private async Task<PoolStatus> TicksUntil(AutoscalerLoop loop, PoolOptions pool, string prefix)
    {
        for (var i = 0; i < 200; i++)
        {
            var status = await Ticks(loop, pool, 1);
            if (status.Action.StartsWith(prefix, StringComparison.Ordinal)) return status;
            await Task.Delay(50);
        }
        throw new Xunit.Sdk.XunitException($"no action starting with '{prefix}' within 200 ticks.");
    }

    private async Task<bool> IsSleeping(MockEngineHost engine)
    {
        using var doc = JsonDocument.Parse(await _http.GetStringAsync(new Uri(engine.BaseUrl, "is_sleeping")));
        return doc.RootElement.GetProperty("is_sleeping").GetBoolean();
    }

    private Task<HttpResponseMessage> Complete(MockEngineHost engine, int tokens) =>
        _http.PostAsync(new Uri(engine.BaseUrl, "v1/completions"),
            new StringContent($$"""{"model":"test/tiny","prompt":"x","max_tokens":{{tokens}},"ignore_eos":true}""", Encoding.UTF8, "application/json"));

    [Fact]
    public async Task Idle_engines_above_the_minimum_sleep_and_wake_when_load_comes()
    {
        var (loop, pool, recorder) = Autoscaler();
        var idle = await TicksUntil(loop, pool, "slept");
        Assert.Equal(1, idle.Decision.Desired);
        Assert.False(await IsSleeping(_engines[0]));
        Assert.True(await IsSleeping(_engines[1]));   // the last listed engine sleeps first
        Assert.Equal(1, recorder.Latest["default"].Decision.Desired);

        // Three long requests on the awake engine: concurrency 3 at target 1 → wake the other (max 2).
        var load = Enumerable.Range(0, 3).Select(_ => Complete(_engines[0], 200)).ToList();
        for (var i = 0; i < 500 && _engines[0].Inspector.Snapshot().Running < 3; i++) await Task.Delay(5);
        var busy = await Ticks(loop, pool, 1);
        Assert.Equal(2, busy.Decision.Desired);
        Assert.Equal($"woke {_engines[1].BaseUrl}", busy.Action);
        Assert.False(await IsSleeping(_engines[1]));
        foreach (var r in load) Assert.Equal(200, (int)(await r).StatusCode);
    }

    [Fact]
    public async Task An_engine_finishes_its_in_flight_request_before_it_sleeps()
    {
        var (loop, pool, _) = Autoscaler();
        // The engine that will be put to sleep is serving a request when the decision comes.
        var inFlight = Complete(_engines[1], 60);
        for (var i = 0; i < 500 && _engines[1].Inspector.Snapshot().Running == 0; i++) await Task.Delay(5);
        Assert.Equal(1, _engines[1].Inspector.Snapshot().Running);
        // Concurrency 1 at target 1 wants 1 engine: engine 1 drains, then sleeps.
        await TicksUntil(loop, pool, "slept");
        Assert.True(inFlight.IsCompleted, "the sleep was sent before the in-flight request finished");
        using var response = await inFlight;
        Assert.Equal(200, (int)response.StatusCode);
        var usage = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.Equal(60, usage);
        Assert.True(await IsSleeping(_engines[1]));
    }

    /// <summary>
    /// A ControlPlane answering the drain API by engine URL as documented (ControlPlane/README.md): the engine
    /// whose URL is <c>engineUrl</c> (here compared as the autoscaler sends it; the ControlPlane's canonical
    /// matching has its own tests), 404 for any other; a drain is pending for its first two polls, then done.
    /// Every call is recorded with whether the engine slept at that moment.
    /// </summary>
    private async Task<(KestrelApp App, List<string> Calls)> ControlPlane(int status = 200)
    {
        var calls = new List<string>();
        var polls = 0;
        var app = await KestrelApp.StartAsync(app =>
        {
            async Task<IResult> Record(string call, string? engineUrl, Func<int, object> body)
            {
                var engine = _engines.FindIndex(e => e.BaseUrl.ToString() == engineUrl);
                if (engine < 0) return Results.Json(new { error = new { code = 404, reason = "NotFound", message = $"no engine reports engineUrl '{engineUrl}'" } }, statusCode: 404);
                var sleeping = await IsSleeping(_engines[engine]);
                lock (calls) calls.Add($"{call} engine-{engine} (sleeping: {sleeping})");
                return status == 200 ? Results.Json(body(engine)) : Results.Json(new { error = new { code = status, reason = "Boom", message = "no" } }, statusCode: status);
            }
            const string drain = "/v1/engines/drain";
            app.MapPost(drain, (string? engineUrl) => Record("POST", engineUrl, i => new { engine = $"engine-{i}", draining = true, pending = new[] { "a-lora" }, done = false }));
            app.MapGet(drain, (string? engineUrl) => Record("GET", engineUrl, i => ++polls <= 2
                ? new { engine = $"engine-{i}", draining = true, pending = new[] { "a-lora" }, done = false }
                : new { engine = $"engine-{i}", draining = true, pending = Array.Empty<string>(), done = true }));
            app.MapDelete(drain, (string? engineUrl) => Record("DELETE", engineUrl, i => new { engine = $"engine-{i}", draining = false, pending = Array.Empty<string>(), done = false }));
        });
        return (app, calls);
    }

    [Fact]
    public async Task Scale_down_drains_the_engine_in_the_controlplane_first_and_a_woken_engine_is_undrained()
    {
        var (cp, calls) = await ControlPlane();
        await using var _ = cp;
        var (loop, pool, _) = Autoscaler(controlPlane: cp.BaseUrl);
        // The scale-down drains in the background; a later pass reports what it did.
        var slept = await TicksUntil(loop, pool, "slept");
        Assert.Equal($"slept {_engines[1].BaseUrl} (level 1)", slept.Action);
        Assert.Equal(["POST engine-1 (sleeping: False)", "GET engine-1 (sleeping: False)", "GET engine-1 (sleeping: False)", "GET engine-1 (sleeping: False)"], calls);
        Assert.True(await IsSleeping(_engines[1]));

        var load = Enumerable.Range(0, 3).Select(_ => Complete(_engines[0], 200)).ToList();
        for (var i = 0; i < 500 && _engines[0].Inspector.Snapshot().Running < 3; i++) await Task.Delay(5);
        var busy = await Ticks(loop, pool, 1);
        Assert.Equal($"woke {_engines[1].BaseUrl} and undrained engine-1", busy.Action);
        Assert.Equal("DELETE engine-1 (sleeping: False)", calls[^1]);   // undrained only once awake
        foreach (var r in load) Assert.Equal(200, (int)(await r).StatusCode);
    }

    [Fact]
    public async Task A_controlplane_that_refuses_the_drain_keeps_the_engine_awake()
    {
        var (cp, _) = await ControlPlane(status: 500);
        await using var _ = cp;
        var (loop, pool, _) = Autoscaler(controlPlane: cp.BaseUrl);
        var failed = await TicksUntil(loop, pool, "failed");
        Assert.Equal("DrainRefused", failed.ActionReason);
        Assert.StartsWith("ControlPlane POST /v1/engines/drain: HTTP 500 ", failed.ActionError, StringComparison.Ordinal);
        Assert.False(await IsSleeping(_engines[1]));
    }

    [Fact]
    public async Task A_scale_down_still_draining_is_abandoned_when_load_comes_back_and_the_pool_keeps_deciding()
    {
        var (loop, pool, _) = Autoscaler();
        // Engine 1 serves a long request: the scale-down to 1 engine has to wait for it (drain).
        var inFlight = Complete(_engines[1], 2000);
        for (var i = 0; i < 500 && _engines[1].Inspector.Snapshot().Running == 0; i++) await Task.Delay(5);
        var draining = await Ticks(loop, pool, 1);
        Assert.Equal(1, draining.Decision.Desired);
        Assert.StartsWith("scaling down to 1 (draining)", draining.Action, StringComparison.Ordinal);

        // The drain does not stop the loop: load arrives on engine 0 and the next passes see it.
        var load = Enumerable.Range(0, 3).Select(_ => Complete(_engines[0], 200)).ToList();
        for (var i = 0; i < 500 && _engines[0].Inspector.Snapshot().Running < 3; i++) await Task.Delay(5);
        var kept = await TicksUntil(loop, pool, "abandoned");
        Assert.True(kept.Decision.Desired >= 2, kept.Decision.Message);
        Assert.False(await IsSleeping(_engines[1]));
        // Still serving its long request: the drain was abandoned, not completed.
        Assert.False(inFlight.IsCompleted);
        Assert.Equal(1, _engines[1].Inspector.Snapshot().Running);
        foreach (var r in load) Assert.Equal(200, (int)(await r).StatusCode);
    }

    [Fact]
    public async Task A_scale_down_abandoned_mid_drain_undrains_the_engine_in_the_controlplane()
    {
        var (cp, calls) = await ControlPlane();
        await using var _ = cp;
        var (loop, pool, _) = Autoscaler(controlPlane: cp.BaseUrl);
        // The drain is done in the ControlPlane, but engine 1 still serves a long request: the scale-down waits for it.
        var inFlight = Complete(_engines[1], 2000);
        for (var i = 0; i < 500 && _engines[1].Inspector.Snapshot().Running == 0; i++) await Task.Delay(5);
        await Ticks(loop, pool, 1);
        for (var i = 0; i < 200 && calls.Count(c => c.StartsWith("GET", StringComparison.Ordinal)) < 3; i++) await Task.Delay(20);

        var load = Enumerable.Range(0, 3).Select(_ => Complete(_engines[0], 200)).ToList();
        for (var i = 0; i < 500 && _engines[0].Inspector.Snapshot().Running < 3; i++) await Task.Delay(5);
        await TicksUntil(loop, pool, "abandoned");
        // Left awake and no longer drained: placement may use it again.
        Assert.Equal("DELETE engine-1 (sleeping: False)", calls[^1]);
        Assert.False(await IsSleeping(_engines[1]));
        foreach (var r in load) Assert.Equal(200, (int)(await r).StatusCode);
    }

    /// <summary>Holds every scale-down's answer until released, after the real actuator has acted.</summary>
    private sealed class HeldActuator(IPoolActuator inner) : IPoolActuator
    {
        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Acted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<int> CurrentEnginesAsync(IReadOnlyList<EngineReading> engines, CancellationToken ct) => inner.CurrentEnginesAsync(engines, ct);

        public async Task<string> ApplyAsync(ScaleDecision decision, IReadOnlyList<EngineReading> engines, CancellationToken ct)
        {
            var done = await inner.ApplyAsync(decision, engines, ct);
            Acted.TrySetResult();
            await Release.Task;
            return done;
        }
    }

    [Fact]
    public async Task A_pass_that_sees_the_engine_already_asleep_before_the_scale_down_returns_does_not_call_it_abandoned()
    {
        HeldActuator? held = null;
        var (loop, pool, recorder) = Autoscaler(wrap: a => held = new HeldActuator(a));
        await Ticks(loop, pool, 1);
        await held!.Acted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(await IsSleeping(_engines[1]));
        // Asleep, but the scale-down has not returned yet: one engine awake is what it goes to, not load coming back.
        var between = await Ticks(loop, pool, 1);
        Assert.Equal(1, between.Decision.Current);
        Assert.Equal("scaling down to 1 (draining)", between.Action);
        held.Release.SetResult();
        var slept = await TicksUntil(loop, pool, "slept");
        Assert.Equal($"slept {_engines[1].BaseUrl} (level 1)", slept.Action);
        Assert.DoesNotContain(recorder.Recent("default"), a => a.Action.StartsWith("abandoned", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_engine_that_stops_answering_freezes_the_pool_instead_of_scaling_it_down()
    {
        var (loop, pool, _) = Autoscaler(min: 0);
        await _engines[1].StopAsync();
        var frozen = await Ticks(loop, pool, 12);
        Assert.Equal(ScaleMode.Frozen, frozen.Decision.Mode);
        Assert.Equal(ScaleReasons.SignalsMissing, frozen.Decision.Reason);
        Assert.Contains(_engines[1].BaseUrl.ToString(), frozen.Decision.Message, StringComparison.Ordinal);
        Assert.Equal("no change", frozen.Action);
        Assert.False(await IsSleeping(_engines[0]));
    }
}
