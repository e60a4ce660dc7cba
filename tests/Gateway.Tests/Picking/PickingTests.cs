using System.Collections.Frozen;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Contracts.Metrics;
using HybridServing.Gateway.Picking;
using HybridServing.Gateway.Routing;

namespace HybridServing.Gateway.Tests.Picking;

/// <summary>Tier-1 tests: every policy is a pure function of plain candidate values.</summary>
public sealed class PickingTests
{
    private const string Base = "test/tiny";
    private static readonly IReadOnlySet<string> None = new HashSet<string>();

    private static EngineRoute Engine(string name, bool healthy = true, int maxLoras = 2, string baseModel = Base) =>
        new(name, new Uri($"http://{name}:8000"), new HashSet<string> { baseModel }, healthy, maxLoras, maxLoras * 2);

    private static EngineLoadSnapshot Load(double waiting = 0, double kv = 0, double running = 0, string[]? runningAdapters = null, string[]? waitingAdapters = null, int? maxLora = 2) =>
        new(running, waiting, kv, maxLora, runningAdapters ?? [], waitingAdapters ?? []);

    private static Candidate C(string name, Residency residency = Residency.Loaded, EngineLoadSnapshot? load = null, int inFlight = 0, bool ejected = false, bool healthy = true) =>
        new(Engine(name, healthy), residency, load, inFlight, ejected);

    private static ResolvedModel AdapterModel(string adapter = "lora") =>
        new(adapter, Base, new AdapterRouteInfo(adapter, "default", Base, adapter, 8, FrozenDictionary<string, Residency>.Empty));

    private static PickRequest Request(ResolvedModel model, params Candidate[] candidates) => new(model, candidates, None);

    private static double[] Scores(IEndpointScorer scorer, PickRequest request)
    {
        var scores = new double[request.Candidates.Count];
        scorer.Score(request, request.Candidates, scores);
        return scores;
    }

    [Theory]
    [InlineData(Residency.Loaded, true)]
    [InlineData(Residency.Loading, false)]
    [InlineData(Residency.Unspecified, false)]
    public void Serves_model_filter_keeps_only_engines_holding_the_adapter(Residency residency, bool kept)
    {
        var request = Request(AdapterModel(), C("a", residency));
        Assert.Equal(kept, new ServesModelFilter().Keep(request, request.Candidates[0]));
    }

    [Fact]
    public void Serves_model_filter_drops_engines_of_another_base_model()
    {
        var other = new Candidate(Engine("x", baseModel: "other/model"), Residency.Loaded, null, 0, false);
        Assert.False(new ServesModelFilter().Keep(Request(new ResolvedModel(Base, Base, null), other), other));
    }

    [Theory]
    [InlineData(true, false, true)]
    [InlineData(false, false, false)]
    [InlineData(true, true, false)]
    public void Healthy_filter_drops_unhealthy_and_ejected_engines(bool healthy, bool ejected, bool kept)
    {
        var c = C("a", ejected: ejected, healthy: healthy);
        Assert.Equal(kept, new HealthyFilter().Keep(Request(AdapterModel(), c), c));
    }

    [Theory]
    [InlineData(0, 0.1, true)]
    [InlineData(16, 0.1, false)]
    [InlineData(3, 0.95, false)]
    [InlineData(15, 0.89, true)]
    public void Not_saturated_filter_uses_queue_and_kv_thresholds(double waiting, double kv, bool kept)
    {
        var c = C("a", load: Load(waiting, kv));
        Assert.Equal(kept, new NotSaturatedFilter(16, 0.9).Keep(Request(AdapterModel(), c), c));
    }

