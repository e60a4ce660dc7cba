using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Placement;
using static HybridServing.ControlPlane.Tests.Placement.PlacementSolverTests;

namespace HybridServing.ControlPlane.Tests.Placement;

/// <summary>Overflow grants over a solved plan: they only ever add, within every limit placement respects.</summary>
public sealed class OverflowGrantsTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);

    private static OverflowGrant Grant(string adapter, string engine, double seconds = 60) => new(adapter, engine, Now.AddSeconds(seconds));

    /// <summary>Two one-slot engines, each full: "hot" (max 2) on e1, "other" on e2.</summary>
    private static (ClusterSnapshot Cluster, AdapterDemand[] Demands, Plan Plan) FullCluster(int slots = 1, long budget = 0, string e2Model = "base", int e2Rank = 16,
        AdapterDemand? hot = null)
    {
        AdapterDemand[] demands = [hot ?? Demand("hot", max: 2), Demand("other")];
        var cluster = new ClusterSnapshot([Engine("e1", slots: slots, memory: budget), Engine("e2", slots: slots, memory: budget, model: e2Model, rank: e2Rank)]);
        var plan = PlacementSolver.Solve(cluster, demands, PlacementOptions.Default);
        return (cluster, demands, plan);
    }

    [Fact]
    public void A_grant_adds_the_adapter_to_a_full_engine_within_its_overflow_allowance_and_evicts_nothing()
    {
        var (cluster, demands, plan) = FullCluster();
        Assert.Equal(["e1"], plan.EnginesFor("hot"));
        Assert.Equal(["other"], plan.AdaptersOn("e2"));

        var applied = OverflowGrants.Apply(plan, cluster, demands, [Grant("hot", "e2")], Now, extraSlotsPerEngine: 1);

        Assert.Equal(["e1", "e2"], applied.EnginesFor("hot"));
        Assert.Equal(["hot", "other"], applied.AdaptersOn("e2"));
        Assert.Equal(["e2"], applied.EnginesFor("other"));
        Assert.Equal(plan.AdaptersOn("e1"), applied.AdaptersOn("e1"));
        Assert.Same(plan.Shortfalls, applied.Shortfalls);
    }

    [Fact]
    public void Without_an_allowance_only_free_host_slots_take_grants()
    {
        var (cluster, demands, plan) = FullCluster();
        Assert.Same(plan, OverflowGrants.Apply(plan, cluster, demands, [Grant("hot", "e2")], Now, extraSlotsPerEngine: 0));
        var refusal = OverflowGrants.Check(plan, cluster.Engines[1], demands[0], demands.ToDictionary(d => d.Name), 0);
        Assert.Equal(OverflowReasons.EngineFull, refusal!.Reason);
        Assert.Contains("nothing is evicted", refusal.Message);

        // A free host slot is enough on its own (here the solver's plan left one, e.g. for a rate that fell).
        var roomy = new ClusterSnapshot([Engine("e1", slots: 1), Engine("e2", slots: 2)]);
        var free = new Plan(
            new Dictionary<string, IReadOnlyList<string>> { ["e1"] = ["hot"], ["e2"] = ["other"] },
            new Dictionary<string, IReadOnlyList<string>> { ["hot"] = ["e1"], ["other"] = ["e2"] }, new Dictionary<string, Shortfall>(), []);
        Assert.Equal(["e1", "e2"], OverflowGrants.Apply(free, roomy, demands, [Grant("hot", "e2")], Now, 0).EnginesFor("hot"));
    }

    [Fact]
    public void The_allowance_is_per_engine_and_the_oldest_grant_gets_it()
    {
        AdapterDemand[] demands = [Demand("a"), Demand("b", max: 2), Demand("c", max: 2)];
        var cluster = new ClusterSnapshot([Engine("e1", slots: 1), Engine("e2", slots: 2)]);
        var plan = new Plan(
            new Dictionary<string, IReadOnlyList<string>> { ["e1"] = ["a"], ["e2"] = ["b", "c"] },
            new Dictionary<string, IReadOnlyList<string>> { ["a"] = ["e1"], ["b"] = ["e2"], ["c"] = ["e2"] }, new Dictionary<string, Shortfall>(), []);

        var applied = OverflowGrants.Apply(plan, cluster, demands, [Grant("c", "e1", seconds: 50), Grant("b", "e1", seconds: 30)], Now, extraSlotsPerEngine: 1);

        Assert.Equal(["a", "b"], applied.AdaptersOn("e1"));
        Assert.Equal(["e2"], applied.EnginesFor("c"));
    }

    [Fact]
    public void Replicas_max_is_respected()
    {
        var (cluster, demands, plan) = FullCluster(hot: Demand("hot", max: 1));
        Assert.Same(plan, OverflowGrants.Apply(plan, cluster, demands, [Grant("hot", "e2")], Now, 1));
        Assert.Equal(OverflowReasons.MaxReplicas, OverflowGrants.Check(plan, cluster.Engines[1], demands[0], demands.ToDictionary(d => d.Name), 1)!.Reason);
    }

    [Fact]
    public void The_adapter_memory_budget_is_respected()
    {
        // Budget 10 bytes per engine: "other" (1 byte) is there, "hot" needs 10.
        var hot = Demand("hot", max: 2, memory: 10);
        var (cluster, demands, plan) = FullCluster(budget: 10, hot: hot);
        Assert.Same(plan, OverflowGrants.Apply(plan, cluster, demands, [Grant("hot", "e2")], Now, 1));
        var refusal = OverflowGrants.Check(plan, cluster.Engines[1], hot, demands.ToDictionary(d => d.Name), 1)!;
        Assert.Equal(OverflowReasons.EngineFull, refusal.Reason);
        Assert.Contains("9 of 10", refusal.Message);
    }

    [Theory]
    [InlineData("base model", LoraAdapterReasons.NoCompatibleEngine)]
    [InlineData("rank", LoraAdapterReasons.AdapterIncompatible)]
    [InlineData("backoff", LoraAdapterReasons.LoadFailed)]
    [InlineData("selector", LoraAdapterReasons.NoCompatibleEngine)]
    public void Engines_placement_would_not_use_are_refused(string limit, string reason)
    {
        var hot = limit switch
        {
            "rank" => Demand("hot", max: 2, rank: 32),
            "backoff" => Demand("hot", max: 2, excluded: new HashSet<string> { "e2" }),
            "selector" => Demand("hot", max: 2, selector: new EngineSelector(new Dictionary<string, string> { ["gpu"] = "h100" }, [])),
            _ => Demand("hot", max: 2),
        };
        // e1 always fits "hot"; e2 breaks one limit.
        var cluster = new ClusterSnapshot([
            Engine("e1", slots: 1, rank: 64, labels: new Dictionary<string, string> { ["gpu"] = "h100" }),
            Engine("e2", slots: 1, model: limit == "base model" ? "other" : "base", rank: 16),
        ]);
        var plan = new Plan(
            new Dictionary<string, IReadOnlyList<string>> { ["e1"] = ["hot"], ["e2"] = ["other"] },
            new Dictionary<string, IReadOnlyList<string>> { ["hot"] = ["e1"], ["other"] = ["e2"] }, new Dictionary<string, Shortfall>(), []);
        AdapterDemand[] demands = [hot, Demand("other", model: limit == "base model" ? "other" : "base")];

        Assert.Same(plan, OverflowGrants.Apply(plan, cluster, demands, [Grant("hot", "e2")], Now, 1));
        Assert.Equal(reason, OverflowGrants.Check(plan, cluster.Engines[1], hot, demands.ToDictionary(d => d.Name), 1)!.Reason);
    }

    [Fact]
    public void Expired_grants_unknown_engines_and_undemanded_adapters_change_nothing()
    {
        var (cluster, demands, plan) = FullCluster();
        Assert.Same(plan, OverflowGrants.Apply(plan, cluster, demands, [Grant("hot", "e2", seconds: 0)], Now, 1));
        Assert.Same(plan, OverflowGrants.Apply(plan, cluster, demands, [Grant("hot", "e9")], Now, 1));
        Assert.Same(plan, OverflowGrants.Apply(plan, cluster, demands, [Grant("gone", "e2")], Now, 1));
        Assert.Same(plan, OverflowGrants.Apply(plan, cluster, demands, [Grant("hot", "e1")], Now, 1)); // already there
        // The same grant still valid a second before it expires.
        Assert.Equal(["e1", "e2"], OverflowGrants.Apply(plan, cluster, demands, [Grant("hot", "e2", seconds: 1)], Now, 1).EnginesFor("hot"));
    }

    [Fact]
    public void A_grant_applied_over_the_next_solve_keeps_the_replica_where_it_is()
    {
        // The solver never sees grants: solving again from its own plan gives the same plan, and the grant
        // lands on it the same way, so an overflow replica does not move between passes.
        var (cluster, demands, plan) = FullCluster();
        var first = OverflowGrants.Apply(plan, cluster, demands, [Grant("hot", "e2")], Now, 1);
        var again = PlacementSolver.Solve(plan.Apply(cluster), demands, PlacementOptions.Default);
        var second = OverflowGrants.Apply(again, cluster, demands, [Grant("hot", "e2")], Now.AddSeconds(30), 1);
        Assert.Equal(first.EngineAdapters.OrderBy(e => e.Key).Select(e => (e.Key, string.Join(",", e.Value))),
            second.EngineAdapters.OrderBy(e => e.Key).Select(e => (e.Key, string.Join(",", e.Value))));
    }
}
