namespace HybridServing.MockEngine.Performance;

/// <summary>A cumulative Prometheus-style histogram (upper bounds, counts, sum).</summary>
public sealed class LatencyHistogram(IReadOnlyList<double> upperBounds)
{
    private readonly long[] _counts = new long[upperBounds.Count];

    public IReadOnlyList<double> UpperBounds { get; } = upperBounds;
    public long Count { get; private set; }
    public double Sum { get; private set; }

    public void Observe(double seconds)
    {
        Count++;
        Sum += seconds;
        for (var i = 0; i < _counts.Length; i++)
        {
            if (seconds <= UpperBounds[i]) { _counts[i]++; break; }
        }
    }

    /// <summary>Cumulative count of observations ≤ each bound (what <c>_bucket{le}</c> shows).</summary>
    public long[] CumulativeCounts()
    {
        var result = new long[_counts.Length];
        long running = 0;
        for (var i = 0; i < _counts.Length; i++) result[i] = running += _counts[i];
        return result;
    }

    /// <summary>Approximate quantile from the buckets (upper bound of the bucket holding it).</summary>
    public double Quantile(double q)
    {
        if (Count == 0) return 0;
        var target = (long)Math.Ceiling(q * Count);
        var cumulative = CumulativeCounts();
        for (var i = 0; i < cumulative.Length; i++) if (cumulative[i] >= target) return UpperBounds[i];
        return double.PositiveInfinity;
    }
}

/// <summary>What the engine has done so far, in vLLM's terms (buckets are vLLM V1's).</summary>
public sealed class EngineStatistics
{
    /// <summary>vLLM's <c>vllm:time_to_first_token_seconds</c> buckets.</summary>
    public static readonly IReadOnlyList<double> TtftBuckets =
        [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];

    /// <summary>vLLM's <c>vllm:inter_token_latency_seconds</c> buckets.</summary>
    public static readonly IReadOnlyList<double> InterTokenBuckets =
        [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];

    /// <summary>vLLM's request-latency buckets (e2e, queue).</summary>
    public static readonly IReadOnlyList<double> RequestLatencyBuckets =
        [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];

    /// <summary>vLLM's 1-2-5 buckets up to max_model_len, for per-request token counts.</summary>
    public static IReadOnlyList<double> TokenCountBuckets(int maxModelLen)
    {
        var buckets = new List<double>();
        for (var exponent = 1.0; ; exponent *= 10)
        {
            foreach (var mantissa in new[] { 1, 2, 5 })
            {
                var value = mantissa * exponent;
                if (value > maxModelLen) return buckets;
                buckets.Add(value);
            }
        }
    }

    public EngineStatistics(int maxModelLen = 131072)
    {
        PromptTokensPerRequest = new(TokenCountBuckets(maxModelLen));
        GenerationTokensPerRequest = new(TokenCountBuckets(maxModelLen));
    }

    public LatencyHistogram TimeToFirstToken { get; } = new(TtftBuckets);
    public LatencyHistogram InterTokenLatency { get; } = new(InterTokenBuckets);
    public LatencyHistogram EndToEndLatency { get; } = new(RequestLatencyBuckets);
    public LatencyHistogram QueueTime { get; } = new(RequestLatencyBuckets);
    public LatencyHistogram PrefillTime { get; } = new(RequestLatencyBuckets);
    public LatencyHistogram DecodeTime { get; } = new(RequestLatencyBuckets);
    public LatencyHistogram InferenceTime { get; } = new(RequestLatencyBuckets);
    public LatencyHistogram PromptTokensPerRequest { get; }
    public LatencyHistogram GenerationTokensPerRequest { get; }

    public long PromptTokens { get; internal set; }
    public long GenerationTokens { get; internal set; }
    public long Preemptions { get; internal set; }
    public long Steps { get; internal set; }
    public Dictionary<string, long> SuccessByReason { get; } = new(StringComparer.Ordinal);
    public Dictionary<LoadTier, long> AdapterLoadsByTier { get; } = new();
    public Dictionary<LoadTier, double> AdapterLoadSecondsByTier { get; } = new();

    internal void RecordLoad(AdapterLoadRecord load)
    {
        AdapterLoadsByTier[load.Tier] = AdapterLoadsByTier.GetValueOrDefault(load.Tier) + 1;
        AdapterLoadSecondsByTier[load.Tier] = AdapterLoadSecondsByTier.GetValueOrDefault(load.Tier) + load.Seconds;
    }
}
