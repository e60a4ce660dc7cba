namespace HybridServing.Gateway.Picking;

/// <summary>Highest total wins; ties are broken at random (injected) so equal engines share load.</summary>
internal sealed class MaxScorePicker(Random random) : IEndpointPicker
{
    private readonly Lock _gate = new();

    public string Name => "max-score";

    public Candidate Pick(PickRequest request, IReadOnlyList<ScoredCandidate> scored)
    {
        if (scored.Count == 1) return scored[0].Candidate;
        var best = double.MinValue;
        foreach (var s in scored) best = Math.Max(best, s.Score);
        var ties = 0;
        foreach (var s in scored)
            if (best - s.Score < 1e-9) ties++;
        int index;
        if (ties == 1) index = 0;
        else lock (_gate) index = random.Next(ties);
        // The index-th of the tied candidates, in their given order.
        foreach (var s in scored)
        {
            if (best - s.Score >= 1e-9) continue;
            if (index-- == 0) return s.Candidate;
        }
        throw new InvalidOperationException("No candidate to pick from.");
    }
}

/// <summary>Round robin over the survivors in name order, ignoring scores (baseline B0).</summary>
internal sealed class RoundRobinPicker : IEndpointPicker
{
    private long _next = -1;

    public string Name => "round-robin";

    public Candidate Pick(PickRequest request, IReadOnlyList<ScoredCandidate> scored)
    {
        var ordered = scored.Select(s => s.Candidate).OrderBy(c => c.Name, StringComparer.Ordinal).ToList();
        var n = Interlocked.Increment(ref _next);
        return ordered[(int)(n % ordered.Count)];
    }
}
