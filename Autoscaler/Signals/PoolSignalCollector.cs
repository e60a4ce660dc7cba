using HybridServing.Autoscaler.Actuation;
using HybridServing.Autoscaler.Decisions;
using HybridServing.Autoscaler.Recording;

namespace HybridServing.Autoscaler.Signals;

/// <summary>What one tick saw of a pool: the decision's input and the per-engine readings the actuator acts on.</summary>
internal sealed record PoolObservation(PoolSignals Signals, IReadOnlyList<EngineReading> Engines, ActuationFailure? ActuatorFailure);

/// <summary>The cluster-wide readings of one tick, shared by every pool.</summary>
internal sealed record SharedReadings(ControlPlaneReading? ControlPlane, double HeldRequests, long OverflowRefusals, IReadOnlyList<string> Missing);

/// <summary>
/// Assembles <see cref="PoolSignals"/> from the engines' <c>/metrics</c>, the gateways' held requests and
/// refused overflows, and the ControlPlane's shortfalls. A source that does not answer is named in
/// <see cref="PoolSignals.Missing"/>, which freezes the pool's decision.
/// </summary>
internal sealed class PoolSignalCollector(SignalSources sources, TimeProvider time)
{
    private readonly Dictionary<Uri, double> _lastRefusals = [];

    public async Task<SharedReadings> ReadSharedAsync(AutoscalerOptions options, CancellationToken ct)
    {
        var missing = new List<string>();
        ControlPlaneReading? controlPlane = null;
        if (options.ControlPlaneUrl is { } cp)
        {
            try { controlPlane = await sources.ReadControlPlaneAsync(cp, ct); }
            catch (SignalUnavailableException e) { missing.Add(e.Message); }
        }
        double held = 0;
        long refusals = 0;
        foreach (var gateway in options.GatewayUrls)
        {
            try
            {
                var g = await sources.ReadGatewayAsync(gateway, ct);
                held += g.HeldRequests;
                // A counter: the pressure is what was refused since the previous tick (a restart resets it).
                var previous = _lastRefusals.GetValueOrDefault(gateway, g.OverflowRefusalsTotal);
                refusals += (long)Math.Max(0, g.OverflowRefusalsTotal - previous);
                _lastRefusals[gateway] = g.OverflowRefusalsTotal;
            }
            catch (SignalUnavailableException e) { missing.Add(e.Message); }
        }
        return new SharedReadings(controlPlane, held, refusals, missing);
    }

    /// <summary>The engines whose metrics count for the pool: the configured list, or the ControlPlane's engines matching the selector.</summary>
    public static IReadOnlyList<Uri> EnginesOf(PoolOptions pool, ControlPlaneReading? controlPlane) =>
        pool.Actuator == ActuatorKind.Sleep ? pool.Engines
        : controlPlane is null ? []
        : controlPlane.Engines.Where(e => e.EngineUrl is not null && pool.EngineSelector.All(kv => e.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value))
            .Select(e => e.EngineUrl!).ToList();

    public async Task<PoolObservation> ObserveAsync(PoolOptions pool, IPoolActuator actuator, SharedReadings shared, CancellationToken ct)
    {
        var engines = EnginesOf(pool, shared.ControlPlane);
        var readings = await Task.WhenAll(engines.Select(e => sources.ReadEngineAsync(e, ct)));
        var missing = new List<string>(shared.Missing);
        missing.AddRange(readings.Where(r => !r.Ok).Select(r => $"engine {r.Engine} /metrics: {r.Error}"));
        int current;
        ActuationFailure? failure = null;
        try { current = await actuator.CurrentEnginesAsync(readings, ct); }
        catch (ActuatorException e)
        {
            missing.Add(e.Message);
            failure = new ActuationFailure(e.Reason, e.Message);
            current = readings.Count(r => r.Ok && !r.Load!.Sleeping);
        }
        var awake = readings.Where(r => r.Ok && !r.Load!.Sleeping).Select(r => r.Load!).ToList();
        var signals = new PoolSignals
        {
            ObservedAt = time.GetUtcNow(),
            CurrentEngines = current,
            Running = awake.Sum(l => l.Running),
            Waiting = awake.Sum(l => l.Waiting),
            MaxKvCacheUsage = awake.Count == 0 ? 0 : awake.Max(l => l.KvCacheUsage),
            HeldRequests = shared.HeldRequests,
            Lora = new LoraPressure(
                shared.ControlPlane?.AdaptersShortOfReplicas ?? 0,
                shared.OverflowRefusals,
                awake.Sum(l => l.MaxLoras ?? 0),
                awake.Sum(l => l.MaxLoras is null ? 0 : l.RunningAdapters.Count),
                awake.Sum(l => l.WaitingAdapters.Count)),
            Missing = missing,
        };
        return new PoolObservation(signals, readings, failure);
    }
}
