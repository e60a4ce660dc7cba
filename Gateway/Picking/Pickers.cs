namespace HybridServing.Gateway.Picking;

/// <summary>Highest total wins; ties are broken at random (injected) so equal engines share load.</summary>
internal sealed class MaxScorePicker(Random random) : IEndpointPicker
{
    private readonly Lock _gate = new();

    public string Name => "max-score";

    public Candidate Pick(PickRequest request, IReadOnlyList<ScoredCandidate> scored)
    {
        var best = scored.Max(s => s.Score);
        var top = scored.Where(s => best - s.Score < 1e-9).ToList();
        if (top.Count == 1) return top[0].Candidate;
        int index;
        lock (_gate) index = random.Next(top.Count);
        return top[index].Candidate;
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
