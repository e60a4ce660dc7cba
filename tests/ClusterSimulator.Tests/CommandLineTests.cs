using HybridServing.ClusterSimulator.Configuration;

namespace HybridServing.ClusterSimulator.Tests;

public sealed class CommandLineTests
{
    [Fact]
    public void Defaults_match_the_benchmark_definition()
    {
        var o = CommandLine.Parse([])!;
        Assert.Equal(1000, o.Adapters);
        Assert.Equal(16, o.Engines);
        Assert.Equal(1.0, o.ZipfExponent);
        Assert.Equal(8, o.MaxLoras);
        Assert.Equal(64, o.MaxCpuLoras);
        Assert.Equal(256, o.MaxNumSeqs);
        Assert.Equal([8, 16, 32, 64], o.RankMix.Select(r => r.Rank));
        Assert.Equal(SimulationOptions.AllPolicies, o.Policies);
        // The demand path's knobs default to the product's (RatePerReplica, Demand:ReportInterval, ResyncInterval).
        Assert.Equal(5, o.RatePerReplica);
        Assert.Equal(5, o.ReportInterval);
        Assert.Equal(30, o.ControlInterval);
        Assert.Equal("all", SimulationOptions.ReplicasText(o.Replicas));
    }

    [Theory]
    [InlineData("all", "all")]
    [InlineData("none", "none")]
    [InlineData("1:4", "1:4")]
    [InlineData(" 2:2 ", "2:2")]
    public void Parses_a_replicas_spec(string value, string expected) =>
        Assert.Equal(expected, SimulationOptions.ReplicasText(CommandLine.Parse(["--replicas", value])!.Replicas));

    [Fact]
    public void Parses_every_form()
    {
        var o = CommandLine.Parse(["--engines", "64", "--zipf=1.2", "--rank-mix", "8:50,64:50", "--rates", "10,5", "--scenario", "drift,steady", "--policies", "b0,hybridserving"])!;
        Assert.Equal(64, o.Engines);
        Assert.Equal(1.2, o.ZipfExponent);
        Assert.Equal([5.0, 10.0], o.Rates);
        Assert.Equal([ScenarioNames.Steady, ScenarioNames.Drift], o.Scenarios);
        Assert.Equal([PolicyNames.B0, PolicyNames.HybridServing], o.Policies);
        Assert.Null(CommandLine.Parse(["--help"]));
    }

    [Theory]
    [InlineData("--engines", "0")]
    [InlineData("--engines", "x")]
    [InlineData("--zipf", "-1")]
    [InlineData("--rank-mix", "8:40,16:30")]
    [InlineData("--rank-mix", "8-100")]
    [InlineData("--arrival-cv", "0")]
    [InlineData("--rates", "10,abc")]
    [InlineData("--scenario", "tsunami")]
    [InlineData("--policies", "B9")]
    [InlineData("--duration", "NaN")]
    [InlineData("--max-cpu-loras", "4")]
    [InlineData("--warmup", "100")]
    [InlineData("--bogus", "1")]
    [InlineData("--rate-per-replica", "0")]
    [InlineData("--rate-per-replica", "Infinity")]
    [InlineData("--report-interval", "-1")]
    [InlineData("--replicas", "3:2")]
    [InlineData("--replicas", "0:4")]
    [InlineData("--replicas", "1:1001")]
    [InlineData("--replicas", "some")]
    [InlineData("--overflow-extra-slots", "-1")]
    [InlineData("--overflow-grant-ttl", "0")]
    [InlineData("--overflow-headroom", "x")]
    [InlineData("--overflow-max-queue", "-2")]
    [InlineData("--overflow-latency", "61")]
    public void Wrong_values_name_the_flag(string flag, string value)
    {
        var e = Assert.Throws<OptionException>(() => CommandLine.Parse([flag, value]));
        Assert.StartsWith(flag, e.Message);
    }

    [Fact]
    public void Overflow_knobs_can_be_set()
    {
        var o = CommandLine.Parse(["--overflow-extra-slots", "4", "--overflow-grant-ttl=5", "--overflow-headroom", "0", "--overflow-max-queue", "8", "--overflow-latency", "0"])!;
        Assert.Equal((4, 5.0, 0, 8, 0.0), (o.OverflowExtraSlots, o.OverflowGrantTtl, o.OverflowHeadroom, o.OverflowMaxQueue, o.OverflowLatency));
    }

    [Fact]
    public void A_missing_value_names_the_flag()
    {
        var e = Assert.Throws<OptionException>(() => CommandLine.Parse(["--seed"]));
        Assert.StartsWith("--seed", e.Message);
    }
}
