using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Placement;
using static HybridServing.ControlPlane.Tests.Placement.PlacementSolverTests;

namespace HybridServing.ControlPlane.Tests.Placement;

/// <summary>Observed request rates raise an adapter's minimum (never past its maximum); shortfalls stay about the declared minimum.</summary>
public sealed class DemandPlacementTests
{
    private static readonly PlacementOptions Options = new(RatePerReplica: 5);

    public static TheoryData<double, int, int, int> Targets => new()
    {
        // rate, declared min, max, effective minimum
        { 0, 1, 4, 1 },      // unknown rate: the declared minimum
        { 0.1, 1, 4, 1 },    // cold: its minimum
        { 0.1, 0, 4, 1 },    // any known traffic asks for one replica
        { 5, 1, 4, 1 },
        { 5.01, 1, 4, 2 },
        { 14, 1, 4, 3 },
        { 1000, 1, 4, 4 },   // hot: capped at max
        { 1000, 2, 2, 2 },
        { 3, 3, 5, 3 },      // the declared minimum is a floor
        { 1e300, 1, int.MaxValue, int.MaxValue },
    };

    [Theory]
    [MemberData(nameof(Targets))]
    public void Effective_minimum_is_the_rate_in_replicas_clamped_to_min_and_max(double rate, int min, int max, int expected) =>
        Assert.Equal(expected, Options.EffectiveMinimum(Demand("a", min: min, max: max) with { RequestRate = rate }));

    [Fact]
    public void A_hot_adapter_takes_a_cold_adapters_extra_replica_and_the_cold_one_keeps_its_minimum()
    {
        // Two one-slot engines; without rates "cold" (name order first) fills the free slot up to its max.
        AdapterDemand hot = Demand("hot", min: 1, max: 2), cold = Demand("cold", min: 0, max: 2);
        EngineSnapshot[] engines = [Engine("e1", slots: 1), Engine("e2", slots: 1)];
        var before = PlacementSolver.Solve(new ClusterSnapshot(engines), [cold, hot], Options);
        Assert.Single(before.EnginesFor("hot"));
        Assert.Single(before.EnginesFor("cold"));

        var after = PlacementSolver.Solve(before.Apply(new ClusterSnapshot(engines)), [cold with { RequestRate = 0 }, hot with { RequestRate = 9 }], Options);
        Assert.Equal(["e1", "e2"], after.EnginesFor("hot"));
        Assert.Empty(after.EnginesFor("cold"));
        Assert.Empty(after.Shortfalls);
        Assert.Empty(after.Preemptions);
    }

    [Fact]
    public void A_hot_adapter_gets_more_replicas_up_to_max_and_a_cold_one_stays_at_min()
    {
        // Three engines, five slots, four demands of equal priority: rates decide who gets the spare slot.
        EngineSnapshot[] engines = [Engine("e1", slots: 2), Engine("e2", slots: 2), Engine("e3", slots: 1)];
        AdapterDemand[] Demands(double coldRate, double hotRate) =>
            [Demand("a-cold", min: 1, max: 3) with { RequestRate = coldRate }, Demand("b-cold", min: 1, max: 3) with { RequestRate = coldRate },
             Demand("c", min: 1, max: 1), Demand("z-hot", min: 1, max: 2) with { RequestRate = hotRate }];

        var unknown = PlacementSolver.Solve(new ClusterSnapshot(engines), Demands(0, 0), Options);
        Assert.Equal(2, unknown.EnginesFor("a-cold").Count); // name order wins the spare slot
        Assert.Single(unknown.EnginesFor("z-hot"));

        var observed = PlacementSolver.Solve(new ClusterSnapshot(engines), Demands(0.5, 50), Options);
        Assert.Equal(["e2", "e3"], observed.EnginesFor("z-hot")); // wanted 10, capped at its max of 2, spread
        Assert.Single(observed.EnginesFor("a-cold"));
        Assert.Single(observed.EnginesFor("b-cold"));
        Assert.Single(observed.EnginesFor("c"));
        Assert.Empty(observed.Shortfalls);
    }

    [Fact]
    public void A_hot_adapter_short_of_its_rate_is_no_shortfall_but_short_of_its_declared_minimum_is()
    {
        EngineSnapshot[] engines = [Engine("e1", slots: 1)];
        var hot = PlacementSolver.Solve(new ClusterSnapshot(engines), [Demand("hot", min: 1, max: 3) with { RequestRate = 100 }], Options);
        Assert.Equal(["e1"], hot.EnginesFor("hot"));
        Assert.Empty(hot.Shortfalls);

        var short_ = PlacementSolver.Solve(new ClusterSnapshot(engines), [Demand("hot", min: 2, max: 3) with { RequestRate = 100 }], Options);
        Assert.Equal(LoraAdapterReasons.InsufficientCapacity, short_.Shortfalls["hot"].Reason);
        Assert.Contains("placed on 1 of at least 2 engine(s)", short_.Shortfalls["hot"].Message);
    }

    [Fact]
    public void Rate_above_the_declared_minimum_never_preempts_lower_priority_adapters()
    {
        EngineSnapshot[] engines = [Engine("e1", slots: 1), Engine("e2", slots: 1)];
        var plan = PlacementSolver.Solve(new ClusterSnapshot(engines),
            [Demand("hot", min: 1, max: 2, priority: 10) with { RequestRate = 100 }, Demand("low", min: 1, max: 1, priority: 0)], Options);
        Assert.Single(plan.EnginesFor("hot"));
        Assert.Single(plan.EnginesFor("low"));
        Assert.Empty(plan.Preemptions);
        Assert.Empty(plan.Shortfalls);
    }

    [Fact]
    public void Solving_a_solved_plan_with_rates_changes_nothing()
    {
        EngineSnapshot[] engines = [Engine("e1", slots: 2), Engine("e2", slots: 2)];
        AdapterDemand[] demands = [Demand("a", min: 1, max: 2) with { RequestRate = 20 }, Demand("b", min: 1, max: 2), Demand("c", min: 0, max: 2) with { RequestRate = 1 }];
        var first = PlacementSolver.Solve(new ClusterSnapshot(engines), demands, Options);
        var again = PlacementSolver.Solve(first.Apply(new ClusterSnapshot(engines)), demands, Options);
        foreach (var d in demands) Assert.Equal(first.EnginesFor(d.Name), again.EnginesFor(d.Name));
        Assert.Equal(2, first.EnginesFor("a").Count);
    }
}
