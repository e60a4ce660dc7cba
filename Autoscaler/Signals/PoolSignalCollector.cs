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
/// refused overflows (or, when <c>Autoscaler:Prometheus:Url</c> is set, the same signals through PromQL),
/// and the ControlPlane's shortfalls. A source that does not answer is named in
/// <see cref="PoolSignals.Missing"/>, which freezes the pool's decision.
/// </summary>
internal sealed class PoolSignalCollector(SignalSources sources, PrometheusSource? prometheus, TimeProvider time)
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
        void Add(Uri source, GatewayReading g)
        {
            held += g.HeldRequests;
            // A counter: the pressure is what was refused since the previous tick (a restart resets it).
            var previous = _lastRefusals.GetValueOrDefault(source, g.OverflowRefusalsTotal);
            refusals += (long)Math.Max(0, g.OverflowRefusalsTotal - previous);
            _lastRefusals[source] = g.OverflowRefusalsTotal;
        }
        if (prometheus is not null)
        {
            var (reading, failed) = await prometheus.ReadGatewaysAsync(ct);
            if (reading is not null) Add(prometheus.Url, reading);
            missing.AddRange(failed);
        }
        foreach (var gateway in options.GatewayUrls)
        {
            try { Add(gateway, await sources.ReadGatewayAsync(gateway, ct)); }
            catch (SignalUnavailableException e) { missing.Add(e.Message); }
        }
        return new SharedReadings(controlPlane, held, refusals, missing);
    }

    /// <summary>The engines read directly: the Sleep actuator's list (it acts on their sleep state), else, without
    /// Prometheus, the ControlPlane's engines matching the selector.</summary>
    public IReadOnlyList<Uri> EnginesOf(PoolOptions pool, ControlPlaneReading? controlPlane) =>
        pool.Actuator == ActuatorKind.Sleep ? pool.Engines
        : controlPlane is null || prometheus is not null ? []
        : controlPlane.Engines.Where(e => e.EngineUrl is not null && pool.EngineSelector.All(kv => e.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value))
            .Select(e => e.EngineUrl!).ToList();

    public async Task<PoolObservation> ObserveAsync(string name, PoolOptions pool, IPoolActuator actuator, SharedReadings shared, CancellationToken ct)
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
        PoolLoad load;
        if (prometheus is not null)
        {
            var (read, failed) = await prometheus.ReadPoolAsync(pool.PrometheusSelector ?? PoolOptions.DefaultPrometheusSelector(name), ct);
            missing.AddRange(failed);
            load = read ?? PoolLoad.FromEngines([]);
        }
        else
        {
            load = PoolLoad.FromEngines(readings.Where(r => r.Ok && !r.Load!.Sleeping).Select(r => r.Load!));
        }
        var signals = new PoolSignals
        {
            ObservedAt = time.GetUtcNow(),
            CurrentEngines = current,
            Running = load.Running,
            Waiting = load.Waiting,
            MaxKvCacheUsage = load.MaxKvCacheUsage,
            HeldRequests = shared.HeldRequests,
            Lora = new LoraPressure(
                shared.ControlPlane?.AdaptersShortOfReplicas ?? 0,
                shared.OverflowRefusals,
                load.SlotsTotal,
                load.SlotsOccupied,
                load.WaitingAdapters),
            Missing = missing,
        };
        return new PoolObservation(signals, readings, failure);
    }
}
