using HybridServing.Autoscaler.Actuation;
using HybridServing.Autoscaler.Decisions;
using HybridServing.Autoscaler.Recording;
using HybridServing.Autoscaler.Signals;
using Microsoft.Extensions.Options;

namespace HybridServing.Autoscaler;

/// <summary>
/// Every <c>Autoscaler:Interval</c>: observe (shared readings once, then each pool), decide (the pure
/// <see cref="PoolScaler"/>), act (the pool's actuator), record. Pools run in their own loops so a
/// slow drain in one never delays another.
/// </summary>
internal sealed class AutoscalerLoop(
    IOptions<AutoscalerOptions> options,
    PoolSignalCollector collector,
    IReadOnlyDictionary<string, IPoolActuator> actuators,
    DecisionRecorder recorder,
    KubernetesEvents? events,
    TimeProvider time) : BackgroundService
{
    // Scale-downs in progress, by pool; each pool's loop touches only its own entry.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, PendingScaleDown> _scaleDowns = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PoolScaler> _scalers = options.Value.Pools.ToDictionary(p => p.Key, p => new PoolScaler(p.Value.ToPolicy(p.Key)), StringComparer.Ordinal);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(options.Value.Pools.Select(p => RunPoolAsync(p.Key, p.Value, stoppingToken)));

    private async Task RunPoolAsync(string name, PoolOptions pool, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(options.Value.Interval, time);
        try
        {
            do await TickAsync(name, pool, ct);
            while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// One observe → decide → act → record pass for one pool. A scale-down (which drains an engine first, up
    /// to <c>DrainTimeout</c>) runs in the background so the pool keeps deciding meanwhile: a later pass that
    /// no longer wants fewer engines abandons it (the engine stays awake), and the pass after it finishes
    /// reports what it did. Scale-ups are applied at once.
    /// </summary>
    internal async Task<PoolStatus> TickAsync(string name, PoolOptions pool, CancellationToken ct)
    {
        var actuator = actuators[name];
        var shared = await collector.ReadSharedAsync(options.Value, ct);
        var observation = await collector.ObserveAsync(name, pool, actuator, shared, ct);
        var decision = _scalers[name].Decide(observation.Signals, time.GetUtcNow());
        var action = DecisionRecorder.NoChange;
        ActuationFailure? failure = observation.ActuatorFailure;
        var frozen = decision.Mode == ScaleMode.Frozen;

        if (_scaleDowns.TryGetValue(name, out var pending))
        {
            if (pending.Work.IsCompleted)
            {
                _scaleDowns.TryRemove(name, out _);
                pending.Cancel.Dispose();
                (action, failure) = await pending.Work;
            }
            else if (!frozen && decision.Desired > pending.Desired)
            {
                // Load came back while the engine drained: keep it (and every other) awake. Compared with the count the
                // scale-down goes to, not with the engines awake now: an engine that just slept is no longer counted.
                await pending.Cancel.CancelAsync();
                var (done, doneFailure) = await pending.Work;
                _scaleDowns.TryRemove(name, out _);
                pending.Cancel.Dispose();
                (action, failure) = done == Abandoned ? ($"abandoned the scale-down to {pending.Desired}: load came back", null) : (done, doneFailure);
            }
            else
            {
                action = $"scaling down to {pending.Desired} (draining)";
            }
            pending = _scaleDowns.GetValueOrDefault(name);
        }
        // A frozen decision holds what runs: nothing is acted on without data. A pass that reports a finished
        // scale-down starts no new one, so its outcome (slept, failed) is what this pass records.
        var reported = action != DecisionRecorder.NoChange;
        if (!frozen && decision.Changes && pending is null && !(reported && decision.Desired < decision.Current))
        {
            if (decision.Desired > decision.Current)
                (action, failure) = await ApplyAsync(actuator, decision, observation.Engines, ct);
            else
            {
                var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
                _scaleDowns[name] = new PendingScaleDown(decision.Desired, cancel, Task.Run(() => ApplyAsync(actuator, decision, observation.Engines, cancel.Token), CancellationToken.None));
                action = $"scaling down to {decision.Desired} (draining)";
            }
        }
        recorder.Record(decision, action, failure);
        if (events is not null && pool.Actuator == ActuatorKind.Deployment) await events.RecordAsync(pool, decision, action, failure, ct);
        return recorder.Latest[name];
    }

    private static async Task<(string Action, ActuationFailure? Failure)> ApplyAsync(IPoolActuator actuator, ScaleDecision decision,
        IReadOnlyList<EngineReading> engines, CancellationToken ct)
    {
        try { return (await actuator.ApplyAsync(decision, engines, ct), null); }
        catch (ActuatorException e) { return ("failed", new ActuationFailure(e.Reason, e.Message)); }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { return (Abandoned, null); }
    }

    private const string Abandoned = "abandoned";

    /// <summary>A scale-down in progress: the count it goes to, how to abandon it, and what it did.</summary>
    private sealed record PendingScaleDown(int Desired, CancellationTokenSource Cancel, Task<(string Action, ActuationFailure? Failure)> Work);
}
