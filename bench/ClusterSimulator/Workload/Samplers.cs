namespace HybridServing.ClusterSimulator.Workload;

/// <summary>Zipf over ranks 0..n-1: P(rank k) ∝ 1 / (k+1)^exponent. Inverse-CDF sampling, one uniform per draw.</summary>
internal sealed class ZipfDistribution
{
    private readonly double[] _cdf;

    public ZipfDistribution(int n, double exponent)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(exponent);
        Probabilities = new double[n];
        double total = 0;
        for (var k = 0; k < n; k++) total += Probabilities[k] = 1 / Math.Pow(k + 1, exponent);
        _cdf = new double[n];
        double running = 0;
        for (var k = 0; k < n; k++)
        {
            Probabilities[k] /= total;
            _cdf[k] = running += Probabilities[k];
        }
        _cdf[^1] = 1;
    }

    public double[] Probabilities { get; }

    public int Sample(double uniform)
    {
        var i = Array.BinarySearch(_cdf, uniform);
        if (i < 0) i = ~i;
        return Math.Min(i, _cdf.Length - 1);
    }
}

/// <summary>Continuous distributions drawn from a seeded <see cref="Random"/>.</summary>
internal static class Sampling
{
    public static double StandardNormal(Random random)
    {
        // Box–Muller: always two uniforms, so a stream stays aligned across requests.
        var u1 = 1 - random.NextDouble();
        var u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>Gamma(shape, scale) by Marsaglia–Tsang; shape below 1 uses the boost Gamma(shape+1)·U^(1/shape).</summary>
    public static double Gamma(Random random, double shape, double scale)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shape);
        if (shape < 1)
        {
            var boost = Math.Pow(1 - random.NextDouble(), 1 / shape);
            return Gamma(random, shape + 1, scale) * boost;
        }
        var d = shape - 1.0 / 3;
        var c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double x, v;
            do
            {
                x = StandardNormal(random);
                v = 1 + c * x;
            } while (v <= 0);
            v = v * v * v;
            var u = 1 - random.NextDouble();
            if (Math.Log(u) < 0.5 * x * x + d - d * v + d * Math.Log(v)) return d * v * scale;
        }
    }

    /// <summary>Log-normal with the given mean and log-space spread σ.</summary>
    public static double LogNormal(Random random, double mean, double sigma) =>
        Math.Exp(Math.Log(mean) - sigma * sigma / 2 + sigma * StandardNormal(random));
}
