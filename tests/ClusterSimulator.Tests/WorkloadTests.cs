using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Workload;

namespace HybridServing.ClusterSimulator.Tests;

public sealed class WorkloadTests
{
    [Theory]
    [InlineData(1000, 1.0)]
    [InlineData(100, 0.8)]
    [InlineData(50, 1.2)]
    public void Zipf_sampling_matches_its_probabilities(int n, double exponent)
    {
        var zipf = new ZipfDistribution(n, exponent);
        Assert.Equal(1.0, zipf.Probabilities.Sum(), 9);
        Assert.Equal(Math.Pow(2, exponent), zipf.Probabilities[0] / zipf.Probabilities[1], 9);
        var random = new Random(7);
        var counts = new int[n];
        const int draws = 200_000;
        for (var i = 0; i < draws; i++) counts[zipf.Sample(random.NextDouble())]++;
        for (var k = 0; k < 3; k++)
        {
            var expected = zipf.Probabilities[k] * draws;
            Assert.InRange(counts[k], expected - 5 * Math.Sqrt(expected), expected + 5 * Math.Sqrt(expected));
        }
    }

    [Fact]
    public void Zipf_exponent_zero_is_uniform()
    {
        var zipf = new ZipfDistribution(10, 0);
        Assert.All(zipf.Probabilities, p => Assert.Equal(0.1, p, 12));
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(4.0)]
    [InlineData(0.5)]
    public void Gamma_gaps_have_unit_mean_and_the_requested_cv(double cv)
    {
        var shape = 1 / (cv * cv);
        var random = new Random(11);
        const int n = 400_000;
        double sum = 0, sumSq = 0;
        for (var i = 0; i < n; i++)
        {
            var x = Sampling.Gamma(random, shape, 1 / shape);
            Assert.True(x >= 0);
            sum += x;
            sumSq += x * x;
        }
        var mean = sum / n;
        var sd = Math.Sqrt(sumSq / n - mean * mean);
        Assert.InRange(mean, 0.95, 1.05);
        Assert.InRange(sd / mean, cv * 0.9, cv * 1.1);
    }

    [Fact]
    public void Traces_are_deterministic_and_share_requests_across_rates()
    {
        var o = new SimulationOptions { Adapters = 100, Duration = 20, Warmup = 5, Seed = 3 };
        var catalog = new AdapterCatalog(o);
        var a = WorkloadGenerator.Generate(o, catalog, ScenarioNames.Steady, 10);
        var b = WorkloadGenerator.Generate(o, new AdapterCatalog(o), ScenarioNames.Steady, 10);
        Assert.Equal(a.Arrivals, b.Arrivals);
        var faster = WorkloadGenerator.Generate(o, catalog, ScenarioNames.Steady, 20);
        Assert.True(faster.Arrivals.Count > a.Arrivals.Count * 1.5);
        // Request i has the same adapter and lengths at both rates, arriving twice as early.
        for (var i = 0; i < a.Arrivals.Count; i++)
        {
            Assert.Equal(a.Arrivals[i].Adapter, faster.Arrivals[i].Adapter);
            Assert.Equal(a.Arrivals[i].PromptTokens, faster.Arrivals[i].PromptTokens);
            Assert.Equal(a.Arrivals[i].Time / 2, faster.Arrivals[i].Time, 9);
        }
        var other = WorkloadGenerator.Generate(o with { Seed = 4 }, catalog, ScenarioNames.Steady, 10);
        Assert.NotEqual(a.Arrivals.Select(x => x.Adapter), other.Arrivals.Select(x => x.Adapter));
    }

    [Fact]
    public void Lengths_have_roughly_the_requested_means()
    {
        var o = new SimulationOptions { Adapters = 10, Duration = 2000, Warmup = 1 };
        var trace = WorkloadGenerator.Generate(o, new AdapterCatalog(o), ScenarioNames.Steady, 20);
        Assert.InRange(trace.Arrivals.Average(a => a.PromptTokens), 900, 1100);
        Assert.InRange(trace.Arrivals.Average(a => a.OutputTokens), 225, 275);
    }

    [Fact]
    public void Flash_crowd_sends_a_fifth_of_traffic_to_one_cold_adapter_after_the_event()
    {
        var o = new SimulationOptions { Adapters = 200, Duration = 200, Warmup = 10, EventAt = 100 };
        var catalog = new AdapterCatalog(o);
        var trace = WorkloadGenerator.Generate(o, catalog, ScenarioNames.FlashCrowd, 50);
        var flash = trace.FlashAdapter!.Value;
        Assert.True(catalog.Adapters[flash].PopularityRank >= 100);
        var before = trace.Arrivals.Where(a => a.Time < 100).ToList();
        var after = trace.Arrivals.Where(a => a.Time >= 100).ToList();
        Assert.InRange(after.Count(a => a.Adapter == flash) / (double)after.Count, 0.18, 0.23);
        Assert.True(before.Count(a => a.Adapter == flash) < before.Count * 0.01);
    }

    [Fact]
    public void Rank_mix_and_sizes_follow_the_options()
    {
        var o = new SimulationOptions { Adapters = 4000 };
        var catalog = new AdapterCatalog(o);
        Assert.InRange(catalog.Adapters.Count(a => a.Rank == 8) / 4000.0, 0.37, 0.43);
        Assert.InRange(catalog.Adapters.Count(a => a.Rank == 64) / 4000.0, 0.085, 0.115);
        Assert.All(catalog.Adapters, a => Assert.Equal((long)Math.Round(a.Rank * 5.2e6), a.SizeBytes));
        Assert.Equal(Enumerable.Range(0, 4000), catalog.ByPopularity.Order());
    }
}
