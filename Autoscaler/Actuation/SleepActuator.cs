using System.Globalization;
using System.Text.Json;
using HybridServing.Autoscaler.Decisions;
using HybridServing.Autoscaler.Recording;
using HybridServing.Autoscaler.Signals;
using HybridServing.Contracts.Metrics;

namespace HybridServing.Autoscaler.Actuation;

/// <summary>
/// The laptop's actuator (and fast standby on Kubernetes): the pool is a fixed list of engines started
/// with <c>--enable-sleep-mode</c>; those above the desired count sleep (<c>POST /sleep?level=N</c>)
/// and are woken (<c>POST /wake_up</c>) when needed. Engines are woken in list order and put to sleep
/// in reverse, so the same engines stay warm. Before an engine sleeps it is drained: with a
/// ControlPlane, <c>POST /v1/engines/{name}/drain</c> moves its adapters to other engines and the
/// gateways stop picking it, and the actuator waits until the ControlPlane says the drain is done; then
/// until its in-flight requests reached zero (all within <c>DrainTimeout</c>). The engine itself refuses
/// new requests from the moment it is asked to sleep. A woken engine is undrained
/// (<c>DELETE …/drain</c>) so that placement uses it again.
/// </summary>
internal sealed class SleepActuator(PoolOptions pool, HttpClient http, TimeProvider time, Uri? controlPlane = null) : IPoolActuator
{
    private static readonly TimeSpan DrainPoll = TimeSpan.FromMilliseconds(100);

    public Task<int> CurrentEnginesAsync(IReadOnlyList<EngineReading> engines, CancellationToken ct) =>
        Task.FromResult(engines.Count(e => e.Ok && !e.Load!.Sleeping));

    public async Task<string> ApplyAsync(ScaleDecision decision, IReadOnlyList<EngineReading> engines, CancellationToken ct)
    {
        var awake = engines.Where(e => e.Ok && !e.Load!.Sleeping).ToList();
        var asleep = engines.Where(e => e.Ok && e.Load!.Sleeping).ToList();
        var done = new List<string>();
        if (decision.Desired > awake.Count)
        {
            foreach (var engine in asleep.Take(decision.Desired - awake.Count))
            {
                await PostAsync(engine.Engine, "wake_up", ct);
                // Awake first, then placeable: the ControlPlane must not place adapters on a sleeping engine.
                using var undrained = controlPlane is null ? null : await DrainAsync(HttpMethod.Delete, engine.Engine, ct);
                done.Add(undrained is null ? $"woke {engine.Engine}" : $"woke {engine.Engine} and undrained {undrained.RootElement.GetProperty("engine").GetString()}");
            }
        }
        else if (decision.Desired < awake.Count)
        {
            foreach (var engine in Enumerable.Reverse(awake).Take(awake.Count - decision.Desired))
            {
                var started = time.GetTimestamp();
                var moved = controlPlane is null ? null : await MoveAdaptersAsync(engine.Engine, started, ct);
                bool idle;
                try
                {
                    idle = await WaitIdleAsync(engine.Engine, started, ct);
                    await PostAsync(engine.Engine, string.Create(CultureInfo.InvariantCulture, $"sleep?level={pool.SleepLevel}"), ct);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested && controlPlane is not null)
                {
                    // Abandoned (load came back) before it slept: the engine stays awake, so placement may use it again.
                    using (await DrainAsync(HttpMethod.Delete, engine.Engine, CancellationToken.None)) { }
                    throw;
                }
                var note = new[] { moved, idle ? null : "in-flight requests still running at the drain timeout" }.Where(n => n is not null);
                done.Add($"slept {engine.Engine} (level {pool.SleepLevel})" + (note.Any() ? $" ({string.Join("; ", note)})" : ""));
            }
        }
        return done.Count == 0 ? DecisionRecorder.NoChange : string.Join("; ", done);
    }

