using CsCheck;
using HybridServing.ControlPlane.Placement;

namespace HybridServing.ControlPlane.Tests.Placement;

/// <summary>Invariants of the solver over random clusters and demands (CsCheck; failures print a reproducible seed).</summary>
public sealed class PlacementPropertyTests
{
    internal sealed record Case(ClusterSnapshot Cluster, IReadOnlyList<AdapterDemand> Demands)
    {
        public override string ToString() =>
            string.Join("; ", Cluster.Engines.Select(e => $"{e.Name}@{e.Node}[{e.BaseModels[0]} slots={e.Slots} rank={e.MaxLoraRank} mem={e.AdapterMemoryBudgetBytes} pool={e.Labels.GetValueOrDefault("pool")} cur={string.Join(",", e.Current)}]"))
            + " | " + string.Join("; ", Demands.Select(d => $"{d.Name}[{d.BaseModel} r={d.Rank} {d.MinReplicas}..{d.MaxReplicas} p={d.Priority} pre={d.CanPreempt} mem={d.MemoryBytes} sel={d.Selector.Key} ex={string.Join(",", d.ExcludedEngines ?? new HashSet<string>())}]"));
    }

    private static readonly Gen<Case> Cases = Gen.Select(Gen.Int[1, 8], Gen.Int[0, 16], Gen.Int).Select((engines, demands, seed) => Build(engines, demands, seed));

    internal static Case Build(int engineCount, int demandCount, int seed)
    {
        var random = new Random(seed);
        var names = Enumerable.Range(0, demandCount).Select(i => $"a{i}").ToArray();
        var engines = Enumerable.Range(0, engineCount).Select(i => new EngineSnapshot(
            $"e{i}", $"n{random.Next(3)}", [random.Next(4) == 0 ? "m2" : "m1"],
            new Dictionary<string, string> { ["pool"] = random.Next(2) == 0 ? "a" : "b" },
            random.Next(0, 5), 0, random.Next(3) switch { 0 => 8, 1 => 16, _ => 32 },
            random.Next(3) == 0 ? random.Next(50, 200) : 0,
            [.. names.Where(_ => random.Next(4) == 0)])).ToList();
        var demands = names.Select(n =>
        {
            var min = random.Next(1, 4);
            var all = random.Next(6) == 0;
            return new AdapterDemand(n, random.Next(5) == 0 ? "m2" : "m1", random.Next(4) switch { 0 => 8, 1 => 16, 2 => 32, _ => 64 },
                random.Next(10, 80),
                random.Next(3) == 0 ? new EngineSelector(new Dictionary<string, string> { ["pool"] = "a" }, []) : EngineSelector.Everything,
                all ? 1 : min, all ? int.MaxValue : min + random.Next(0, 3), random.Next(0, 4), random.Next(2) == 0,
                random.Next(5) == 0 && engineCount > 0 ? new HashSet<string> { $"e{random.Next(engineCount)}" } : null);
        }).ToList();
        return new Case(new ClusterSnapshot(engines), demands);
    }

    private static Plan Solve(Case c) => PlacementSolver.Solve(c.Cluster, c.Demands, PlacementOptions.Default);

    private static bool Compatible(EngineSnapshot e, AdapterDemand d) =>
        e.BaseModels.Contains(d.BaseModel) && d.Selector.Matches(e.Labels)
        && (e.MaxLoraRank <= 0 || d.Rank <= e.MaxLoraRank)
        && (e.AdapterMemoryBudgetBytes <= 0 || d.MemoryBytes <= e.AdapterMemoryBudgetBytes)
        && d.ExcludedEngines?.Contains(e.Name) != true;

    [Fact]
    public void Never_over_capacity() => Cases.Sample(c =>
    {
        var plan = Solve(c);
        var demands = c.Demands.ToDictionary(d => d.Name);
        foreach (var e in c.Cluster.Engines)
        {
            var held = plan.AdaptersOn(e.Name);
            Assert.True(held.Count <= e.Slots, $"{e.Name} holds {held.Count} > {e.Slots} slots");
            Assert.Equal(held.Count, held.Distinct().Count());
            if (e.AdapterMemoryBudgetBytes > 0)
                Assert.True(held.Sum(a => demands[a].MemoryBytes) <= e.AdapterMemoryBudgetBytes, $"{e.Name} over its memory budget");
        }
        foreach (var d in c.Demands) Assert.True(plan.EnginesFor(d.Name).Count <= d.MaxReplicas);
    }, iter: 400);

    [Fact]
    public void Never_incompatible() => Cases.Sample(c =>
    {
        var plan = Solve(c);
        var engines = c.Cluster.Engines.ToDictionary(e => e.Name);
        foreach (var d in c.Demands)
            foreach (var e in plan.EnginesFor(d.Name))
                Assert.True(Compatible(engines[e], d), $"{d.Name} placed on incompatible {e}");
    }, iter: 400);

    [Fact]
    public void Priority_is_respected_and_free_room_is_never_left_unused() => Cases.Sample(c =>
    {
        var plan = Solve(c);
        var demands = c.Demands.ToDictionary(d => d.Name);
        foreach (var d in c.Demands)
        {
            if (plan.EnginesFor(d.Name).Count >= Math.Min(d.MinReplicas, d.MaxReplicas)) continue;
            foreach (var e in c.Cluster.Engines.Where(e => Compatible(e, d) && !plan.EnginesFor(d.Name).Contains(e.Name)))
            {
                var held = plan.AdaptersOn(e.Name);
                var memFree = e.AdapterMemoryBudgetBytes > 0 ? e.AdapterMemoryBudgetBytes - held.Sum(a => demands[a].MemoryBytes) : long.MaxValue;
                Assert.False(held.Count < e.Slots && memFree >= d.MemoryBytes, $"{d.Name} is short but {e.Name} has room");
                if (d.CanPreempt)
                    Assert.DoesNotContain(held, x => demands[x].Priority < d.Priority && memFree + demands[x].MemoryBytes >= d.MemoryBytes);
            }
        }
    }, iter: 400);

    [Fact]
    public void Preemption_only_where_allowed_and_only_of_lower_priority() => Cases.Sample(c =>
    {
        var plan = Solve(c);
        var demands = c.Demands.ToDictionary(d => d.Name);
        foreach (var p in plan.Preemptions)
        {
            Assert.True(demands[p.By].CanPreempt);
            Assert.True(demands[p.Victim].Priority < demands[p.By].Priority);
        }
    }, iter: 400);

    [Fact]
    public void A_solved_plan_is_a_fixed_point() => Cases.Sample(c =>
    {
        var plan = Solve(c);
        var again = PlacementSolver.Solve(plan.Apply(c.Cluster), c.Demands, PlacementOptions.Default);
        Assert.Equal(plan.EngineAdapters, again.EngineAdapters);
    }, iter: 400);

    [Fact]
    public void Every_short_adapter_has_a_reason() => Cases.Sample(c =>
    {
        var plan = Solve(c);
        foreach (var d in c.Demands)
        {
            var short_ = plan.EnginesFor(d.Name).Count < Math.Min(d.MinReplicas, d.MaxReplicas);
            Assert.Equal(short_, plan.Shortfalls.ContainsKey(d.Name));
            if (short_) Assert.False(string.IsNullOrWhiteSpace(plan.Shortfalls[d.Name].Message));
        }
    }, iter: 400);
}
