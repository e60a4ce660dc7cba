namespace HybridServing.Gateway.Picking;

/// <summary>Removes engines that must not serve a request. Hard filters are never relaxed.</summary>
internal interface IEndpointFilter
{
    string Name { get; }

    /// <summary>A soft filter is skipped when it would remove every remaining engine.</summary>
    bool IsSoft { get; }

    bool Keep(PickRequest request, Candidate candidate);
}

/// <summary>Scores every remaining engine in [0,1] (values outside are clamped by the pipeline); higher is better.</summary>
internal interface IEndpointScorer
{
    string Name { get; }

    void Score(PickRequest request, IReadOnlyList<Candidate> candidates, Span<double> scores);
}

/// <summary>A candidate with its weighted total.</summary>
internal readonly record struct ScoredCandidate(Candidate Candidate, double Score);

/// <summary>Chooses one engine from the scored survivors (never called with none).</summary>
internal interface IEndpointPicker
{
    string Name { get; }

    Candidate Pick(PickRequest request, IReadOnlyList<ScoredCandidate> scored);
}

internal readonly record struct WeightedScorer(IEndpointScorer Scorer, double Weight);
