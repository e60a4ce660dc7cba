namespace HybridServing.Gateway.Picking;

/// <summary>
/// The composition root of endpoint picking: every policy is assembled here explicitly, so the
/// baselines and ours run through the same pipeline and can be compared in one run.
/// </summary>
internal static class PickingPolicies
{
    public const string Hybrid = "hybrid";
    public const string RoundRobin = "round-robin";
    public const string LeastRequest = "least-request";
    public const string LoraAffinity = "lora-affinity";

    public static readonly IReadOnlyList<string> Names = [Hybrid, RoundRobin, LeastRequest, LoraAffinity];

    /// <summary>Default weights of the hybrid policy: residency first, then the two fastest-moving load signals.</summary>
    public static readonly IReadOnlyDictionary<string, double> HybridWeights = new Dictionary<string, double>(StringComparer.OrdinalIgnoreCase)
    {
        ["residency"] = 3,
        ["queue"] = 2,
        ["in-flight"] = 2,
        ["kv-cache"] = 1,
    };

    public static EndpointPickingPipeline Create(PickingOptions options, Random random)
    {
        // Every policy: the hard filters, then draining engines only as a last resort.
        IEndpointFilter[] common = [new ServesModelFilter(), new HealthyFilter(), new AwakeFilter(), new NotTriedFilter(), new NotDrainingFilter()];
        switch (options.Policy.Trim().ToLowerInvariant())
        {
            case Hybrid:
                var weights = new Dictionary<string, double>(HybridWeights, StringComparer.OrdinalIgnoreCase);
                foreach (var (name, w) in options.Weights)
                {
                    if (!weights.ContainsKey(name))
                        throw new InvalidOperationException($"Gateway:Picking:Weights:{name} names no scorer; known: {string.Join(", ", HybridWeights.Keys)}.");
                    weights[name] = w;
                }
                return new EndpointPickingPipeline(Hybrid,
                    [.. common, new NotSaturatedFilter(options.SaturationQueueDepth, options.SaturationKvCacheUsage)],
                    [
                        new(new ResidencyScorer(), weights["residency"]),
                        new(new QueueScorer(), weights["queue"]),
                        new(new InFlightScorer(), weights["in-flight"]),
                        new(new KvCacheScorer(), weights["kv-cache"]),
                    ],
                    new MaxScorePicker(random));
            case RoundRobin:
                return new EndpointPickingPipeline(RoundRobin, common, [], new RoundRobinPicker());
            case LeastRequest:
                return new EndpointPickingPipeline(LeastRequest, common, [new(new LeastRequestScorer(), 1)], new MaxScorePicker(random));
            case LoraAffinity:
                // GIE's published weights: affinity plus queue and KV-cache scorers at 2/2.
                return new EndpointPickingPipeline(LoraAffinity, common,
                    [new(new LoraAffinityScorer(), 1), new(new QueueScorer(), 2), new(new KvCacheScorer(), 2)],
                    new MaxScorePicker(random));
            default:
                throw new InvalidOperationException($"Gateway:Picking:Policy '{options.Policy}' is unknown; use one of: {string.Join(", ", Names)}.");
        }
    }
}
