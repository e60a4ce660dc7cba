using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Placement;

namespace HybridServing.ControlPlane.Tests.Placement;

public sealed class PlacementSolverTests
{
    internal static EngineSnapshot Engine(string name, string node = "", string model = "base", int slots = 4, int rank = 16, long memory = 0,
        IReadOnlyDictionary<string, string>? labels = null, params string[] current) =>
        new(name, node.Length == 0 ? name : node, [model], labels ?? new Dictionary<string, string>(), slots, slots, rank, memory, current);

    internal static AdapterDemand Demand(string name, string model = "base", int rank = 8, int min = 1, int max = 1, int priority = 0,
        bool preempt = true, long memory = 1, EngineSelector? selector = null, IReadOnlySet<string>? excluded = null) =>
        new(name, model, rank, memory, selector ?? EngineSelector.Everything, min, max, priority, preempt, excluded);

    private static Plan Solve(IReadOnlyList<EngineSnapshot> engines, params AdapterDemand[] demands) =>
        PlacementSolver.Solve(new ClusterSnapshot(engines), demands, PlacementOptions.Default);

    [Fact]
    public void Places_only_on_engines_serving_the_base_model()
    {
        var plan = Solve([Engine("e1", model: "other"), Engine("e2")], Demand("a"));
        Assert.Equal(["e2"], plan.EnginesFor("a"));
    }

    [Fact]
    public void No_engine_for_the_base_model_is_NoCompatibleEngine()
    {
        var plan = Solve([Engine("e1", model: "other")], Demand("a"));
        Assert.Empty(plan.EnginesFor("a"));
        Assert.Equal(LoraAdapterReasons.NoCompatibleEngine, plan.Shortfalls["a"].Reason);
        Assert.Contains("'base'", plan.Shortfalls["a"].Message);
    }

    [Fact]
    public void Selector_that_matches_nothing_is_NoCompatibleEngine_naming_the_selector()
    {
        var selector = new EngineSelector(new Dictionary<string, string> { ["gpu"] = "h100" }, []);
        var plan = Solve([Engine("e1", labels: new Dictionary<string, string> { ["gpu"] = "a10" })], Demand("a", selector: selector));
        Assert.Equal(LoraAdapterReasons.NoCompatibleEngine, plan.Shortfalls["a"].Reason);
        Assert.Contains("selector", plan.Shortfalls["a"].Message);
    }

    [Fact]
    public void Selector_expressions_pick_engines()
    {
        var selector = new EngineSelector(new Dictionary<string, string>(), [new SelectorRequirement("gpu", "In", ["a10", "l4"]), new SelectorRequirement("spot", "DoesNotExist", [])]);
        var plan = Solve([
            Engine("e1", labels: new Dictionary<string, string> { ["gpu"] = "h100" }),
            Engine("e2", labels: new Dictionary<string, string> { ["gpu"] = "l4", ["spot"] = "true" }),
            Engine("e3", labels: new Dictionary<string, string> { ["gpu"] = "a10" }),
        ], Demand("a", selector: selector, min: 1, max: 3));
        Assert.Equal(["e3"], plan.EnginesFor("a"));
    }

    [Fact]
    public void Rank_above_every_engine_is_AdapterIncompatible()
    {
        var plan = Solve([Engine("e1", rank: 16), Engine("e2", rank: 32)], Demand("a", rank: 64));
        Assert.Equal(LoraAdapterReasons.AdapterIncompatible, plan.Shortfalls["a"].Reason);
        Assert.Contains("largest: 32", plan.Shortfalls["a"].Message);
    }

    [Fact]
    public void Rank_limits_which_engines_qualify()
    {
        var plan = Solve([Engine("e1", rank: 16), Engine("e2", rank: 64)], Demand("a", rank: 64));
        Assert.Equal(["e2"], plan.EnginesFor("a"));
    }

    [Fact]
    public void Memory_budget_is_honoured()
    {
        var plan = Solve([Engine("e1", memory: 100)], Demand("a", memory: 60), Demand("b", memory: 60));
        Assert.Single(plan.AdaptersOn("e1"));
        Assert.Equal(LoraAdapterReasons.InsufficientCapacity, plan.Shortfalls["b"].Reason);
    }

