namespace HybridServing.Gateway.Picking;

/// <summary>
/// Where the adapter lives on the engine: running on the GPU (1) > loaded with a free GPU slot
/// (0.8) > queued there behind a full GPU (0.6) > loaded in host memory only (0.4). Base-model
/// requests score 1 everywhere. Unlike GIE's affinity, "running" here is combined with the routing
/// table's residency, so an engine that merely has the adapter busy-listed but not loaded never wins.
/// </summary>
internal sealed class ResidencyScorer : IEndpointScorer
{
    public string Name => "residency";

    public void Score(PickRequest request, IReadOnlyList<Candidate> candidates, Span<double> scores)
    {
        for (var i = 0; i < candidates.Count; i++)
        {
            var c = candidates[i];
            scores[i] = request.AdapterName is not { } adapter ? 1
                : c.Residency != Contracts.ControlPlane.Residency.Loaded ? 0
                : c.AdapterRunning(adapter) ? 1
                : c.HasFreeSlot ? 0.8
                : c.AdapterWaiting(adapter) ? 0.6
                : 0.4;
        }
    }
}

/// <summary>GIE's LoRA affinity as published: active 1.0, free slot 0.8, waiting 0.6, else 0 (reads only the busy lists).</summary>
internal sealed class LoraAffinityScorer : IEndpointScorer
{
    public string Name => "lora-affinity";

    public void Score(PickRequest request, IReadOnlyList<Candidate> candidates, Span<double> scores)
    {
        for (var i = 0; i < candidates.Count; i++)
        {
            var c = candidates[i];
            scores[i] = request.AdapterName is not { } adapter ? 1
                : c.AdapterRunning(adapter) ? 1
                : c.HasFreeSlot ? 0.8
                : c.AdapterWaiting(adapter) ? 0.6
                : 0;
        }
    }
}

/// <summary>Min-max normalised over the candidates: lower value, higher score; all equal scores 1.</summary>
internal abstract class LowerIsBetterScorer : IEndpointScorer
{
    public abstract string Name { get; }

    protected abstract double Value(Candidate candidate);

    public void Score(PickRequest request, IReadOnlyList<Candidate> candidates, Span<double> scores)
    {
        double min = double.MaxValue, max = double.MinValue;
        for (var i = 0; i < candidates.Count; i++)
        {
            var v = Value(candidates[i]);
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        for (var i = 0; i < candidates.Count; i++)
            scores[i] = max - min < 1e-9 ? 1 : (max - Value(candidates[i])) / (max - min);
    }
}

/// <summary>Engine queue depth (waiting requests); unknown load counts as empty.</summary>
internal sealed class QueueScorer : LowerIsBetterScorer
{
    public override string Name => "queue";
    protected override double Value(Candidate candidate) => candidate.Load?.Waiting ?? 0;
}

/// <summary>KV cache usage, already in [0,1]: score = 1 - usage (absolute, not relative).</summary>
internal sealed class KvCacheScorer : IEndpointScorer
{
    public string Name => "kv-cache";

    public void Score(PickRequest request, IReadOnlyList<Candidate> candidates, Span<double> scores)
    {
        for (var i = 0; i < candidates.Count; i++) scores[i] = 1 - (candidates[i].Load?.KvCacheUsage ?? 0);
    }
}

/// <summary>The gateway's own in-flight count: moves at once, where scraped load lags one interval.</summary>
internal sealed class InFlightScorer : LowerIsBetterScorer
{
    public override string Name => "in-flight";
    protected override double Value(Candidate candidate) => candidate.InFlight;
}

/// <summary>
/// Least request (AIBrix's baseline): the larger of the gateway's in-flight count and the engine's
/// own running + waiting, so other gateways' traffic counts too once scraped.
/// </summary>
internal sealed class LeastRequestScorer : LowerIsBetterScorer
{
    public override string Name => "least-request";
    protected override double Value(Candidate candidate) =>
        Math.Max(candidate.InFlight, candidate.Load is { } l ? l.Running + l.Waiting : 0);
}
