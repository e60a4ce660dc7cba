using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Policies;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.Contracts.Resources;

namespace HybridServing.ClusterSimulator.Tests;

/// <summary>
/// The HybridServing policy's demand path is the product's: the Gateway's DemandCounter, the
/// ControlPlane's DemandTracker on the virtual clock, the PlacementSolver with observed rates.
/// </summary>
public sealed class DemandPathTests
{
    // 4 engines × 4 host slots for 12 adapters: everyone gets its declared one engine, and the 4 spare
    // slots go to the first names (lora-0000 up to every engine), so an extra replica for a hot adapter
    // has to be reclaimed from them.
    private static readonly SimulationOptions Tight = new() { Adapters = 12, Engines = 4, MaxLoras = 2, MaxCpuLoras = 4, RatePerReplica = 1, Seed = 3 };
    private const int Hot = 11;

    [Theory]
    [InlineData("all", 3)]
    [InlineData("1:2", 2)]
    [InlineData("none", 1)]
    public void A_reported_rate_gives_the_adapter_its_replicas_within_the_declared_bounds(string replicas, int expected)
    {
        var o = Tight with { Replicas = CommandLine.Parse(["--replicas", replicas])!.Replicas };
        var (cluster, policy) = HybridCluster.Start(o);
        Assert.Equal(1, Holders(cluster, Hot));

        // 30 requests before the first report: 30 in a 10 s window = 3 req/s, 3 replicas at 1 req/s per replica.
        Send(cluster, policy, Hot, 30, from: 0);
        cluster.AdvanceTo(o.ReportInterval);
        policy.ReportDemand(cluster);
        Assert.Equal(expected, Holders(cluster, Hot));
    }

    [Fact]
    public void Only_a_report_that_changes_some_replica_count_replans()
    {
        var o = Tight with { RatePerReplica = 10 };
        var (cluster, policy) = HybridCluster.Start(o);
        var initial = policy.Replans;
        // Steady 6 req/s: the first report makes the adapter known (a change); 3 and then 6 req/s both ask for one replica.
        for (var i = 1; i <= 3; i++)
        {
            Send(cluster, policy, Hot, 30, from: (i - 1) * o.ReportInterval);
            cluster.AdvanceTo(i * o.ReportInterval);
            policy.ReportDemand(cluster);
            Assert.Equal(initial + 1, policy.Replans);
        }
        // A resync plans again and, with nothing changed, moves nothing.
        policy.Replan(cluster);
        Assert.Equal(initial + 2, policy.Replans);
        Assert.Equal(1, Holders(cluster, Hot));
    }

    [Fact]
    public void A_flash_crowd_reaches_a_second_engine_through_the_demand_reports_alone()
    {
        // 3 engines × 21 host slots for 60 adapters: three spare slots, so the flash adapter starts on one engine.
        var o = new SimulationOptions { Adapters = 60, Engines = 3, MaxCpuLoras = 21, Duration = 20, Warmup = 3, EventAt = 8, RatePerReplica = 0.5, Seed = 5 };
        var catalog = new AdapterCatalog(o);
        var trace = WorkloadGenerator.Generate(o, catalog, ScenarioNames.FlashCrowd, 10);
        var reported = ClusterRun.Execute(o, catalog, trace, PolicyNames.HybridServing, stopWhenSloLost: false);
        var silent = ClusterRun.Execute(o with { ReportInterval = 0 }, catalog, trace, PolicyNames.HybridServing, stopWhenSloLost: false);

        Assert.Null(silent.FlashOnTwoEnginesSeconds);
        Assert.NotNull(reported.FlashOnTwoEnginesSeconds);
        // Virtual seconds: the first report after the event carries it (2 req/s in a 10 s window asks for 2 replicas).
        Assert.InRange(reported.FlashOnTwoEnginesSeconds!.Value, 0.001, 2 * o.ReportInterval);
    }

    /// <summary>The gateway accepts <paramref name="count"/> requests for the adapter, 0.1 s apart.</summary>
    private static void Send(SimulatedCluster cluster, HybridServingPolicy policy, int adapter, int count, double from)
    {
        for (var i = 0; i < count; i++)
        {
            cluster.AdvanceTo(from + i * 0.1);
            policy.Observe(new SimRequest(i, cluster.Now, adapter, 100, 10, measured: false), cluster);
        }
    }

    private static int Holders(SimulatedCluster cluster, int adapter) => cluster.Alive.Count(e => e.Registered.Contains(adapter));
}