    /// <summary>
    /// Drains the engine in the ControlPlane and waits (within <c>DrainTimeout</c> from <paramref name="started"/>)
    /// until every adapter it holds is LOADED elsewhere. Returns a note for the record, null when all moved.
    /// </summary>
    private async Task<string?> MoveAdaptersAsync(Uri engine, long started, CancellationToken ct)
    {
        using (var draining = await DrainAsync(HttpMethod.Post, engine, ct))
            if (draining is null) return "not drained: no engine in the ControlPlane reports this engineUrl";
        try
        {
            return await WaitDrainedAsync(engine, started, ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Abandoned mid-drain: the engine stays awake and placeable.
            using (await DrainAsync(HttpMethod.Delete, engine, CancellationToken.None)) { }
            throw;
        }
    }

    private async Task<string?> WaitDrainedAsync(Uri engine, long started, CancellationToken ct)
    {
        while (true)
        {
            using var drain = await DrainAsync(HttpMethod.Get, engine, ct)
                ?? throw new ActuatorException("DrainRefused", $"ControlPlane GET /v1/engines/drain: no engine reports engineUrl {engine} any more");
            if (drain.RootElement.GetProperty("done").GetBoolean()) return null;
            if (time.GetElapsedTime(started) >= pool.DrainTimeout)
                return $"adapters not yet loaded elsewhere at the drain timeout: {string.Join(", ", drain.RootElement.GetProperty("pending").EnumerateArray().Select(p => p.GetString()))}";
            await Task.Delay(DrainPoll, time, ct);
        }
    }

    /// <summary>
    /// The ControlPlane's drain API by engine URL (<c>/v1/engines/drain?engineUrl=</c>; it matches URLs canonically,
    /// so <c>localhost</c> and <c>127.0.0.1</c> are the same engine). Null when no engine there reports this URL (404).
    /// </summary>
    private async Task<JsonDocument?> DrainAsync(HttpMethod method, Uri engine, CancellationToken ct)
    {
        var url = new Uri(controlPlane!, "v1/engines/drain?engineUrl=" + Uri.EscapeDataString(engine.ToString()));
        try
        {
            using var response = await http.SendAsync(new HttpRequestMessage(method, url), ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (response.StatusCode == System.Net.HttpStatusCode.NotFound) return null;
            if (!response.IsSuccessStatusCode)
                throw new ActuatorException("DrainRefused", $"ControlPlane {method} {url.AbsolutePath}: HTTP {(int)response.StatusCode} {body}");
            return JsonDocument.Parse(body);
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            throw new ActuatorException("ControlPlaneUnreachable", $"ControlPlane {method} {url.AbsolutePath}: {e.Message}", e);
        }
    }

    /// <summary>Waits until the engine has nothing running or waiting; false when <c>DrainTimeout</c> (from <paramref name="started"/>) ran out first.</summary>
    private async Task<bool> WaitIdleAsync(Uri engine, long started, CancellationToken ct)
    {
        while (true)
        {
            try
            {
                var load = EngineLoadSnapshot.From(PrometheusText.Parse(await http.GetStringAsync(new Uri(engine, "metrics"), ct)), EngineMetricNames.Vllm);
                if (load.Running + load.Waiting == 0) return true;
            }
            catch (HttpRequestException e)
            {
                throw new ActuatorException("EngineUnreachable", $"engine {engine} /metrics during drain: {e.Message}", e);
            }
            if (time.GetElapsedTime(started) >= pool.DrainTimeout) return false;
            await Task.Delay(DrainPoll, time, ct);
        }
    }

    private async Task PostAsync(Uri engine, string path, CancellationToken ct)
    {
        try
        {
            using var response = await http.PostAsync(new Uri(engine, path), content: null, ct);
            if (!response.IsSuccessStatusCode)
                throw new ActuatorException("SleepModeRefused",
                    $"engine {engine} POST /{path}: HTTP {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)} (is it started with --enable-sleep-mode and VLLM_SERVER_DEV_MODE=1?)");
        }
        catch (HttpRequestException e)
        {
            throw new ActuatorException("EngineUnreachable", $"engine {engine} POST /{path}: {e.Message}", e);
        }
    }
}
