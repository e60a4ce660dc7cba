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

    /// <summary>One observe → decide → act → record pass for one pool.</summary>
    internal async Task<PoolStatus> TickAsync(string name, PoolOptions pool, CancellationToken ct)
    {
        var actuator = actuators[name];
        var shared = await collector.ReadSharedAsync(options.Value, ct);
        var observation = await collector.ObserveAsync(name, pool, actuator, shared, ct);
        var decision = _scalers[name].Decide(observation.Signals, time.GetUtcNow());
        var action = "no change";
        ActuationFailure? failure = null;
        // A frozen decision holds what runs: nothing is acted on without data.
        if (decision.Mode != ScaleMode.Frozen && decision.Changes)
        {
            try { action = await actuator.ApplyAsync(decision, observation.Engines, ct); }
            catch (ActuatorException e) { failure = new ActuationFailure(e.Reason, e.Message); action = "failed"; }
        }
        else
        {
            failure = observation.ActuatorFailure;
        }
        recorder.Record(decision, action, failure);
        if (events is not null && pool.Actuator == ActuatorKind.Deployment) await events.RecordAsync(pool, decision, action, failure, ct);
        return recorder.Latest[name];
    }
}
