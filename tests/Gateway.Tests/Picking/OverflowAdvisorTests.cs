using System.Collections.Frozen;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Contracts.Metrics;
using HybridServing.Gateway.Picking;
using HybridServing.Gateway.Routing;

namespace HybridServing.Gateway.Tests.Picking;

/// <summary>Tier-1 tests of <see cref="OverflowAdvisor"/>: one test per condition, on plain candidate values.</summary>
public sealed class OverflowAdvisorTests
{
    private const string Base = "test/tiny";
    private const string Hot = "hot";

    private static readonly OverflowOptions Defaults = new();

    /// <summary>Requests hold their engine for 10 s, an overflow load takes 0.1 s: waiting for a slot costs more.</summary>
    private static readonly OverflowCost Worthwhile = new(ServiceSeconds: 10, ControlPathSeconds: 0.1);

    private static EngineLoadSnapshot Load(int maxLoras, string[]? running = null, double waiting = 0, string[]? waitingAdapters = null) =>
        new(running?.Length ?? 0, waiting, 0.1, maxLoras, running ?? [], waitingAdapters ?? []);

    /// <summary>Two GPU slots, both taken by other adapters; the hot adapter waits.</summary>
    private static EngineLoadSnapshot SlotBound => Load(2, ["x", "y"], waiting: 1, waitingAdapters: [Hot]);

    private static Candidate C(string name, Residency residency, EngineLoadSnapshot? load, int inFlight = 0, bool ejected = false, bool healthy = true, string baseModel = Base) =>
        new(new EngineRoute(name, new Uri($"http://{name}:8000"), new HashSet<string> { baseModel }, healthy, 2, 4), residency, load, inFlight, ejected);

    private static Candidate Holder(string name = "holder", EngineLoadSnapshot? load = null) => C(name, Residency.Loaded, load ?? SlotBound);

    private static Candidate Free(string name = "free", int maxLoras = 4, string[]? running = null, double waiting = 0, int inFlight = 0) =>
        C(name, Residency.Unspecified, Load(maxLoras, running, waiting), inFlight);

    private static PickRequest Request(IReadOnlySet<string>? excluded, params Candidate[] candidates) =>
        new(new ResolvedModel(Hot, Base, new AdapterRouteInfo(Hot, "default", Base, Hot, 8, FrozenDictionary<string, Residency>.Empty)),
            candidates, excluded ?? new HashSet<string>());

    /// <summary>What the hybrid pipeline decides for the request, then what the advisor makes of it.</summary>
    private static string? Advise(PickRequest request, OverflowOptions? options = null, Func<string, int>? pending = null, OverflowCost? cost = null)
    {
        var decision = PickingPolicies.Create(new PickingOptions(), new Random(1)).Pick(request);
        return OverflowAdvisor.Advise(request, decision, options ?? Defaults, cost ?? Worthwhile, pending)?.Name;
    }

    [Fact]
    public void The_only_holder_slot_bound_and_an_engine_with_free_slots_gives_that_engine() =>
        Assert.Equal("free", Advise(Request(null, Holder(), Free())));

    [Fact]
    public void No_advice_for_a_base_model_request()
    {
        var request = new PickRequest(new ResolvedModel(Base, Base, null), [Holder(), Free()], new HashSet<string>());
        Assert.Null(OverflowAdvisor.Advise(request, new PickDecision(request.Candidates[0], PickReasons.BaseModel, 1), Defaults, Worthwhile));
    }

    [Fact]
    public void No_advice_when_the_pipeline_chose_no_engine()
    {
        var request = Request(null, Holder(), Free());
        Assert.Null(OverflowAdvisor.Advise(request, new PickDecision(null, PickReasons.NoHealthyEngine, 0), Defaults, Worthwhile));
    }

    [Fact]
    public void No_advice_when_the_adapter_is_running_on_the_holder() =>
        Assert.Null(Advise(Request(null, Holder(load: Load(2, ["x", Hot])), Free())));

    [Fact]
    public void No_advice_when_the_holder_has_a_free_slot() =>
        Assert.Null(Advise(Request(null, Holder(load: Load(2, ["x"])), Free())));