    [Fact]
    public void Storage_budget_is_honoured_and_an_adapter_larger_than_every_cache_is_AdapterIncompatible()
    {
        EngineSnapshot WithCache(string name, long cache) => Engine(name) with { StorageBudgetBytes = cache };
        AdapterDemand Sized(string name, long bytes, int max = 1) => Demand(name, max: max) with { StorageBytes = bytes };

        var plan = Solve([WithCache("e1", 100)], Sized("a", 60), Sized("b", 60));
        Assert.Single(plan.AdaptersOn("e1"));
        Assert.Equal(LoraAdapterReasons.InsufficientCapacity, plan.Shortfalls.Values.Single().Reason);

        var spread = Solve([WithCache("e1", 100), WithCache("e2", 100)], Sized("a", 60), Sized("b", 60));
        Assert.Single(spread.AdaptersOn("e1"));
        Assert.Single(spread.AdaptersOn("e2"));

        var tooLarge = Solve([WithCache("e1", 100), WithCache("e2", 50)], Sized("a", 101));
        Assert.Equal(LoraAdapterReasons.AdapterIncompatible, tooLarge.Shortfalls["a"].Reason);
        Assert.Contains("its files take 101 bytes; the largest adapter cache among compatible engines is 100 bytes", tooLarge.Shortfalls["a"].Message);

        // A lower-priority adapter is preempted only if that frees enough disk.
        var preempt = Solve([WithCache("e1", 100)], Sized("low", 50) with { Priority = 0 }, Sized("high", 60) with { Priority = 5 });
        Assert.Equal(["high"], preempt.AdaptersOn("e1"));
    }

    [Fact]
    public void Memory_budget_defaults_to_the_engines_slots_of_a_max_rank_adapter()
    {
        var sized = new HybridServing.ControlPlane.Sources.DiscoveredAdapter("a", "/a", 8, ["q_proj"], 8_000, "", null);
        var perRank = HybridServing.ControlPlane.Reconciliation.Reconciler.BytesPerRank([("base", sized), ("base", sized with { Rank = 4, SizeBytes = 2_000 }), ("other", sized with { SizeBytes = 80_000 })]);
        Assert.Equal(1_000, perRank["base"]);
        Assert.Equal(10_000, perRank["other"]);
        var info = new HybridServing.Contracts.Sidecar.EngineInfo { MaxLoras = 2, MaxCpuLoras = 6, MaxLoraRank = 16, BaseModels = { "base" } };
        // 6 host slots (max_cpu_loras) x rank 16 x 1000 bytes per rank.
        Assert.Equal(96_000, HybridServing.ControlPlane.Reconciliation.Reconciler.MemoryBudget(info, perRank));
        // A reported budget wins; no adapter of a served model known, or no rank limit, is unknown (0).
        Assert.Equal(5, HybridServing.ControlPlane.Reconciliation.Reconciler.MemoryBudget(new(info) { AdapterMemoryBudgetBytes = 5 }, perRank));
        Assert.Equal(0, HybridServing.ControlPlane.Reconciliation.Reconciler.MemoryBudget(new(info) { BaseModels = { } , MaxLoraRank = 0 }, perRank));
        var unknownModel = new HybridServing.Contracts.Sidecar.EngineInfo(info);
        unknownModel.BaseModels.Clear();
        unknownModel.BaseModels.Add("third");
        Assert.Equal(0, HybridServing.ControlPlane.Reconciliation.Reconciler.MemoryBudget(unknownModel, perRank));
    }

    [Fact]
    public void Full_engines_give_InsufficientCapacity()
    {
        var plan = Solve([Engine("e1", slots: 1)], Demand("a"), Demand("b"));
        Assert.Equal(["a"], plan.AdaptersOn("e1"));
        Assert.Equal(LoraAdapterReasons.InsufficientCapacity, plan.Shortfalls["b"].Reason);
    }

    [Fact]
    public void Replicas_spread_across_nodes_first()
    {
        var plan = Solve([Engine("e1", node: "n1"), Engine("e2", node: "n1"), Engine("e3", node: "n2")], Demand("a", min: 2, max: 2));
        Assert.Equal(["e1", "e3"], plan.EnginesFor("a"));
    }

    [Fact]
    public void All_means_every_compatible_engine()
    {
        var plan = Solve([Engine("e1"), Engine("e2"), Engine("e3", model: "other")], Demand("a", min: 1, max: int.MaxValue));
        Assert.Equal(["e1", "e2"], plan.EnginesFor("a"));
    }

    [Fact]
    public void Existing_placements_are_kept()
    {
        // e2 holds 'a'; e1 is emptier, but moving would be churn.
        var plan = Solve([Engine("e1"), Engine("e2", current: ["a", "x"])], Demand("a"));
        Assert.Equal(["e2"], plan.EnginesFor("a"));
        Assert.DoesNotContain("x", plan.AdaptersOn("e2")); // no longer demanded → dropped
    }

