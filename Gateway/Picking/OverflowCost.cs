namespace HybridServing.Gateway.Picking;

/// <summary>The figures <see cref="OverflowAdvisor"/> weighs against each other.</summary>
/// <param name="ServiceSeconds">Mean seconds an adapter request holds its engine, as observed; null before the first one.</param>
/// <param name="ControlPathSeconds">Mean seconds an overflow load takes from the ask to a routable engine, as observed (the configured estimate before the first one).</param>
internal readonly record struct OverflowCost(double? ServiceSeconds, double ControlPathSeconds);

/// <summary>
/// Keeps <see cref="OverflowCost"/> from observations (exponentially weighted means, weight
/// <see cref="OverflowOptions.CostSmoothing"/>): the gateway feeds it each finished adapter request and each
/// served overflow load, the cluster simulator the same from its virtual clock. Thread-safe.
/// </summary>
internal sealed class OverflowCostTracker(OverflowOptions options)
{
    private readonly Lock _lock = new();
    private double? _service;
    private double? _controlPath;

    public OverflowCost Current
    {
        get
        {
            lock (_lock) return new(_service, _controlPath ?? options.ControlPathCost.TotalSeconds);
        }
    }

    /// <summary>An adapter request finished after <paramref name="seconds"/> on its engine.</summary>
    public void ObserveService(double seconds)
    {
        if (!double.IsFinite(seconds) || seconds < 0) return;
        lock (_lock) _service = Blend(_service, seconds);
    }

    /// <summary>An overflow load made the adapter routable after <paramref name="seconds"/>.</summary>
    public void ObserveControlPath(double seconds)
    {
        if (!double.IsFinite(seconds) || seconds < 0) return;
        lock (_lock) _controlPath = Blend(_controlPath, seconds);
    }

    private double Blend(double? mean, double sample) => mean is { } m ? m + options.CostSmoothing * (sample - m) : sample;
}