    [Theory]
    [InlineData("hybrid")]
    [InlineData("round-robin")]
    [InlineData("least-request")]
    [InlineData("lora-affinity")]
    public void A_draining_engine_is_picked_only_when_no_other_holder_can_serve(string policy)
    {
        var pipeline = PickingPolicies.Create(new PickingOptions { Policy = policy }, new Random(1));
        var draining = new Candidate(Engine("draining") with { Draining = true }, Residency.Loaded, Load(), 0, false);
        // The draining engine is idle and the other busy: every policy would prefer it, the filter does not let it.
        var busy = C("busy", load: Load(waiting: 3, running: 5), inFlight: 5);
        for (var i = 0; i < 10; i++) Assert.Equal("busy", pipeline.Pick(Request(AdapterModel(), draining, busy)).Chosen!.Name);
        Assert.Equal("draining", pipeline.Pick(Request(AdapterModel(), draining, C("loading", Residency.Loading))).Chosen!.Name);
    }

    [Fact]
    public void Unknown_load_is_not_saturated() =>
        Assert.True(new NotSaturatedFilter(1, 0.1).Keep(Request(AdapterModel(), C("a")), C("a")));

    [Fact]
    public void Residency_scorer_orders_gpu_over_free_slot_over_waiting_over_host_memory()
    {
        var request = Request(AdapterModel("lora"),
            C("gpu", load: Load(runningAdapters: ["lora", "x"])),
            C("free", load: Load(runningAdapters: ["x"])),
            C("waiting", load: Load(runningAdapters: ["x", "y"], waitingAdapters: ["lora"])),
            C("host", load: Load(runningAdapters: ["x", "y"])),
            C("unknown-load"),
            C("loading", Residency.Loading));
        Assert.Equal([1, 0.8, 0.6, 0.4, 0.4, 0], Scores(new ResidencyScorer(), request));
    }

    [Fact]
    public void Gie_affinity_scores_busy_lists_only()
    {
        var request = Request(AdapterModel("lora"),
            C("active", load: Load(runningAdapters: ["lora", "x"])),
            C("free", load: Load(runningAdapters: ["x"])),
            C("waiting", load: Load(runningAdapters: ["x", "y"], waitingAdapters: ["lora"])),
            C("full", load: Load(runningAdapters: ["x", "y"])));
        Assert.Equal([1, 0.8, 0.6, 0], Scores(new LoraAffinityScorer(), request));
    }

    [Fact]
    public void Queue_and_in_flight_scorers_are_min_max_normalised()
    {
        var request = Request(AdapterModel(), C("a", load: Load(waiting: 0), inFlight: 4), C("b", load: Load(waiting: 5), inFlight: 2), C("c", load: Load(waiting: 10), inFlight: 0));
        Assert.Equal([1, 0.5, 0], Scores(new QueueScorer(), request));
        Assert.Equal([0, 0.5, 1], Scores(new InFlightScorer(), request));
        var equal = Request(AdapterModel(), C("a"), C("b"));
        Assert.Equal([1, 1], Scores(new QueueScorer(), equal));
    }

    [Fact]
    public void Kv_cache_scorer_is_one_minus_usage()
    {
        var request = Request(AdapterModel(), C("a", load: Load(kv: 0.25)), C("b"));
        Assert.Equal([0.75, 1], Scores(new KvCacheScorer(), request));
    }

    [Fact]
    public void Least_request_uses_the_larger_of_own_and_engine_counts()
    {
        var request = Request(AdapterModel(), C("a", load: Load(running: 3, waiting: 3), inFlight: 1), C("b", inFlight: 2), C("c", load: Load(running: 1), inFlight: 0));
        Assert.Equal([0, 0.8, 1], Scores(new LeastRequestScorer(), request), new ToleranceComparer());
    }

