using HybridServing.ClusterSimulator.Experiments;

namespace HybridServing.ClusterSimulator.Tests;

public sealed class KneeSearchTests
{
    [Theory]
    [InlineData(37.3, 32)]
    [InlineData(37.3, 200)]
    [InlineData(1.7, 32)]
    [InlineData(500, 5)]
    public void Finds_the_threshold_within_the_tolerance(double threshold, double start)
    {
        var result = KneeSearch.Find(r => r <= threshold, start, minRate: 0.5, maxRate: 10_000, tolerance: 0.05);
        Assert.True(result.Knee <= threshold);
        Assert.True(result.Knee >= threshold / 1.05);
        Assert.True(result.FirstFailing > threshold);
        Assert.True(result.Probes.Count < 20);
        Assert.All(result.Probes, p => Assert.Equal(p.Rate <= threshold, p.Meets));
    }

    [Fact]
    public void Reports_zero_when_even_the_minimum_rate_fails()
    {
        var result = KneeSearch.Find(_ => false, 32, minRate: 1, maxRate: 1000, tolerance: 0.05);
        Assert.Equal(0, result.Knee);
        Assert.Equal(1, result.Probes[^1].Rate);
    }

    [Fact]
    public void Reports_an_unbounded_knee_when_the_maximum_rate_passes()
    {
        var result = KneeSearch.Find(_ => true, 32, minRate: 1, maxRate: 1000, tolerance: 0.05);
        Assert.Equal(1000, result.Knee);
        Assert.False(result.Bounded);
    }
}
