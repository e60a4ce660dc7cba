using HybridServing.MockEngine.Performance;

namespace HybridServing.MockEngine.Tests.Performance;

public sealed class VirtualEngineFleetTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Engines_share_one_clock_and_a_lost_engine_gives_back_its_requests()
    {
        var fleet = new VirtualEngineFleet(T0);
        var options = new EngineModelOptions { MaxLoras = 2, MaxCpuLoras = 4 };
        var a = fleet.Add(options, PerformanceProfile.H100Llama3_8B);
        var b = fleet.Add(options, PerformanceProfile.H100Llama3_8B);
        var ra = new ModelRequest("ra", null, 500, 50);
        var rb = new ModelRequest("rb", null, 500, 50);
        a.Submit(ra);
        b.Submit(rb);
        Assert.Equal(T0, fleet.NextEventTime);

        fleet.AdvanceTo(T0 + TimeSpan.FromMilliseconds(100));
        Assert.All(fleet.Engines, e => Assert.Equal(T0 + TimeSpan.FromMilliseconds(100), e.Now));
        Assert.True(ra.GeneratedTokens > 0);
        Assert.Equal(ra.GeneratedTokens, rb.GeneratedTokens); // same work, same model: same progress

        var lost = fleet.Remove(b);
        Assert.Equal([rb], lost);
        Assert.Equal(RequestState.Aborted, rb.State);
        Assert.True(fleet.RunUntilIdle(TimeSpan.FromMinutes(1)));
        Assert.Equal(RequestState.Finished, ra.State);
        Assert.Single(fleet.Engines);
    }

    [Fact]
    public void Runtime_load_stalls_a_busy_engine_but_not_an_idle_one()
    {
        var profile = PerformanceProfile.H100Llama3_8B;
        var spec = new AdapterSpec("x", 16, 200_000_000); // disk: 20 ms + 100 ms
        var diskSeconds = profile.LocalDiskToHost.SecondsFor(spec.SizeBytes);

        var idle = new VirtualEngineDriver(new EngineModelOptions(), profile, T0);
        idle.RegisterAdapter(spec);
        idle.AdvanceTo(T0 + TimeSpan.FromSeconds(1));
        var late = new ModelRequest("late", null, 10, 1);
        idle.Submit(late);
        idle.RunUntilIdle(TimeSpan.FromMinutes(1));
        Assert.True(late.TimeToFirstToken!.Value.TotalSeconds < 0.05, "a load that finished while idle costs nothing later");

        var busy = new VirtualEngineDriver(new EngineModelOptions(), profile, T0);
        var running = new ModelRequest("running", null, 10, 100);
        busy.Submit(running);
        busy.AdvanceTo(T0);
        busy.RegisterAdapter(spec);
        busy.RunUntilIdle(TimeSpan.FromMinutes(1));
        Assert.True(busy.Model.Statistics.InterTokenLatency.Sum > diskSeconds, "the engine loop was held by the load");
    }
}