    [Fact]
    public void Higher_priority_preempts_lower_when_allowed()
    {
        var plan = Solve([Engine("e1", slots: 1, current: ["low"])], Demand("low", priority: 1), Demand("high", priority: 5));
        Assert.Equal(["high"], plan.AdaptersOn("e1"));
        Assert.Equal(LoraAdapterReasons.Preempted, plan.Shortfalls["low"].Reason);
        Assert.Equal(new Preemption("low", "e1", "high"), Assert.Single(plan.Preemptions));
    }

    [Fact]
    public void PreemptionPolicy_None_never_evicts()
    {
        var plan = Solve([Engine("e1", slots: 1, current: ["low"])], Demand("low", priority: 1), Demand("high", priority: 5, preempt: false));
        Assert.Equal(["low"], plan.AdaptersOn("e1"));
        Assert.Equal(LoraAdapterReasons.InsufficientCapacity, plan.Shortfalls["high"].Reason);
        Assert.Empty(plan.Preemptions);
    }

    [Fact]
    public void Equal_priority_never_preempts_but_reclaims_extra_replicas()
    {
        // 'a' has a second (extra) replica; 'b' needs its first: the extra is reclaimed, nothing is preempted.
        var plan = Solve([Engine("e1", slots: 1, current: ["a"]), Engine("e2", slots: 1, current: ["a"])],
            Demand("a", min: 1, max: 2), Demand("b", min: 1, max: 1));
        Assert.Single(plan.EnginesFor("a"));
        Assert.Single(plan.EnginesFor("b"));
        Assert.Empty(plan.Preemptions);
        Assert.Empty(plan.Shortfalls);
    }

    [Fact]
    public void Excluded_engines_are_avoided_and_explained()
    {
        var plan = Solve([Engine("e1"), Engine("e2")], Demand("a", excluded: new HashSet<string> { "e1" }));
        Assert.Equal(["e2"], plan.EnginesFor("a"));
        var stuck = Solve([Engine("e1")], Demand("a", excluded: new HashSet<string> { "e1" }));
        Assert.Equal(LoraAdapterReasons.LoadFailed, stuck.Shortfalls["a"].Reason);
    }

    [Fact]
    public void Solving_is_deterministic_regardless_of_input_order()
    {
        EngineSnapshot[] engines = [Engine("e1", slots: 2), Engine("e2", slots: 2), Engine("e3", slots: 1)];
        AdapterDemand[] demands = [Demand("a", priority: 2), Demand("b", min: 2, max: 3), Demand("c"), Demand("d", priority: 1)];
        var one = PlacementSolver.Solve(new ClusterSnapshot(engines), demands, PlacementOptions.Default);
        var two = PlacementSolver.Solve(new ClusterSnapshot([.. engines.Reverse()]), [.. demands.Reverse()], PlacementOptions.Default);
        Assert.Equal(one.EngineAdapters, two.EngineAdapters);
        Assert.Equal(one.Shortfalls, two.Shortfalls);
    }

    [Fact]
    public void Duplicate_demand_names_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => Solve([Engine("e1")], Demand("a"), Demand("a")));
        Assert.Contains("'a'", e.Message);
    }

    [Fact]
    public void Spare_slots_are_shared_equally_not_filled_in_name_order()
    {
        // 8 engines x 2 slots = 16 slots for 4 adapters that may go everywhere: 4 replicas each, not 8-6-1-1.
        var engines = Enumerable.Range(0, 8).Select(i => Engine($"e{i}", slots: 2)).ToArray();
        var plan = Solve(engines, [.. "abcd".Select(c => Demand(c.ToString(), max: int.MaxValue))]);
        Assert.All("abcd", c => Assert.Equal(4, plan.EnginesFor(c.ToString()).Count));
    }

    [Fact]
    public void When_spare_slots_run_out_the_busiest_adapters_get_the_extra_replicas()
    {
        // 2 engines x 3 slots = 6 slots; 4 adapters at 1 each leaves 2 spare: they go to the two busiest ("z", "y").
        var engines = Enumerable.Range(0, 2).Select(i => Engine($"e{i}", slots: 3)).ToArray();
        AdapterDemand Rated(string name, double rate) => Demand(name, max: 3) with { RequestRate = rate };
        var plan = PlacementSolver.Solve(new ClusterSnapshot(engines), [Rated("a", 0), Rated("b", 0.1), Rated("y", 1), Rated("z", 2)],
            new PlacementOptions(RatePerReplica: 1_000));
        Assert.Equal([1, 1, 2, 2], "abyz".Select(c => plan.EnginesFor(c.ToString()).Count));
    }
}