    private sealed class ToleranceComparer : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) < 1e-9;
        public int GetHashCode(double obj) => 0;
    }

    private sealed class ConstantScorer(double value) : IEndpointScorer
    {
        public string Name => "constant";
        public void Score(PickRequest request, IReadOnlyList<Candidate> candidates, Span<double> scores) => scores.Fill(value);
    }

    private sealed class ByNameScorer(string name) : IEndpointScorer
    {
        public string Name => "by-name";
        public void Score(PickRequest request, IReadOnlyList<Candidate> candidates, Span<double> scores)
        {
            for (var i = 0; i < candidates.Count; i++) scores[i] = candidates[i].Name == name ? 7 : -3;
        }
    }

    [Fact]
    public void Pipeline_clamps_scores_to_unit_range_before_weighting()
    {
        var pipeline = new EndpointPickingPipeline("t", [], [new(new ByNameScorer("b"), 2), new(new ConstantScorer(double.NaN), 5)], new MaxScorePicker(new Random(1)));
        var decision = pipeline.Pick(Request(AdapterModel(), C("a"), C("b")));
        Assert.Equal("b", decision.Chosen!.Name);
        Assert.Equal(2, decision.Score);
    }

    [Fact]
    public void Pipeline_rejects_negative_or_infinite_weights()
    {
        Assert.Throws<ArgumentException>(() => new EndpointPickingPipeline("t", [], [new(new QueueScorer(), -1)], new RoundRobinPicker()));
        Assert.Throws<ArgumentException>(() => new EndpointPickingPipeline("t", [], [new(new QueueScorer(), double.PositiveInfinity)], new RoundRobinPicker()));
    }

    [Fact]
    public void Hybrid_prefers_the_engine_running_the_adapter_when_loads_are_equal()
    {
        var pipeline = PickingPolicies.Create(new PickingOptions(), new Random(1));
        var decision = pipeline.Pick(Request(AdapterModel("lora"),
            C("host", load: Load(runningAdapters: ["x", "y"])),
            C("gpu", load: Load(runningAdapters: ["lora", "x"])),
            C("free", load: Load(runningAdapters: ["x"]))));
        Assert.Equal("gpu", decision.Chosen!.Name);
        Assert.Equal(PickReasons.GpuResident, decision.Reason);
    }

    [Fact]
    public void Hybrid_spills_over_from_a_saturated_resident_engine()
    {
        var pipeline = PickingPolicies.Create(new PickingOptions(), new Random(1));
        var decision = pipeline.Pick(Request(AdapterModel("lora"),
            C("gpu-but-saturated", load: Load(waiting: 40, runningAdapters: ["lora", "x"])),
            C("free", load: Load(runningAdapters: ["x"]))));
        Assert.Equal("free", decision.Chosen!.Name);
        Assert.Equal(PickReasons.FreeSlot, decision.Reason);
    }

    [Fact]
    public void Hybrid_still_serves_when_every_holder_is_saturated()
    {
        var pipeline = PickingPolicies.Create(new PickingOptions(), new Random(1));
        var decision = pipeline.Pick(Request(AdapterModel("lora"),
            C("a", load: Load(waiting: 40)), C("b", load: Load(waiting: 20)), C("not-holding", Residency.Unspecified)));
        Assert.Equal("b", decision.Chosen!.Name);
        Assert.Equal(PickReasons.AllSaturated, decision.Reason);
    }

    [Theory]
    [InlineData(PickingPolicies.Hybrid)]
    [InlineData(PickingPolicies.RoundRobin)]
    [InlineData(PickingPolicies.LeastRequest)]
    [InlineData(PickingPolicies.LoraAffinity)]
    public void No_policy_ever_picks_an_engine_without_the_adapter(string policy)
    {
        var pipeline = PickingPolicies.Create(new PickingOptions { Policy = policy }, new Random(7));
        var random = new Random(42);
        for (var round = 0; round < 200; round++)
        {
            var candidates = Enumerable.Range(0, 5).Select(i => C($"e{i}",
                residency: (Residency)random.Next(0, 3),
                load: random.Next(3) == 0 ? null : Load(random.Next(0, 30), random.NextDouble(), runningAdapters: random.Next(2) == 0 ? ["lora"] : []),
                inFlight: random.Next(0, 10), ejected: random.Next(8) == 0, healthy: random.Next(8) != 0)).ToArray();
            var decision = pipeline.Pick(Request(AdapterModel("lora"), candidates));
            var eligible = candidates.Where(c => c.Residency == Residency.Loaded && c.Engine.Healthy && !c.Ejected).ToList();
            if (eligible.Count == 0) Assert.Null(decision.Chosen);
            else Assert.Contains(decision.Chosen!, eligible);
        }
    }

    [Fact]
    public void Reasons_distinguish_not_loaded_from_no_healthy_engine()
    {
        var pipeline = PickingPolicies.Create(new PickingOptions(), new Random(1));
        Assert.Equal(PickReasons.NotLoaded, pipeline.Pick(Request(AdapterModel(), C("a", Residency.Loading))).Reason);
        Assert.Equal(PickReasons.NoHealthyEngine, pipeline.Pick(Request(AdapterModel(), C("a", ejected: true))).Reason);
        Assert.Equal(PickReasons.NoHealthyEngine, pipeline.Pick(new PickRequest(AdapterModel(), [C("a")], new HashSet<string> { "a" })).Reason);
    }

    [Fact]
    public void Round_robin_cycles_in_name_order()
    {
        var pipeline = PickingPolicies.Create(new PickingOptions { Policy = "round-robin" }, new Random(1));
        var request = Request(new ResolvedModel(Base, Base, null), C("c"), C("a"), C("b"));
        Assert.Equal(["a", "b", "c", "a"], Enumerable.Range(0, 4).Select(_ => pipeline.Pick(request).Chosen!.Name));
    }

    [Fact]
    public void Least_request_picks_the_least_busy()
    {
        var pipeline = PickingPolicies.Create(new PickingOptions { Policy = "least-request" }, new Random(1));
        Assert.Equal("b", pipeline.Pick(Request(AdapterModel(), C("a", inFlight: 3), C("b", inFlight: 1), C("c", load: Load(running: 5)))).Chosen!.Name);
    }

    [Fact]
    public void Lora_affinity_baseline_follows_the_busy_lists()
    {
        var pipeline = PickingPolicies.Create(new PickingOptions { Policy = "lora-affinity" }, new Random(1));
        Assert.Equal("active", pipeline.Pick(Request(AdapterModel("lora"),
            C("full", load: Load(runningAdapters: ["x", "y"])), C("active", load: Load(runningAdapters: ["lora", "y"])))).Chosen!.Name);
    }

    [Fact]
    public void Max_score_ties_are_shared_between_engines()
    {
        var pipeline = PickingPolicies.Create(new PickingOptions(), new Random(3));
        var request = Request(new ResolvedModel(Base, Base, null), C("a"), C("b"), C("c"));
        var picked = Enumerable.Range(0, 60).Select(_ => pipeline.Pick(request).Chosen!.Name).ToHashSet();
        Assert.Equal(3, picked.Count);
    }

    [Fact]
    public void Configuration_errors_name_the_key()
    {
        var policy = Assert.Throws<InvalidOperationException>(() => PickingPolicies.Create(new PickingOptions { Policy = "fastest" }, new Random()));
        Assert.Contains("Gateway:Picking:Policy 'fastest'", policy.Message);
        var weight = Assert.Throws<InvalidOperationException>(() => PickingPolicies.Create(new PickingOptions { Weights = { ["latency"] = 1 } }, new Random()));
        Assert.Contains("Gateway:Picking:Weights:latency", weight.Message);
    }

    [Fact]
    public void Configured_weights_change_the_hybrid_decision()
    {
        // Residency off, queue only: the emptier engine wins even though the other runs the adapter.
        var pipeline = PickingPolicies.Create(new PickingOptions { Weights = { ["residency"] = 0, ["in-flight"] = 0, ["kv-cache"] = 0 } }, new Random(1));
        Assert.Equal("empty", pipeline.Pick(Request(AdapterModel("lora"),
            C("gpu", load: Load(waiting: 5, runningAdapters: ["lora"])), C("empty", load: Load(waiting: 0)))).Chosen!.Name);
    }
}
