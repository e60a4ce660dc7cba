using HybridServing.Autoscaler.Decisions;
using HybridServing.ClusterSimulator.Cluster;

namespace HybridServing.ClusterSimulator.Autoscaling;

/// <summary>Decides how many engines of the pool should be awake, every <see cref="Interval"/> virtual seconds.</summary>
internal abstract class ScalingPolicy
{
    public abstract string Name { get; }
    public abstract string Description { get; }
    /// <summary>Seconds between decisions (infinite: never decides).</summary>
    public abstract double Interval { get; }
    public abstract int InitialEngines { get; }
    public abstract (int Desired, string Reason) Decide(PoolSignals signals, double now);

    public static ScalingPolicy Create(string name, AutoscaleOptions o)
    {
        var target = o.TargetConcurrency ?? new PoolPolicy { Pool = "sim" }.TargetConcurrencyPerEngine;
        return name switch
        {
            ScalingPolicyNames.Static => new StaticPolicy(o.Cluster.Engines),
            ScalingPolicyNames.Hpa => new HpaStylePolicy(o, target),
            ScalingPolicyNames.Kpa => new AutoscalerPolicy(o, target, loraAware: false),
            ScalingPolicyNames.Ours => new AutoscalerPolicy(o, target, loraAware: true),
            _ => throw new ArgumentException($"Unknown scaling policy '{name}'.", nameof(name)),
        };
    }
}

/// <summary>Static provisioning at peak: every engine awake all day.</summary>
internal sealed class StaticPolicy(int engines) : ScalingPolicy
{
    public override string Name => ScalingPolicyNames.Static;
    public override string Description => $"static: all {engines} engines awake all day";
    public override double Interval => double.PositiveInfinity;
    public override int InitialEngines => engines;
    public override (int Desired, string Reason) Decide(PoolSignals signals, double now) => (engines, "Static");
}

/// <summary>
/// Kubernetes HPA (autoscaling/v2) on a per-engine concurrency metric, with its defaults: a sync every
/// 15 s, desired = ceil(current × metric ÷ target) unless the ratio is within the 10 % tolerance,
/// scale-up at most max(+4 pods, +100 %) per period, scale-down to the highest recommendation of the
/// last 300 s (stabilization), no panic mode, at least 1 replica (HPA does not scale to zero).
/// </summary>
internal sealed class HpaStylePolicy(AutoscaleOptions o, double target) : ScalingPolicy
{
    private const double Tolerance = 0.1;
    private readonly Queue<(double At, int Count)> _recommendations = new();

    public override string Name => ScalingPolicyNames.Hpa;
    public override string Description => $"HPA-style: {o.HpaSync} s sync, target {target} running + waiting per engine, {o.HpaStabilization} s scale-down stabilization, no panic, min 1";
    public override double Interval => o.HpaSync;
    public override int InitialEngines => 1;

    public override (int Desired, string Reason) Decide(PoolSignals s, double now)
    {
        var current = Math.Max(1, s.CurrentEngines);
        var ratio = (s.Running + s.Waiting) / current / target;
        var recommended = Math.Abs(ratio - 1) <= Tolerance ? current : (int)Math.Ceiling(ratio * current - 1e-9);
        recommended = Math.Clamp(recommended, 1, o.Cluster.Engines);
        _recommendations.Enqueue((now, recommended));
        while (_recommendations.Peek().At <= now - o.HpaStabilization) _recommendations.Dequeue();
        if (recommended > current) return (Math.Min(recommended, Math.Max(current + 4, 2 * current)), "ScaleUp");
        if (recommended < current) return (Math.Min(current, _recommendations.Max(r => r.Count)), "Stabilized");
        return (current, "WithinTolerance");
    }
}

/// <summary>
/// The Autoscaler's own decision core (<see cref="PoolScaler"/>, unchanged) with its default
/// <see cref="PoolPolicy"/> (KPA windows, scale to zero) and <c>LoraAware</c> on or off.
/// </summary>
internal sealed class AutoscalerPolicy(AutoscaleOptions o, double target, bool loraAware) : ScalingPolicy
{
    private readonly PoolScaler _scaler = new(new PoolPolicy
    {
        Pool = "sim", MinEngines = 0, MaxEngines = o.Cluster.Engines, TargetConcurrencyPerEngine = target, LoraAware = loraAware,
    });

    public override string Name => loraAware ? ScalingPolicyNames.Ours : ScalingPolicyNames.Kpa;
    public override string Description => loraAware
        ? $"ours: Autoscaler PoolScaler, defaults (target {target}, min 0), LoraAware=true"
        : $"KPA: Autoscaler PoolScaler, defaults (target {target}, min 0), LoraAware=false";
    public override double Interval => o.Interval;
    public override int InitialEngines => 1;

    public override (int Desired, string Reason) Decide(PoolSignals signals, double now)
    {
        var d = _scaler.Decide(signals, SimulatedCluster.At(now));
        return (d.Desired, d.Reason);
    }
}
