using HybridServing.MockEngine.Performance;

namespace HybridServing.MockEngine.Tests.Performance;

/// <summary>
/// The model is only useful for routing benchmarks if routing changes its answers: sending each
/// adapter to a fixed engine must beat spraying adapters over every engine once slots and host
/// memory are scarce.
/// </summary>
public sealed class RoutingSensitivityTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static (double MeanTtft, long DiskLoads) Run(Func<int, int, int> pickEngine)
    {
        const int engines = 2, adapters = 8;
        var fleet = new VirtualEngineFleet(T0);
        var options = new EngineModelOptions { MaxLoras = 2, MaxCpuLoras = 4, MaxNumSeqs = 64 };
        for (var e = 0; e < engines; e++)
        {
            var engine = fleet.Add(options, PerformanceProfile.H100Llama3_8B);
            for (var a = 0; a < adapters; a++) engine.RegisterAdapter(new AdapterSpec($"a{a}", 16, 16 * 5_200_000L));
        }
        var disksBefore = fleet.Engines.Sum(e => e.Model.Statistics.AdapterLoadsByTier.GetValueOrDefault(LoadTier.LocalDisk));

        var random = new Random(42);
        var requests = new List<ModelRequest>();
        var now = T0 + TimeSpan.FromSeconds(1);
        for (var i = 0; i < 400; i++)
        {
            now += TimeSpan.FromMilliseconds(-Math.Log(1 - random.NextDouble()) * 25); // Poisson, 40 req/s
            fleet.AdvanceTo(now);
            var adapter = random.Next(adapters);
            var request = new ModelRequest($"r{i}", $"a{adapter}", random.Next(200, 1200), random.Next(20, 120));
            fleet.Engines[pickEngine(i, adapter)].Submit(request);
            requests.Add(request);
        }
        Assert.True(fleet.RunUntilIdle(TimeSpan.FromMinutes(30)));
        var disks = fleet.Engines.Sum(e => e.Model.Statistics.AdapterLoadsByTier.GetValueOrDefault(LoadTier.LocalDisk)) - disksBefore;
        return (requests.Average(r => r.TimeToFirstToken!.Value.TotalSeconds), disks);
    }

    [Fact]
    public void Adapter_affinity_beats_round_robin_when_slots_are_scarce()
    {
        var roundRobin = Run((i, _) => i % 2);
        var affinity = Run((_, adapter) => adapter % 2);
        output.WriteLine($"round robin: mean TTFT {roundRobin.MeanTtft:F3} s, {roundRobin.DiskLoads} disk loads; affinity: {affinity.MeanTtft:F3} s, {affinity.DiskLoads}");
        Assert.True(affinity.MeanTtft < roundRobin.MeanTtft, $"affinity {affinity.MeanTtft:F3}s vs round robin {roundRobin.MeanTtft:F3}s");
        Assert.True(affinity.DiskLoads < roundRobin.DiskLoads, $"disk loads: affinity {affinity.DiskLoads} vs round robin {roundRobin.DiskLoads}");
    }
}