    [Fact]
    public void No_advice_when_the_holders_load_is_unknown_or_stale() =>
        Assert.Null(Advise(Request(null, C("holder", Residency.Loaded, load: null), Free())));

    [Fact]
    public void No_advice_when_another_healthy_holder_has_room()
    {
        Assert.Null(Advise(Request(null, Holder("h1"), Holder("h2", Load(2, ["x"])), Free())));
        // ... unless that holder cannot be used: ejected, unhealthy or already tried.
        Assert.Equal("free", Advise(Request(null, Holder("h1"), C("h2", Residency.Loaded, Load(2, ["x"]), ejected: true), Free())));
        Assert.Equal("free", Advise(Request(null, Holder("h1"), C("h2", Residency.Loaded, Load(2, ["x"]), healthy: false), Free())));
        Assert.Equal("free", Advise(Request(new HashSet<string> { "h2" }, Holder("h1"), Holder("h2", Load(2, ["x"])), Free())));
    }

    [Theory]
    [InlineData("unhealthy")]
    [InlineData("ejected")]
    [InlineData("tried")]
    [InlineData("load unknown")]
    [InlineData("other base model")]
    [InlineData("queue too deep")]
    [InlineData("no headroom")]
    public void A_target_must_be_usable_known_and_roomy(string flaw)
    {
        var target = flaw switch
        {
            "unhealthy" => C("free", Residency.Unspecified, Load(4), healthy: false),
            "ejected" => C("free", Residency.Unspecified, Load(4), ejected: true),
            "load unknown" => C("free", Residency.Unspecified, load: null),
            "other base model" => C("free", Residency.Unspecified, Load(4), baseModel: "other/model"),
            "queue too deep" => Free(waiting: 4),
            "no headroom" => Free(maxLoras: 2, running: ["x"]), // one free slot: the adapter would take the last one
            _ => Free(),
        };
        Assert.Null(Advise(Request(flaw == "tried" ? new HashSet<string> { "free" } : null, Holder(), target)));
    }

    [Fact]
    public void Headroom_and_queue_depth_are_configurable()
    {
        var lenient = new OverflowOptions { FreeSlotHeadroom = 0, MaxQueueDepth = 10 };
        Assert.Equal("free", Advise(Request(null, Holder(), Free(maxLoras: 2, running: ["x"], waiting: 10)), lenient));
        Assert.Null(Advise(Request(null, Holder(), Free(maxLoras: 4, running: ["a", "b"])), new OverflowOptions { FreeSlotHeadroom = 2 }));
    }

    [Fact]
    public void Overflow_loads_on_their_way_count_against_the_targets_free_slots()
    {
        // Four slots, none running, three loads pending: one free slot left, headroom 1 wants two.
        Assert.Null(Advise(Request(null, Holder(), Free()), pending: e => e == "free" ? 3 : 0));
        Assert.Equal("free", Advise(Request(null, Holder(), Free()), pending: e => e == "free" ? 2 : 0));
    }

    [Fact]
    public void A_loading_engine_may_be_the_target_but_a_holder_never_is() =>
        Assert.Equal("loading", Advise(Request(null, Holder(), C("loading", Residency.Loading, Load(4)))));

    [Fact]
    public void Most_free_slots_wins_then_fewest_in_flight_then_the_name()
    {
        Assert.Equal("roomier", Advise(Request(null, Holder(), Free("free", maxLoras: 4, running: ["a"]), Free("roomier", maxLoras: 4))));
        Assert.Equal("idle", Advise(Request(null, Holder(), Free("busy", inFlight: 3), Free("idle", inFlight: 1))));
        Assert.Equal("a", Advise(Request(null, Holder(), Free("b"), Free("a"))));
    }

    [Fact]
    public void The_slot_wait_counts_the_other_adapters_queued_ahead()
    {
        // Two slots turning over every 4 s: one frees every 2 s.
        var notQueued = Holder(load: Load(2, ["x", "y"], waiting: 2, waitingAdapters: ["a", "b", "b"]));
        Assert.Equal(6.0, OverflowAdvisor.SlotWait(notQueued, Hot, 4), 9); // joins the back: behind a and b
        var queued = Holder(load: Load(2, ["x", "y"], waiting: 3, waitingAdapters: ["a", "b", Hot]));
        Assert.Equal(4.0, OverflowAdvisor.SlotWait(queued, Hot, 4), 9); // rides on its earlier request: half of a, b ahead
        Assert.Equal(2.0, OverflowAdvisor.SlotWait(Holder(), Hot, 4), 9); // only its own adapter waiting
        Assert.Equal(double.PositiveInfinity, OverflowAdvisor.SlotWait(C("holder", Residency.Loaded, load: null), Hot, 4));
    }

