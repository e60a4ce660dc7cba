using HybridServing.Contracts.Metrics;

namespace HybridServing.Autoscaler.Signals;

/// <summary>The load of a pool's awake engines, from their <c>/metrics</c> or from Prometheus.</summary>
internal sealed record PoolLoad(double Running, double Waiting, double MaxKvCacheUsage, int SlotsTotal, int SlotsOccupied, int WaitingAdapters)
{
    /// <summary>Sums the awake engines' readings; LoRA slots count only on engines that report <c>max_lora</c>.</summary>
    public static PoolLoad FromEngines(IEnumerable<EngineLoadSnapshot> awake)
    {
        var engines = awake.ToList();
        return new PoolLoad(
            engines.Sum(l => l.Running),
            engines.Sum(l => l.Waiting),
            engines.Count == 0 ? 0 : engines.Max(l => l.KvCacheUsage),
            engines.Sum(l => l.MaxLoras ?? 0),
            engines.Sum(l => l.MaxLoras is null ? 0 : l.RunningAdapters.Count),
            engines.Sum(l => l.WaitingAdapters.Count));
    }
}
