using HybridServing.Contracts.ControlPlane;

namespace HybridServing.Gateway.Picking;

/// <summary>
/// filters → weighted scorers → picker. Pure: the same request gives the same decision
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
            var kept = new List<Candidate>(remaining.Count);
            foreach (var c in remaining)
                if (filter.Keep(request, c)) kept.Add(c);
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
            var anyHolder = false;
            foreach (var c in request.Candidates) anyHolder |= c.Residency == Residency.Loaded;
            var reason = !anyHolder || emptiedBy == ServesModelFilter.FilterName ? PickReasons.NotLoaded
                : emptiedBy == AwakeFilter.FilterName ? PickReasons.AllAsleep : PickReasons.NoHealthyEngine;
            return new PickDecision(null, reason, 0);
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
        var score = 0.0;
        foreach (var s in scored)
        {
            if (!ReferenceEquals(s.Candidate, chosen)) continue;
            score = s.Score;
            break;
        }
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