    [Fact]
    public void No_advice_when_the_slot_wait_is_shorter_than_the_control_path()
    {
        var evenOdds = new OverflowOptions { WaitToCostRatio = 1 };
        // Two slots, 0.15 s service: a slot frees in 0.075 s, sooner than a 0.1 s overflow load.
        Assert.Null(Advise(Request(null, Holder(), Free()), evenOdds, cost: new OverflowCost(0.15, 0.1)));
        // 0.3 s service: 0.15 s wait, the load pays for itself.
        Assert.Equal("free", Advise(Request(null, Holder(), Free()), evenOdds, cost: new OverflowCost(0.3, 0.1)));
        // A slower control path (as observed) tips it back.
        Assert.Null(Advise(Request(null, Holder(), Free()), evenOdds, cost: new OverflowCost(0.3, 0.2)));
    }

    [Fact]
    public void By_default_the_wait_must_be_twice_the_control_path()
    {
        Assert.Null(Advise(Request(null, Holder(), Free()), cost: new OverflowCost(0.4, 0.1))); // 0.2 s wait: not more than 2 × 0.1
        Assert.Equal("free", Advise(Request(null, Holder(), Free()), cost: new OverflowCost(0.42, 0.1)));
    }

    [Fact]
    public void No_advice_before_any_service_time_was_observed() =>
        Assert.Null(Advise(Request(null, Holder(), Free()), cost: new OverflowCost(null, 0.1)));

    [Fact]
    public void The_holder_with_the_shortest_wait_decides()
    {
        var longQueue = Holder("h1", Load(2, ["x", "y"], waiting: 4, waitingAdapters: ["a", "b", "c", "d"]));
        var shortQueue = Holder("h2", Load(2, ["x", "y"]));
        // Service 0.1 s: h1's wait is 0.25 s, h2's 0.05 s — the request is better off waiting at h2.
        Assert.Null(Advise(Request(null, longQueue, shortQueue, Free()), cost: new OverflowCost(0.1, 0.1)));
        Assert.Equal("free", Advise(Request(null, longQueue, Free()), cost: new OverflowCost(0.1, 0.1)));
    }
}

/// <summary>Tier-1 tests of <see cref="OverflowCostTracker"/>: observations in, the figures the advisor weighs out.</summary>
public sealed class OverflowCostTrackerTests
{
    [Fact]
    public void Before_observations_the_service_time_is_unknown_and_the_control_path_is_the_configured_cost()
    {
        var cost = new OverflowCostTracker(new OverflowOptions { ControlPathCost = TimeSpan.FromSeconds(0.25) }).Current;
        Assert.Null(cost.ServiceSeconds);
        Assert.Equal(0.25, cost.ControlPathSeconds, 9);
    }

    [Fact]
    public void Observations_are_blended_with_the_configured_weight()
    {
        var tracker = new OverflowCostTracker(new OverflowOptions { CostSmoothing = 0.5 });
        tracker.ObserveService(2);
        tracker.ObserveService(4);
        tracker.ObserveControlPath(0.4);
        tracker.ObserveControlPath(0.2);
        Assert.Equal(3.0, tracker.Current.ServiceSeconds!.Value, 9);
        Assert.Equal(0.3, tracker.Current.ControlPathSeconds, 9);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(-1.0)]
    public void Nonsense_observations_are_ignored(double seconds)
    {
        var tracker = new OverflowCostTracker(new OverflowOptions());
        tracker.ObserveService(1);
        tracker.ObserveService(seconds);
        tracker.ObserveControlPath(seconds);
        Assert.Equal(1.0, tracker.Current.ServiceSeconds!.Value, 9);
        Assert.Equal(0.1, tracker.Current.ControlPathSeconds, 9);
    }
}
