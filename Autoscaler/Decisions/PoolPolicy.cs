namespace HybridServing.Autoscaler.Decisions;

/// <summary>
/// How one engine pool scales. Defaults follow Knative's KPA (60 s stable / 6 s panic windows, panic
/// at 200 % of the current capacity, 30 s scale-to-zero grace) and HPA's scale-down stabilization.
/// </summary>
public sealed record PoolPolicy
{
    public required string Pool { get; init; }
    public int MinEngines { get; init; }
    public int MaxEngines { get; init; } = 1;
    /// <summary>Concurrency (running + waiting + held requests) one engine should carry.</summary>
    public double TargetConcurrencyPerEngine { get; init; } = 8;
    public TimeSpan StableWindow { get; init; } = TimeSpan.FromSeconds(60);
    public TimeSpan PanicWindow { get; init; } = TimeSpan.FromSeconds(6);
    /// <summary>Panic starts when the panic window asks for this multiple of the current engines.</summary>
    public double PanicThreshold { get; init; } = 2.0;
    /// <summary>One decision multiplies the engine count by at most this (and adds at least one).</summary>
    public double MaxScaleUpRate { get; init; } = 2.0;
    /// <summary>One decision divides the engine count by at most this.</summary>
    public double MaxScaleDownRate { get; init; } = 2.0;
    /// <summary>No scale-down until this long after the last scale-up (a cooldown).</summary>
    public TimeSpan ScaleDownDelay { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A scale-down goes only to the highest count recommended within this window (HPA's stabilization).</summary>
    public TimeSpan ScaleDownStabilization { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>The last engine goes only after the pool has been idle this long.</summary>
    public TimeSpan ScaleToZeroGrace { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Signals older than this freeze decisions.</summary>
    public TimeSpan MaxSignalAge { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Scale up a slot-bound pool even when its GPUs look idle (the LoRA rule).</summary>
    public bool LoraAware { get; init; } = true;
}
