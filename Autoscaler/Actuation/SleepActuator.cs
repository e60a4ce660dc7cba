using System.Globalization;
using HybridServing.Autoscaler.Decisions;
using HybridServing.Autoscaler.Signals;
using HybridServing.Contracts.Metrics;

namespace HybridServing.Autoscaler.Actuation;

/// <summary>
/// The laptop's actuator (and fast standby on Kubernetes): the pool is a fixed list of engines started
/// with <c>--enable-sleep-mode</c>; those above the desired count sleep (<c>POST /sleep?level=N</c>)
/// and are woken (<c>POST /wake_up</c>) when needed. Engines are woken in list order and put to sleep
/// in reverse, so the same engines stay warm. An engine goes to sleep only after its in-flight
/// requests reached zero (up to <c>DrainTimeout</c>); the engine itself refuses new requests from
/// the moment it is asked to sleep, and the gateway stops picking it once its metrics say so.
/// </summary>
internal sealed class SleepActuator(PoolOptions pool, HttpClient http, TimeProvider time) : IPoolActuator
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
                done.Add($"woke {engine.Engine}");
            }
        }
        else if (decision.Desired < awake.Count)
        {
            foreach (var engine in Enumerable.Reverse(awake).Take(awake.Count - decision.Desired))
            {
                var drained = await DrainAsync(engine.Engine, ct);
                await PostAsync(engine.Engine, string.Create(CultureInfo.InvariantCulture, $"sleep?level={pool.SleepLevel}"), ct);
                done.Add(drained ? $"slept {engine.Engine} (level {pool.SleepLevel})" : $"slept {engine.Engine} (level {pool.SleepLevel}) after the drain timeout");
            }
        }
        return done.Count == 0 ? "no change" : string.Join("; ", done);
    }

    /// <summary>Waits until the engine has nothing running or waiting; false when <c>DrainTimeout</c> ran out first.</summary>
    private async Task<bool> DrainAsync(Uri engine, CancellationToken ct)
    {
        var started = time.GetTimestamp();
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
