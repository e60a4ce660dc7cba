using HybridServing.Autoscaler.Decisions;
using HybridServing.ClusterSimulator.Autoscaling;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Workload;

namespace HybridServing.ClusterSimulator.Tests;

/// <summary>A small day of the autoscale experiment: 4 engines, 100 adapters, a 600 s day.</summary>
public sealed class AutoscaleTests
{
    private static readonly AutoscaleOptions Small = new()
    {
        Cluster = new SimulationOptions { Adapters = 100, Engines = 4, Seed = 3 },
        Day = 600, PeakRate = 10, NightRate = 0.05, FlashRate = 4, FlashAt = 0.4, FlashSeconds = 40, SampleEvery = 5,
    };

    private static readonly Lazy<IReadOnlyDictionary<string, AutoscaleResult>> Day = new(() => RunAll(Small));

    private static Dictionary<string, AutoscaleResult> RunAll(AutoscaleOptions o)
    {
        var catalog = new AdapterCatalog(o.Cluster);
        var trace = DiurnalWorkload.Generate(o, catalog);
        return ScalingPolicyNames.All.ToDictionary(p => p, p => AutoscaleRun.Execute(o, catalog, trace, p));
    }

    [Fact]
    public void Static_keeps_every_engine_awake_all_day()
    {
        var s = Day.Value[ScalingPolicyNames.Static];
        Assert.NotEmpty(s.Series);
        Assert.All(s.Series, p => Assert.Equal(4, p.Engines));
        Assert.Equal(4, s.MinEngines);
        Assert.Equal(0, s.Wakes + s.Sleeps);
        Assert.Equal(4 * 600 / 3600.0, s.EngineHours, 6);
    }

    [Theory]
    [InlineData(ScalingPolicyNames.Kpa)]
    [InlineData(ScalingPolicyNames.Ours)]
    public void Scale_to_zero_policies_sleep_at_night_and_lose_no_night_request_within_the_bounded_wait(string policy)
    {
        var r = Day.Value[policy];
        Assert.Equal(0, r.MinEngines);
        Assert.True(r.HeldAtNight > 0, "some night request should find the pool asleep and be held");
        Assert.Equal(0, r.Rejected);
        Assert.Equal(r.Requests, r.Completed);
        Assert.Contains(ScaleReasons.ScaleToZero, r.DecisionReasons.Keys);
        Assert.Contains(ScaleReasons.ScaleFromZero, r.DecisionReasons.Keys);
    }

    [Fact]
    public void A_wake_longer_than_the_gateways_hold_rejects_the_held_requests()
    {
        var slow = Small with { WakeSeconds = 20, HoldTimeout = 5, Policies = [ScalingPolicyNames.Ours] };
        var catalog = new AdapterCatalog(slow.Cluster);
        var r = AutoscaleRun.Execute(slow, catalog, DiurnalWorkload.Generate(slow, catalog), ScalingPolicyNames.Ours);
        Assert.True(r.RejectedAtNight > 0);
        Assert.True(r.SloAttainment < Day.Value[ScalingPolicyNames.Ours].SloAttainment);
    }

    [Fact]
    public void Autoscaled_policies_use_fewer_engine_hours_than_static_and_hpa_never_goes_to_zero()
    {
        var d = Day.Value;
        var s = d[ScalingPolicyNames.Static].EngineHours;
        Assert.True(d[ScalingPolicyNames.Ours].EngineHours < s);
        Assert.True(d[ScalingPolicyNames.Kpa].EngineHours < s);
        Assert.True(d[ScalingPolicyNames.Hpa].EngineHours < s);
        Assert.Equal(1, d[ScalingPolicyNames.Hpa].MinEngines);
        // The peak needs more than one engine: every autoscaled policy scaled up.
        Assert.All(new[] { ScalingPolicyNames.Hpa, ScalingPolicyNames.Kpa, ScalingPolicyNames.Ours }, p => Assert.True(d[p].MaxEngines > 1, p));
    }

    [Fact]
    public void Only_ours_applies_the_lora_rule()
    {
        Assert.DoesNotContain(ScaleReasons.LoraSlotBound, Day.Value[ScalingPolicyNames.Kpa].DecisionReasons.Keys);
        Assert.Contains(ScaleReasons.LoraSlotBound, Day.Value[ScalingPolicyNames.Ours].DecisionReasons.Keys);
    }

    [Fact]
    public void The_day_is_deterministic_for_a_seed_and_differs_for_another()
    {
        var again = RunAll(Small);
        foreach (var (policy, a) in Day.Value)
        {
            var b = again[policy];
            Assert.Equal(a with { WallSeconds = 0, Series = [], DecisionReasons = b.DecisionReasons }, b with { WallSeconds = 0, Series = [] });
            Assert.Equal(a.Series, b.Series);
            Assert.Equal(a.DecisionReasons.OrderBy(kv => kv.Key), b.DecisionReasons.OrderBy(kv => kv.Key));
        }
        var other = Small with { Cluster = Small.Cluster with { Seed = 4 } };
        var catalog = new AdapterCatalog(other.Cluster);
        Assert.NotEqual(Day.Value[ScalingPolicyNames.Ours].TtftP99,
            AutoscaleRun.Execute(other, catalog, DiurnalWorkload.Generate(other, catalog), ScalingPolicyNames.Ours).TtftP99);
    }

    [Fact]
    public void The_trace_follows_the_day_night_and_flash_crowd()
    {
        var catalog = new AdapterCatalog(Small.Cluster);
        var trace = DiurnalWorkload.Generate(Small, catalog);
        var night = trace.Arrivals.Count(a => a.Time < DiurnalWorkload.NightEnds * Small.Day);
        var peak = trace.Arrivals.Count(a => Math.Abs(a.Time - 0.525 * Small.Day) < 45);
        Assert.InRange(night, 1, 20);      // 90 s at 0.05 req/s ≈ 4.5
        Assert.InRange(peak, 700, 1100);   // 90 s near 10 req/s (and the flash crowd's end)
        var flash = trace.Arrivals.Where(a => a.Time >= 240 && a.Time < 280).Count(a => a.Adapter == trace.FlashAdapter);
        var before = trace.Arrivals.Where(a => a.Time >= 190 && a.Time < 230).Count(a => a.Adapter == trace.FlashAdapter);
        Assert.True(flash > 100 && before < 5, $"flash adapter: {before} requests before, {flash} during");
    }

    [Theory]
    [InlineData(new[] { "--flash-at", "0.99", "--flash-seconds", "120" }, "--flash-seconds")]
    [InlineData(new[] { "--policies", "vpa" }, "--policies")]
    [InlineData(new[] { "--peak-rate", "0" }, "--peak-rate")]
    [InlineData(new[] { "--day", "ten" }, "--day")]
    public void Wrong_autoscale_flags_name_the_flag(string[] args, string flag)
    {
        var e = Assert.Throws<OptionException>(() => AutoscaleCommandLine.Parse(args));
        Assert.StartsWith(flag, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Flags_reach_the_options()
    {
        var o = AutoscaleCommandLine.Parse(["--engines", "8", "--wake-seconds=30", "--policies", "ours,static"])!;
        Assert.Equal(8, o.Cluster.Engines);
        Assert.Equal(30, o.WakeSeconds);
        Assert.Equal([ScalingPolicyNames.Static, ScalingPolicyNames.Ours], o.Policies);
        Assert.Null(AutoscaleCommandLine.Parse(["--help"]));
    }
}
