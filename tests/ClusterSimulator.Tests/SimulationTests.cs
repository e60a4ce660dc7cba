using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Workload;

namespace HybridServing.ClusterSimulator.Tests;

public sealed class SimulationTests
{
    private static readonly SimulationOptions Small = new() { Adapters = 60, Engines = 3, Duration = 12, Warmup = 3, Seed = 5 };

    [Theory]
    [InlineData(PolicyNames.B0)]
    [InlineData(PolicyNames.B1)]
    [InlineData(PolicyNames.B2)]
    [InlineData(PolicyNames.HybridServing)]
    [InlineData(PolicyNames.BInfinity)]
    [InlineData(PolicyNames.HybridServingNoOverflow)]
    public void Runs_are_deterministic_per_seed(string policy)
    {
        var catalog = new AdapterCatalog(Small);
        var trace = WorkloadGenerator.Generate(Small, catalog, ScenarioNames.Steady, 12);
        var a = ClusterRun.Execute(Small, catalog, trace, policy, stopWhenSloLost: false);
        var b = ClusterRun.Execute(Small, new AdapterCatalog(Small), WorkloadGenerator.Generate(Small, catalog, ScenarioNames.Steady, 12), policy, stopWhenSloLost: false);
        Assert.Equal(a with { WallSeconds = 0 }, b with { WallSeconds = 0, Windows = a.Windows, LoadsPer1000 = a.LoadsPer1000 });
        Assert.Equal(a.LoadsPer1000, b.LoadsPer1000);
        Assert.Equal(a.Measured, a.Completed);
        Assert.True(a.TtftP99 > 0);
    }

    [Fact]
    public void A_different_seed_gives_a_different_run()
    {
        var other = Small with { Seed = 6 };
        var a = ClusterRun.Execute(Small, new AdapterCatalog(Small), WorkloadGenerator.Generate(Small, new AdapterCatalog(Small), ScenarioNames.Steady, 12), PolicyNames.B1, false);
        var b = ClusterRun.Execute(other, new AdapterCatalog(other), WorkloadGenerator.Generate(other, new AdapterCatalog(other), ScenarioNames.Steady, 12), PolicyNames.B1, false);
        Assert.NotEqual(a.TtftP99, b.TtftP99);
    }

    [Fact]
    public void The_physical_limit_is_never_worse_than_round_robin()
    {
        var catalog = new AdapterCatalog(Small);
        var trace = WorkloadGenerator.Generate(Small, catalog, ScenarioNames.Steady, 20);
        var b0 = ClusterRun.Execute(Small, catalog, trace, PolicyNames.B0, false);
        var inf = ClusterRun.Execute(Small, catalog, trace, PolicyNames.BInfinity, false);
        Assert.True(inf.TtftP99 <= b0.TtftP99);
        Assert.True(inf.TtftP50 <= b0.TtftP50);
    }

    [Fact]
    public void Losing_an_engine_retries_its_requests_elsewhere()
    {
        var o = Small with { Duration = 20, EventAt = 8 };
        var catalog = new AdapterCatalog(o);
        var trace = WorkloadGenerator.Generate(o, catalog, ScenarioNames.EngineLost, 10);
        foreach (var policy in SimulationOptions.AllPolicies)
        {
            var r = ClusterRun.Execute(o, catalog, trace, policy, false);
            Assert.Equal(r.Measured, r.Completed);
            Assert.NotEmpty(r.Windows);
        }
    }
}
