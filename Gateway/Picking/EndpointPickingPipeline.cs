using HybridServing.Contracts.ControlPlane;

namespace HybridServing.Gateway.Picking;

/// <summary>
/// filters → weighted scorers → picker (STYLE.md). Pure: the same request gives the same decision
/// except where a picker uses its injected randomness or round-robin position.
/// </summary>
internal sealed class EndpointPickingPipeline
{
    public EndpointPickingPipeline(string name, IReadOnlyList<IEndpointFilter> filters, IReadOnlyList<WeightedScorer> scorers, IEndpointPicker picker)
    {
        foreach (var s in scorers)
            if (!double.IsFinite(s.Weight) || s.Weight < 0) throw new ArgumentException($"Scorer '{s.Scorer.Name}' has weight {s.Weight}; weights must be finite and >= 0.", nameof(scorers));
        Name = name;
        Filters = filters;
        Scorers = scorers;
        Picker = picker;
    }

    public string Name { get; }
    public IReadOnlyList<IEndpointFilter> Filters { get; }
    public IReadOnlyList<WeightedScorer> Scorers { get; }
    public IEndpointPicker Picker { get; }

    public PickDecision Pick(PickRequest request)
    {
        IReadOnlyList<Candidate> remaining = request.Candidates;
        var relaxed = false;
        string? emptiedBy = null;
        foreach (var filter in Filters)
        {
            var kept = remaining.Where(c => filter.Keep(request, c)).ToList();
            if (kept.Count == 0 && filter.IsSoft && remaining.Count > 0)
            {
                relaxed = true;
                continue;
            }
            remaining = kept;
            if (remaining.Count == 0)
            {
                emptiedBy = filter.Name;
                break;
            }
        }
        if (remaining.Count == 0)
        {
            var anyHolder = request.Candidates.Any(c => c.Residency == Residency.Loaded);
            return new PickDecision(null, anyHolder && emptiedBy != ServesModelFilter.FilterName ? PickReasons.NoHealthyEngine : PickReasons.NotLoaded, 0);
        }

        var totals = new double[remaining.Count];
        var scratch = new double[remaining.Count];
        foreach (var (scorer, weight) in Scorers)
        {
            if (weight == 0) continue;
            Array.Clear(scratch);
            scorer.Score(request, remaining, scratch);
            for (var i = 0; i < scratch.Length; i++)
                totals[i] += weight * (double.IsNaN(scratch[i]) ? 0 : Math.Clamp(scratch[i], 0, 1));
        }
        var scored = new ScoredCandidate[remaining.Count];
        for (var i = 0; i < scored.Length; i++) scored[i] = new ScoredCandidate(remaining[i], totals[i]);
        var chosen = Picker.Pick(request, scored);
        var score = scored.First(s => ReferenceEquals(s.Candidate, chosen)).Score;
        return new PickDecision(chosen, relaxed ? PickReasons.AllSaturated : ReasonFor(request, chosen), score);
    }

    private static string ReasonFor(PickRequest request, Candidate chosen)
    {
        if (request.AdapterName is not { } adapter) return PickReasons.BaseModel;
        if (chosen.AdapterRunning(adapter)) return PickReasons.GpuResident;
        if (chosen.HasFreeSlot) return PickReasons.FreeSlot;
        return PickReasons.Loaded;
    }
}
