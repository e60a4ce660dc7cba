namespace HybridServing.MockEngine.Onnx;

/// <summary>vLLM's sampling parameters that the ONNX backend honours.</summary>
internal sealed record SamplingParameters
{
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    /// <summary>0 or -1: no top-k filter.</summary>
    public int TopK { get; init; } = -1;
    public long? Seed { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public bool IgnoreEos { get; init; }
    public int MinTokens { get; init; }

    /// <summary>vLLM treats a temperature below this as greedy.</summary>
    public const double GreedyBelow = 1e-5;
}

/// <summary>Picks the next id from logits as vLLM's sampler does: greedy at temperature 0, else temperature, top-k, top-p.</summary>
internal static class Sampler
{
    public static int Next(ReadOnlySpan<float> logits, SamplingParameters p, Random random)
    {
        if (p.Temperature < SamplingParameters.GreedyBelow)
        {
            var best = 0;
            for (var i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i; // ties: the lowest id
            return best;
        }
        var order = new int[logits.Length];
        for (var i = 0; i < order.Length; i++) order[i] = i;
        var scaled = new double[logits.Length];
        for (var i = 0; i < scaled.Length; i++) scaled[i] = logits[i] / p.Temperature;
        // Highest first; equal logits keep id order, so a seed always picks the same token.
        Array.Sort(order, (a, b) => scaled[b] != scaled[a] ? scaled[b].CompareTo(scaled[a]) : a.CompareTo(b));
        var keep = p.TopK > 0 ? Math.Min(p.TopK, order.Length) : order.Length;
        var max = scaled[order[0]];
        var probabilities = new double[keep];
        double total = 0;
        for (var i = 0; i < keep; i++) total += probabilities[i] = Math.Exp(scaled[order[i]] - max);
        if (p.TopP < 1.0)
        {
            // The smallest prefix whose mass reaches top_p (always at least the top token).
            double cumulative = 0;
            var cut = 0;
            while (cut < keep)
            {
                cumulative += probabilities[cut++] / total;
                if (cumulative >= p.TopP) break;
            }
            keep = cut;
            total = 0;
            for (var i = 0; i < keep; i++) total += probabilities[i];
        }
        var draw = random.NextDouble() * total;
        for (var i = 0; i < keep; i++)
        {
            draw -= probabilities[i];
            if (draw < 0) return order[i];
        }
        return order[keep - 1];
    }
}
