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
    private static string? Advise(PickRequest request, OverflowOptions? options = null, Func<string, int>? pending = null)
    {
        var decision = PickingPolicies.Create(new PickingOptions(), new Random(1)).Pick(request);
        return OverflowAdvisor.Advise(request, decision, options ?? Defaults, pending)?.Name;
    }

    [Fact]
    public void The_only_holder_slot_bound_and_an_engine_with_free_slots_gives_that_engine() =>
        Assert.Equal("free", Advise(Request(null, Holder(), Free())));

    [Fact]
    public void No_advice_for_a_base_model_request()
    {
        var request = new PickRequest(new ResolvedModel(Base, Base, null), [Holder(), Free()], new HashSet<string>());
        Assert.Null(OverflowAdvisor.Advise(request, new PickDecision(request.Candidates[0], PickReasons.BaseModel, 1), Defaults));
    }

    [Fact]
    public void No_advice_when_the_pipeline_chose_no_engine()
    {
        var request = Request(null, Holder(), Free());
        Assert.Null(OverflowAdvisor.Advise(request, new PickDecision(null, PickReasons.NoHealthyEngine, 0), Defaults));
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
}
